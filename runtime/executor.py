"""The one executor: features in, postprocessed values out, in the callers' order.

Every entry point that runs a graph calls :func:`execute` — the Python call (:meth:`Pipeline.execute`), the
server's batcher (which only chooses which requests share a call), ``explain`` (which watches the runs through
``observe``) and the exporter's validation — so a feature is padded (:meth:`TextEncoder.collate`, the one
place padding happens), run and postprocessed the same way, and gets the same answer, wherever it is sent.

A call carries one or more :class:`Work` items, each with its own postprocess (a task and its parameters):
their features share graph runs cut by :func:`batching.chunks`, and each run's rows of one item are
postprocessed together, in the run's order, so no output is ever re-stacked or re-padded after the graph.
A session with streams (:class:`session.Session`) runs a call's graph runs several at a time; they are still
postprocessed and answered in the runs' order, on the calling thread.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, wait
from contextlib import closing
from itertools import accumulate, islice
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np
from tokenizers import Encoding

from .arrays import Outputs
from .batching import RUN_OVERHEAD, chunks


@dataclass
class Feature:
    """One encoding the graph runs, and where its outputs belong."""

    encoding: Encoding
    owner: int  # index of the input (in the call's list) this feature belongs to
    length: int  # tokens before padding (collate pads the encoding in place)
    context: Any = None  # what the task's postprocess / aggregate needs besides the encoding


Postprocess = Callable[[list[Feature], Outputs], list[Any]]


class Runs(Protocol):
    """What a graph run needs: a session (or any :class:`Engine`) and the encoder that pads its feed."""

    def run(self, feed: dict[str, np.ndarray]) -> Outputs: ...


class Streams(Protocol):
    """A session that takes several runs at once (:class:`session.Session`): ``streams`` of them."""

    streams: int

    def submit(self, feed: dict[str, np.ndarray]) -> Future[tuple[Outputs, float]]: ...


def streams_of(engine: object) -> int:
    """How many graph runs an engine takes at once: a :class:`session.Session`'s streams; 1 for an engine handed in
    (the benchmark's peers), which runs one at a time."""
    streams: int = getattr(engine, "streams", 1)
    return streams


class Collates(Protocol):
    def collate(self, encodings: list[Encoding]) -> dict[str, np.ndarray]: ...


@dataclass
class Work:
    """One caller's features and what turns its rows into values.

    ``answer`` is called with the values as soon as the last of them is computed (the server answers a short
    request before a long one's runs end); ``fail`` takes an exception raised by this item's postprocess, which
    then fails this item alone. Without ``fail`` the exception propagates to the caller of :func:`execute`."""

    features: Sequence[Feature]
    postprocess: Postprocess
    answer: Callable[[list[Any]], None] | None = None
    fail: Callable[[BaseException], None] | None = None


# observe(the run's feature indices (over all items' features, in order), the graph's outputs, its seconds),
# called once the run's rows are postprocessed and its finished items answered
Observer = Callable[[list[int], Outputs, float], None]


def execute(
    session: Runs,
    encoder: Collates,
    work: Sequence[Work],
    size: int,
    observe: Observer | None = None,
    overhead: float = RUN_OVERHEAD,
) -> list[list[Any]]:
    """Each item's values, in its features' order. Graph runs hold at most ``size`` features (the batch size),
    cut by :func:`batching.chunks` with its per-run ``overhead`` (export validation pads on purpose: ``inf``);
    a failing graph run raises here, for the caller to answer every item still waiting."""
    features = [f for w in work for f in w.features]
    owner = [k for k, w in enumerate(work) for _ in w.features]
    start = list(accumulate((len(w.features) for w in work), initial=0))  # not np.cumsum: 30 us a call on a list
    values: list[list[Any]] = [[None] * len(w.features) for w in work]
    left = [len(w.features) for w in work]
    failed = [False] * len(work)
    for w in work:
        if not w.features and w.answer is not None:  # nothing to run: answered at once
            w.answer([])
    runs = chunks([f.length for f in features], size, overhead)
    with closing(_graph_runs(session, encoder, features, runs)) as graph_runs:  # closed: no run outlives the call
        for idx, outputs, run_s in graph_runs:
            for k, rows in _by_item(idx, owner):
                if failed[k]:
                    continue
                mine = [idx[r] for r in rows]
                sliced = outputs if len(rows) == len(idx) else {n: o[rows] for n, o in outputs.items()}
                item = work[k]
                try:
                    done = item.postprocess([features[i] for i in mine], sliced)
                except Exception as e:
                    if item.fail is None:
                        raise
                    failed[k] = True
                    item.fail(e)
                    continue
                for i, value in zip(mine, done):
                    values[k][i - start[k]] = value
                left[k] -= len(rows)
                if left[k] == 0 and item.answer is not None:
                    item.answer(values[k])
            if observe is not None:  # after the run's answers: the server hands them over once per run from here
                observe(idx, outputs, run_s)
    return values


def _by_item(idx: list[int], owner: list[int]) -> list[tuple[int, list[int]]]:
    """A run's row positions grouped by the item that owns each feature, items in order of first row."""
    groups: dict[int, list[int]] = {}
    for r, i in enumerate(idx):
        groups.setdefault(owner[i], []).append(r)
    return list(groups.items())


def _graph_runs(
    session: Runs, encoder: Collates, features: list[Feature], runs: list[list[int]]
) -> Generator[tuple[list[int], Outputs, float], None, None]:
    """Each run's feature indices, outputs and seconds, in the runs' order. A session with ``streams`` (onnxpipe's
    :class:`Session`) takes several runs at once: runs are padded here and queued ahead to keep every stream busy
    while this thread postprocesses, and still come back in order, so answers, failures and ``observe`` see the
    same sequence as one run at a time. Closing the generator (an exception, a failed run) cancels the runs not
    started and waits for those running."""

    def pad(idx: list[int]) -> dict[str, np.ndarray]:
        return encoder.collate([features[i].encoding for i in idx])

    streams = streams_of(session) if len(runs) > 1 else 1
    if streams <= 1:
        for idx in runs:
            feed = pad(idx)
            t0 = time.perf_counter()
            outputs = session.run(feed)
            yield idx, outputs, time.perf_counter() - t0
        return
    submit = cast("Streams", session).submit
    todo = iter(runs)
    ahead: deque[tuple[list[int], Future[tuple[Outputs, float]]]] = deque()

    def queue(idx: list[int]) -> None:
        ahead.append((idx, submit(pad(idx))))

    try:
        # Twice the streams queued: a stream that ends its run finds the next one padded and waiting.
        for idx in islice(todo, 2 * streams):
            queue(idx)
        while ahead:
            idx, future = ahead[0]
            outputs, seconds = future.result()
            ahead.popleft()
            later = next(todo, None)
            if later is not None:
                queue(later)
            yield idx, outputs, seconds
    finally:
        for _, future in ahead:
            future.cancel()
        wait([future for _, future in ahead])
