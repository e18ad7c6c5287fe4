"""``onnxpipe bench``: run every contender on one model and write the JSON, table and plots."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from . import harness, report
from .contenders import BY_NAME
from onnxpipe.tasks import DEFAULT_TASK, TASKS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="onnxpipe bench", description=__doc__)
    p.add_argument(
        "target",
        nargs="?",
        help="artifact folder, checkpoint folder or hub id (default: the embedded default sentiment model)",
    )
    p.add_argument(
        "--data",
        type=Path,
        help="folder with SST-2 dev.tsv (and train.tsv: NNCF's calibration, CTranslate2's thread split); "
        "default: datasets' glue/sst2 from the hub",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="fewer rounds, passes and batch sizes: about 7 minutes on 2 cores with every peer",
    )
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="where results go (default: bench-out)")
    p.add_argument("--threads", type=int, default=None, help="threads for every contender (default: all cores)")
    p.add_argument("--contenders", help=f"comma-separated subset of: {', '.join(BY_NAME)}")
    p.add_argument("--no-cold-start", action="store_true", help="skip the new-process measurements")
    p.add_argument(
        "--batch-sizes",
        help="comma-separated throughput batch sizes (default: 1,32 with --quick, else 1,8,32,64); "
        "without 1 no alone-vs-batched flips are counted",
    )
    p.add_argument("--limit", type=int, help="use only the first N dev sentences")
    p.add_argument(
        "--task",
        choices=sorted(name for name, spec in TASKS.items() if spec.bench),  # the tasks the registry benchmarks
        default=DEFAULT_TASK,
        help="the task whose benchmark runs (its registry entry names the module and so the contenders; README, "
        "Benchmarks): embeddings compare sentence-transformers, fastembed and onnxpipe on the embedded "
        "all-MiniLM-L6-v2 (or the artifact given as target); span tasks the transformers pipeline and onnxpipe "
        "on a checkpoint folder (default: MiniLM with a random head, for speed and span agreement)",
    )
    a = p.parse_args(argv)

    sizes: tuple[int, ...] = ()
    if a.batch_sizes:
        try:
            sizes = tuple(int(b) for b in a.batch_sizes.split(","))
        except ValueError:
            sizes = ()
        if not sizes or min(sizes) < 1:
            p.error(f"--batch-sizes {a.batch_sizes!r}: give positive whole numbers separated by commas, like 1,32")
    from onnxpipe.export.data import load_sst2

    names = [n.strip() for n in a.contenders.split(",")] if a.contenders else None
    for n in names or []:
        if n not in BY_NAME:
            p.error(f"unknown contender {n!r}; choose from: {', '.join(BY_NAME)}")
    from onnxpipe.session import default_threads

    a.threads = a.threads or default_threads()
    texts, labels = load_sst2(a.data, "dev")
    if a.limit:
        texts, labels = texts[: a.limit], labels[: a.limit]
    calibration = load_sst2(a.data, "train")[0] if a.data is None or (a.data / "train.tsv").is_file() else None
    settings = harness.Settings.quick() if a.quick else harness.Settings.full()
    if a.no_cold_start:
        settings = dataclasses.replace(settings, cold_repeats=0)
    if sizes:
        settings = dataclasses.replace(settings, batch_sizes=sizes)
    log = lambda m: print(f"onnxpipe bench: {m}", file=sys.stderr, flush=True)
    runner = RUNNERS.get(TASKS[a.task].bench or "")
    if runner is not None:
        return runner(a, texts, settings, log)
    spec = harness.resolve_spec(a.target, a.out, a.threads, calibration, log=log)
    result = harness.run(spec, texts, labels, settings, names)
    paths = report.write_all(result, a.out)
    print(paths["markdown"].read_text())
    log("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def embeddings_main(a: argparse.Namespace, texts: list[str], settings: harness.Settings, log) -> int:
    from . import embeddings

    spec = embeddings.resolve(a.target, a.threads, log, a.out)
    result = embeddings.run(spec, texts, settings)
    paths = embeddings.write_all(result, a.out)
    print(paths["markdown"].read_text())
    log("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def spans_main(a: argparse.Namespace, texts: list[str], settings: harness.Settings, log) -> int:
    from . import spans

    spec = spans.resolve(a.task, a.target, a.out, a.threads, log)
    result = spans.run(a.task, spec, texts, settings)
    paths = spans.write_all(result, a.out)
    print(paths["markdown"].read_text())
    log("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


# The benchmark modules that run on their own (the registry's TaskSpec.bench); the others share the harness.
RUNNERS = {"onnxpipe.bench.embeddings": embeddings_main, "onnxpipe.bench.spans": spans_main}
