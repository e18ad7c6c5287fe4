"""Graph files of one model against each other: batch-1 p50 and batch-32 throughput of ``Session.run``.

    python -m onnxpipe.bench.graphs --data ../shared/data/sst2 fp32=ART/model.onnx int8=OTHER/model_quantized.onnx

For comparing int8 recipes (the README's modes table): every graph runs in a fresh process of its own, one
after another, for ``--rounds`` rounds, so the machine's drift lands on all of them; the table gives each
graph's range over the rounds, with its node count (what batch 1 pays per node) and how many weight products
still run in float (MatMul, Gemm, Attention with a constant weight). Each graph's input is encoded by its artifact folder's tokenizer before
timing and fed through onnxpipe's own session, so for graphs of one model only the graph differs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from onnxpipe.graph_nodes import node_counts

from . import stats
from .measure import SEED


def measure(path: Path, artifact: Path, data: Path, threads: int | None, calls: int) -> dict:
    """In this process: batch-1 p50 over ``calls`` runs on the seed sentence; SST-2 dev at batch 32, median of 3."""
    import onnxpipe
    from onnxpipe.export.data import load_sst2
    from onnxpipe.session import Session

    pipe = onnxpipe.pipeline(model=artifact, variant="fp32")
    texts = sorted(load_sst2(data, "dev")[0], key=len)
    session = Session(path, threads=threads)
    batches = [pipe.encoder.collate(pipe.encode(texts[i : i + 32])) for i in range(0, len(texts), 32)]
    seed = pipe.encoder.collate(pipe.encode([SEED]))
    for feed in batches[:3] + [seed] * 50:
        session.run(feed)
    passes = []
    for _ in range(3):
        start = time.perf_counter()
        for feed in batches:
            session.run(feed)
        passes.append(len(texts) / (time.perf_counter() - start))
    latencies = []
    for _ in range(calls):
        start = time.perf_counter()
        session.run(seed)
        latencies.append(time.perf_counter() - start)
    return {"b1_p50_ms": 1000 * float(np.median(latencies)), "per_s": stats.quoted(passes)}


def run_one(file: Path, data: Path, calls: int, threads: int | None = None, artifact: Path | None = None) -> dict:
    """:func:`measure` for one graph in a fresh process (engines sharing a process disturb each other)."""
    args = [sys.executable, "-m", "onnxpipe.bench.graphs", "--one", f"graph={file}", "--data", str(data)]
    args += ["--calls", str(calls)] + (["--threads", str(threads)] if threads else [])
    args += ["--artifact", str(artifact)] if artifact else []
    out: dict = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m onnxpipe.bench.graphs", description=__doc__.split("\n\n")[0])
    p.add_argument("graphs", nargs="+", metavar="NAME=FILE", help="an ONNX file inside an artifact folder")
    p.add_argument("--data", type=Path, required=True, help="folder with SST-2 dev.tsv")
    p.add_argument("--rounds", type=int, default=3, help="rounds over every graph (default: 3)")
    p.add_argument("--calls", type=int, default=1000, help="batch-1 calls per graph and round (default: 1000)")
    p.add_argument("--threads", type=int, help="intra-op threads (default: all cores)")
    p.add_argument("--artifact", type=Path, help="encode with this artifact folder's tokenizer (default: each file's)")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a worker: one graph, JSON out
    a = p.parse_args(argv)
    graphs = {}
    for item in a.graphs:
        name, sep, file = item.partition("=")
        if not sep or not Path(file).is_file():
            p.error(f"{item!r}: give NAME=FILE with FILE an existing ONNX file")
        graphs[name] = Path(file)
    if a.one:
        (file,) = graphs.values()
        print(json.dumps(measure(file, a.artifact or file.parent, a.data, a.threads, a.calls)))
        return 0
    runs: dict[str, list[dict]] = {name: [] for name in graphs}
    for _ in range(a.rounds):
        for name, file in graphs.items():
            runs[name].append(run_one(file, a.data, a.calls, a.threads, a.artifact))
            print(json.dumps({"graph": name, **runs[name][-1]}), file=sys.stderr, flush=True)
    lines = [
        "| graph | batch-1 p50 (ms) | sentences/s @32 | nodes | weight products in float |",
        "|---|--:|--:|--:|--:|",
    ]
    for name, rs in runs.items():
        b1 = [r["b1_p50_ms"] for r in rs]
        per_s = [r["per_s"] for r in rs]
        nodes, in_float = node_counts(graphs[name])
        lines.append(
            f"| {name} | {min(b1):.2f}–{max(b1):.2f} | {min(per_s):.0f}–{max(per_s):.0f} | {nodes} | {in_float} |"
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
