"""Timing loops: batch-1 latency over a length mix, dev-set throughput, cold start in a new process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any, Callable

import numpy as np

# A realistic length mix for batch-1 latency: a word, the seed sentence, a review, one past 512 tokens.
SEED = "We are very happy to show you the 🤗 Transformers library."
LENGTH_MIX = {
    "short": "Great fun.",
    "sentence": SEED,
    "paragraph": ("A gripping, beautifully shot film whose quiet final act lingers long after the credits; the "
                  "cast is uniformly strong, though the middle stretch drags and a subplot about the brother goes "
                  "nowhere. Still, it is the rare drama that trusts its audience, and I would see it again."),
    "past_limit": "an overlong , repetitive and ultimately exhausting story that never ends . " * 60,
}


def latencies(call: Callable[[str], Any], rounds: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call for each text of the mix, interleaved so drift hits every length alike."""
    for _ in range(warmup):
        for text in LENGTH_MIX.values():
            call(text)
    out: dict[str, list[float]] = {k: [] for k in LENGTH_MIX}
    for _ in range(rounds):
        for name, text in LENGTH_MIX.items():
            t = time.perf_counter()
            call(text)
            out[name].append(time.perf_counter() - t)
    return out


def run_throughput(predict: Callable[[list[str], int], np.ndarray], texts: list[str], batch_size: int
                   ) -> tuple[float, np.ndarray]:
    predict(texts[: batch_size * 2], batch_size)  # warm-up
    t = time.perf_counter()
    probs = predict(texts, batch_size)
    return time.perf_counter() - t, probs


_COLD_PRELUDE = """
import json, resource, sys, time
t_start = time.time()
TEXT = {text!r}
"""
_COLD_EPILOGUE = """
t_first = time.time()
print(json.dumps({{"import_s": t_import - t_start, "first_result_at": t_first,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
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
        runs.append({"cold_start_s": r["first_result_at"] - t0, "import_s": r["import_s"],
                     "peak_rss_mib": r["peak_rss_mib"]})
    runs.sort(key=lambda r: r["cold_start_s"])
    return runs[len(runs) // 2]
