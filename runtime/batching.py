"""The one batching policy every entry point runs: features sorted by length, cut into the graph runs that
cost least, padding and per-run overhead counted together.

:func:`chunks` is called by the one executor (:mod:`.executor`), which the in-process pipeline, the server's batcher,
``explain`` and the exporter's validation all run, so a text is padded the same way (and gets the same answer)
wherever it is sent.
"""

from __future__ import annotations

import math

import numpy as np

# What a graph run costs beyond its padded tokens, in tokens. Measured on the default sentiment model (2-core AMD
# EPYC, AVX2, 2 threads, `session.run` medians; `python -m onnxpipe.bench.serve_batches --run-costs`): a run costs
# about 2 ms plus 0.11-0.13 ms per padded token in fp32 (two runs: 1 x 8 tokens 3.0 ms both, 1 x 24 4.9 and 4.8 ms,
# 32 x 24 98.6 and 86.2 ms), the 2 ms being mostly the weights streamed from memory once per run. A run is
# therefore worth 16 to 19 padded tokens:
# cutting two runs apart pays only when it saves more padding than that. The total is flat near that figure (a
# run's cost being a sum of such terms), so one figure serves.
RUN_OVERHEAD = 16.0
# Attention holds count x heads x length² scores per layer: a run is also closed before count x length² passes
# this (one 8,192-token text, four of 4,096, ...). Short texts never reach it (32 x 512² is an eighth of it);
# without it a batch of 32 long-context inputs (ModernBERT's 8k) asks tens of GB where transformers, batching
# one at a time by default, asks a few.
MAX_RUN_AREA = 8192 * 8192


def chunks(lengths: list[int], size: int, overhead: float = RUN_OVERHEAD) -> list[list[int]]:
    """Indices grouped into graph runs, shortest first: sorted by length, at most ``size`` a run and at most
    :data:`MAX_RUN_AREA` count x length², cut where the total of (``overhead`` + count x longest) over the runs
    is least. ``overhead=inf`` gives the fewest runs (export validation pads on purpose).

    Hand-written (a dynamic programme over the sorted lengths, O(n x size)) because no library cuts batches by a
    cost: padding every input to the longest would spend what batching saves (measured: a server batching
    SST-2 sentences as they came answered 15% fewer requests/s at 16 clients than one at a time), and a fixed
    padding ratio (this module's earlier rule, runs closed past 1.25 x their real tokens) ignores what each run
    costs by itself, which is what the server's small batches pay most."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    if len(order) <= 1:
        return [order] if order else []
    s = np.array([lengths[i] for i in order], dtype=np.float64)
    n = len(s)
    fewest = math.isinf(overhead)
    best = np.zeros(n + 1)  # best[j]: least cost of the first j sorted features
    cut = np.zeros(n + 1, dtype=np.int64)  # where the last run of that best starts
    for j in range(1, n + 1):
        longest = s[j - 1]
        width = min(size, max(1, int(MAX_RUN_AREA // max(longest * longest, 1.0))))
        lo = max(0, j - width)
        starts = np.arange(j - 1, lo - 1, -1)  # latest start first: ties keep the shortest last run
        costs = best[starts] + (1.0 if fewest else overhead + (j - starts) * longest)  # fewest: runs counted
        k = int(np.argmin(costs))
        best[j], cut[j] = costs[k], starts[k]
    runs: list[list[int]] = []
    j = n
    while j > 0:
        runs.append(order[cut[j] : j])
        j = int(cut[j])
    return runs[::-1]
