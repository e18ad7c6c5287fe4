"""The engine at the server's batch sizes, in one process: what batching can give a server whose callers arrive a
few at a time, before any HTTP.

    python -m onnxpipe.bench.serve_batches --data ../shared/data/sst2 [--task text-classification] [--rounds 3] \
        [--run-costs]

The same SST-2 dev sentences (800, in order, as ``serve_speed`` sends them) go through the default model as
``pipe(list)`` (all at once: sorted into full runs), and in random groups of 8, 16 and 32 (what a server holds
when that many callers wait), each group run on the pipeline's own session (every thread) or split over two
inference threads, each on a one-thread session (the server's streams). Sentences/s per way, the ways taking
turns within each round; medians and every round. Groups of N are the ceiling of a server with N callers: they
arrive together and nothing is spent on HTTP.
"""

from __future__ import annotations

import argparse
import queue
import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any


def groups(texts: list[str], size: int, seed: int) -> list[list[str]]:
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    return [[texts[i] for i in order[k : k + size]] for k in range(0, len(order), size)]


def side_by_side(pipe: Any, session: Any, batches: list[list[str]], streams: int) -> None:
    """``batches`` taken by ``streams`` threads from one queue, each run through the one executor on ``session``."""
    from onnxpipe.executor import execute

    todo: queue.Queue[list[str]] = queue.Queue()
    for b in batches:
        todo.put(b)

    def work() -> None:
        while True:
            try:
                batch = todo.get_nowait()
            except queue.Empty:
                return
            plan = pipe.featurize(pipe.plan(batch))
            execute(session, pipe.encoder, [pipe.work(plan)], pipe.batch_size)

    threads = [threading.Thread(target=work) for _ in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run_costs(wide: Any, narrow: Any) -> None:
    """``session.run`` medians for a grid of rows x tokens (random ids, no padding) on both sessions: what
    ``batching.RUN_OVERHEAD`` is read from (a run's fixed cost over its cost per token)."""
    import numpy as np

    rng = np.random.default_rng(0)
    print("| rows x tokens | every thread (ms) | one thread (ms) |\n|---|--:|--:|")
    for rows, tokens in ((1, 8), (1, 24), (1, 48), (8, 24), (32, 24), (32, 48)):
        ids = rng.integers(1000, 2000, (rows, tokens))
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        cells = []
        for session in (wide, narrow):
            session.run(feed)
            times = []
            for _ in range(max(5, 64 // rows)):
                t0 = time.perf_counter()
                session.run(feed)
                times.append(time.perf_counter() - t0)
            cells.append(f"{statistics.median(times) * 1e3:.2f}")
        print(f"| {rows} x {tokens} | {' | '.join(cells)} |")
    print()


def main(argv: list[str] | None = None) -> int:
    from onnxpipe import pipeline
    from onnxpipe.export.data import load_sst2
    from onnxpipe.session import Session

    p = argparse.ArgumentParser(prog="python -m onnxpipe.bench.serve_batches", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder with SST-2 dev.tsv")
    p.add_argument("--task", default="text-classification")
    p.add_argument("--rows", type=int, default=800)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--run-costs", action="store_true", help="also time bare graph runs by rows x tokens (the batching cost model)"
    )
    a = p.parse_args(argv)
    texts = load_sst2(a.data, "dev")[0][: a.rows]
    pipe = pipeline(a.task)
    one_core = Session(pipe.artifact.variant_file(pipe.variant), threads=1)
    pipe(texts)  # warm both sessions on every length
    side_by_side(pipe, one_core, [texts], 1)
    ways: dict[str, Any] = {"pipe(list)": lambda: pipe(texts)}
    for size in (8, 16, 32):
        batches = groups(texts, size, seed=size)
        ways[f"groups of {size}, one session ({pipe.session.threads} threads)"] = lambda b=batches: [pipe(x) for x in b]
        ways[f"groups of {size}, two one-thread streams"] = lambda b=batches: side_by_side(pipe, one_core, b, 2)
    rates: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(a.rounds):
        for name, way in ways.items():
            t0 = time.perf_counter()
            way()
            rates[name].append(len(texts) / (time.perf_counter() - t0))
    if a.run_costs:
        run_costs(pipe.session, one_core)
    base = statistics.median(rates["pipe(list)"])
    print(f"{a.task}, variant {pipe.variant}, {len(texts)} SST-2 dev sentences, {a.rounds} rounds\n")
    print("| way | sentences/s (median; rounds) | of pipe(list) |\n|---|--:|--:|")
    for name, r in rates.items():
        med = statistics.median(r)
        print(f"| {name} | {med:.0f} ({', '.join(f'{x:.0f}' for x in r)}) | {med / base:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
