"""The engine at the server's batch sizes, in one process: what batching can give a server whose callers arrive a
few at a time, before any HTTP.

    python -m onnxpipe.bench.serve_batches --data ../shared/data/sst2 [--task text-classification] [--rounds 3] \
        [--run-costs] [--packing]

The same SST-2 dev sentences (800, in order, as ``serve_speed`` sends them) go through the default model as
``pipe(list)`` (all at once: sorted into full runs), and in random groups of 8, 16 and 32 (what a server holds
when that many callers wait), each group run on the pipeline's own session (every thread) or split over two
inference threads, each on a one-thread session (the server's streams). Sentences/s per way, the ways taking
turns within each round; medians and every round. Groups of N are the ceiling of a server with N callers: they
arrive together and nothing is spent on HTTP.

``--packing`` asks what padding-free runs would add before anyone builds them: each group's graph runs as the
executor cuts them (padded) against one run of the group packed into rows no longer than its longest sentence
(first-fit decreasing), timed on both sessions as bare ``session.run`` calls of those shapes. A packed run would
keep its sentences apart by a block-diagonal mask, which changes no shape and so no cost.
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


def packed_rows(lengths: list[int]) -> tuple[int, int]:
    """Rows x width of one run holding ``lengths`` packed first-fit decreasing into rows of at most the longest."""
    cap, fills = max(lengths), list[int]()
    for n in sorted(lengths, reverse=True):
        k = next((k for k, f in enumerate(fills) if f + n <= cap), None)
        if k is None:
            fills.append(n)
        else:
            fills[k] += n
    return len(fills), max(fills)


def packing(pipe: Any, sessions: dict[str, Any], texts: list[str], rounds: int) -> None:
    """Sentences/s of each group size's padded runs (the executor's cut) against the same groups packed, per
    session, as bare runs of their shapes; ``pipe(list)``'s own runs are the 1.00x."""
    import numpy as np

    from onnxpipe.batching import chunks

    lengths = [f.length for f in pipe.featurize(pipe.plan(texts)).features]

    def padded(group: list[int]) -> list[tuple[int, int]]:
        cut = chunks([lengths[i] for i in group], pipe.batch_size)
        return [(len(r), max(lengths[group[i]] for i in r)) for r in cut]

    ways = {"pipe(list)'s runs": padded(list(range(len(texts))))}
    for size in (8, 16, 32):
        order = list(range(len(texts)))
        random.Random(size).shuffle(order)  # the groups the main table times
        batches = [order[k : k + size] for k in range(0, len(order), size)]
        ways[f"groups of {size}, padded"] = [s for b in batches for s in padded(b)]
        ways[f"groups of {size}, packed"] = [packed_rows([lengths[i] for i in b]) for b in batches]
    feeds = {}
    for rows, width in {s for shapes in ways.values() for s in shapes}:
        ids = np.full((rows, width), 2000, dtype=np.int64)
        feeds[rows, width] = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids}
    print("| runs of | padded tokens | " + " | ".join(f"{name}: sentences/s" for name in sessions) + " |")
    print("|---|--:|" + "--:|" * len(sessions))
    table: dict[str, list[float]] = {way: [] for way in ways}
    for session in sessions.values():
        for shape in feeds:
            session.run(feeds[shape])
        times: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(rounds):  # the ways take turns within each round
            for way, shapes in ways.items():
                t0 = time.perf_counter()
                for shape in shapes:
                    session.run(feeds[shape])
                times[way].append(time.perf_counter() - t0)
        for way in ways:
            table[way].append(len(texts) / statistics.median(times[way]))
    base = table["pipe(list)'s runs"]
    for way, rates in table.items():
        tokens = sum(r * w for r, w in ways[way])
        cells = " | ".join(f"{r:.0f} ({r / b:.2f}x)" for r, b in zip(rates, base))
        print(f"| {way} | {tokens} in {len(ways[way])} runs | {cells} |")
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
    p.add_argument("--packing", action="store_true", help="also time the groups' padded runs against packed rows")
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
    if a.packing:
        packing(pipe, {f"{pipe.session.threads} threads": pipe.session, "1 thread": one_core}, texts, a.rounds)
    base = statistics.median(rates["pipe(list)"])
    print(f"{a.task}, variant {pipe.variant}, {len(texts)} SST-2 dev sentences, {a.rounds} rounds\n")
    print("| way | sentences/s (median; rounds) | of pipe(list) |\n|---|--:|--:|")
    for name, r in rates.items():
        med = statistics.median(r)
        print(f"| {name} | {med:.0f} ({', '.join(f'{x:.0f}' for x in r)}) | {med / base:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
