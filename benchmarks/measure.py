"""Timing loops: batch-1 latency over a length mix, dev-set throughput, cold start in a new process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any
from collections.abc import Callable

import numpy as np

# A realistic length mix for batch-1 latency: a word, the seed sentence, a review, one past 512 tokens.
SEED = "We are very happy to show you the 🤗 Transformers library."
LENGTH_MIX = {
    "short": "Great fun.",
    "sentence": SEED,
    "paragraph": (
        "A gripping, beautifully shot film whose quiet final act lingers long after the credits; the "
        "cast is uniformly strong, though the middle stretch drags and a subplot about the brother goes "
        "nowhere. Still, it is the rare drama that trusts its audience, and I would see it again."
    ),
    "past_limit": "an overlong , repetitive and ultimately exhausting story that never ends . " * 60,
}


def latency_block(call: Callable[[str], Any], rounds: int) -> dict[str, list[float]]:
    """Seconds per call for each text of the mix, over ``rounds`` rounds with the lengths interleaved.

    The harness runs contenders' blocks in turn (each in its own process), so that the machine's drift
    over the run lands on all of them alike; each block starts with one untimed round, which absorbs
    the previous contender's threads still spinning down.
    """
    for text in LENGTH_MIX.values():
        call(text)
    out: dict[str, list[float]] = {k: [] for k in LENGTH_MIX}
    for _ in range(rounds):
        for length, text in LENGTH_MIX.items():
            t = time.perf_counter()
            call(text)
            out[length].append(time.perf_counter() - t)
    return out


def run_throughput(
    predict: Callable[[list[str], int], np.ndarray], texts: list[str], batch_size: int
) -> tuple[float, np.ndarray]:
    predict(texts[: batch_size * 2], batch_size)  # warm-up
    t = time.perf_counter()
    probs = predict(texts, batch_size)
    return time.perf_counter() - t, probs


_COLD_PRELUDE = """
import json, sys, time
t_start = time.time()
TEXT = {text!r}
"""
# VmHWM, not getrusage's ru_maxrss: the latter survives exec and so reports the parent's peak.
_COLD_EPILOGUE = """
t_first = time.time()
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({{"import_s": t_import - t_start, "first_result_at": t_first, "peak_rss_mib": hwm / 1024}}))
"""


def cold_start(script: str, fields: dict[str, Any], repeats: int) -> dict[str, float]:
    """New process → first result (wall clock from before the spawn), import time, peak RSS; median run."""
    code = (_COLD_PRELUDE + script + _COLD_EPILOGUE).format(text=SEED, **fields)
    runs = []
    for _ in range(repeats):
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"cold-start process failed: {out.stderr.strip().splitlines()[-1:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        runs.append(
            {"cold_start_s": r["first_result_at"] - t0, "import_s": r["import_s"], "peak_rss_mib": r["peak_rss_mib"]}
        )
    runs.sort(key=lambda r: r["cold_start_s"])
    return runs[len(runs) // 2]
