"""One graph, one session layout, one process: batch-1 p50 on the seed sentence and dev throughput at batch 32.

    python -m onnxpipe.bench.per_process ARTIFACT VARIANT --data DIR [--mode t2|t2-1stream|t1|t2-nospin|2x1]

Run it once per contender in turns (a shell loop), so that each figure comes from a fresh process and the
machine's drift spreads over all of them; the README's last-layer and thread tables come from this command.
Modes: t2 (one session, every core, spinning, a list's batches on one-thread streams: the runtime's default),
t2-1stream (the same, a list's batches one after another on every core), t1 (one thread), t2-nospin (as
``onnxpipe serve``'s session runs), 2x1 (two one-thread sessions, each on half the texts at once; throughput only).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path

SEED = "We are very happy to show you the 🤗 Transformers library."


def main(argv: list[str] | None = None) -> None:
    import onnxpipe
    from onnxpipe.export.data import load_sst2
    from onnxpipe.session import Session

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", type=Path)
    p.add_argument("variant")
    p.add_argument("--data", type=Path, required=True, help="folder holding SST-2 dev.tsv")
    p.add_argument("--mode", choices=("t2", "t2-1stream", "t1", "t2-nospin", "2x1"), default="t2")
    a = p.parse_args(argv)
    texts, _ = load_sst2(a.data, "dev")

    def make(threads: int | None, spin: bool = True):
        pipe = onnxpipe.pipeline(model=a.artifact, variant=a.variant, threads=threads)
        if not spin:  # the server's session options: no spinning threads, no arena
            pipe.session = Session(pipe.model_path, threads, serving=True)
        return pipe

    if a.mode == "2x1":
        pipes = [make(1), make(1)]
        for pipe in pipes:
            pipe(texts[:64])
        halves, b1, best = [texts[0::2], texts[1::2]], float("nan"), 0.0
        for _ in range(2):
            t = time.perf_counter()
            workers = [threading.Thread(target=q, args=(h,), kwargs={"batch_size": 32}) for q, h in zip(pipes, halves)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            best = max(best, len(texts) / (time.perf_counter() - t))
    else:
        pipe = make(1 if a.mode == "t1" else None, spin=a.mode != "t2-nospin")
        if a.mode == "t2-1stream":
            pipe.session.streams = 1
        for _ in range(20):
            pipe(SEED)
        times = []
        for _ in range(300):
            t = time.perf_counter()
            pipe(SEED)
            times.append(time.perf_counter() - t)
        b1, best = statistics.median(times) * 1e3, 0.0
        for _ in range(2):
            t = time.perf_counter()
            pipe(texts, batch_size=32)
            best = max(best, len(texts) / (time.perf_counter() - t))
    print(f"{a.artifact.name} {a.variant} {a.mode}: batch-1 p50 {b1:.2f} ms, {best:.0f} sentences/s at batch 32")


if __name__ == "__main__":
    main()
