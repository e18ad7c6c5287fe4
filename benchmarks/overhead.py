"""Where onnxpipe's batch-1 time goes beyond a bare ``session.run``, step by step.

    python -m onnxpipe.bench.overhead [ARTIFACT] [--variant int8]

Each line adds one step to the one above and is timed interleaved with the others (blocks of 50
calls, median of 20 blocks), so the differences between lines are the cost of each step.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .measure import SEED


def main(argv: list[str] | None = None) -> None:
    import onnxpipe

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", nargs="?", help="artifact folder (default: the embedded default model)")
    p.add_argument("--variant")
    a = p.parse_args(argv)
    pipe = onnxpipe.pipeline("text-classification" if a.artifact is None else None, model=a.artifact, variant=a.variant)
    feed = pipe.encoder.collate(pipe.encode([SEED]))
    from onnxpipe.session import Session

    assert isinstance(pipe.session, Session)  # onnxpipe's own engine: no engine= was handed in
    run = pipe.session.session.run  # onnxruntime's InferenceSession under it
    steps = {
        "bare session.run, same encoded input": lambda: run(None, feed),
        "+ tokenize (result unused)": lambda: (pipe.encode([SEED]), run(None, feed)),
        "+ pad into fresh arrays": lambda: run(None, pipe.encoder.collate(pipe.encode([SEED]))),
        "+ checks, softmax, dicts: pipe(text)": lambda: pipe(SEED),
    }
    times: dict[str, list[float]] = {k: [] for k in steps}
    for f in steps.values():
        for _ in range(100):
            f()
    for _ in range(20):
        for name, f in steps.items():
            t = time.perf_counter()
            for _ in range(50):
                f()
            times[name].append((time.perf_counter() - t) / 50)
    base = float(np.median(times[next(iter(times))]))
    for name, ts in times.items():
        ms = float(np.median(ts)) * 1e3
        print(f"{ms:7.3f} ms  {100 * (ms / 1e3 / base - 1):+6.1f}%  {name}")
    print(f"{own_work(pipe, feed) * 1e3:7.3f} ms  the runtime's own work over tokenize + pad, the graph run stubbed")


def own_work(pipe, feed: dict) -> float:
    """Seconds that ``pipe(text)`` spends beyond tokenizing and padding, with onnxruntime's run answered from a
    cache: the runtime's Python alone, which the graph's run-to-run noise (often larger) cannot hide."""
    session = pipe.session.session
    answer = session.run(None, {n: feed[n] for n in pipe.session.input_names})

    class Cached:
        def run(self, names, feeds, *options):
            return answer

    steps = [lambda: pipe.encoder.collate(pipe.encode([SEED])), lambda: pipe(SEED)]
    times: list[list[float]] = [[], []]
    pipe.session.session = Cached()
    try:
        for _ in range(15):
            for ts, f in zip(times, steps):
                t = time.perf_counter()
                for _ in range(200):
                    f()
                ts.append((time.perf_counter() - t) / 200)
    finally:
        pipe.session.session = session
    return float(np.median(times[1]) - np.median(times[0]))


if __name__ == "__main__":
    main()
