"""Micro-batching by a padded-token budget: requests' features gathered into one graph run, one thread.

Callers plan and tokenize off the event loop (:meth:`Pipeline.plan`), then ``submit`` the plan. One inference thread takes the oldest request, then every request already waiting while
the batch stays within ``max_batch_tokens`` (longest × count, what padding costs) and
``max_batch_requests``; it waits up to ``max_wait_ms`` for more only while requests are still arriving,
so a lone request on an idle server runs at once. Each request's rows are postprocessed with its own
parameters and handed back to its own future: a caller only ever sees its own results, and with a
batch-invariant variant they equal the in-process pipeline's.

Hand-written because no serving library batches by tokens across callers for an onnxruntime graph
(TEI does so in Rust for its own models; Ray Serve and Triton batch by request count).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..batching import stack
from ..pipeline import Feature, Pipeline, Plan
from .metrics import Metrics


class QueueFull(Exception):
    pass


@dataclass
class Job:
    plan: Plan[Any]
    pipe: Pipeline[
        Any, Any, Any
    ]  # the task that postprocesses (a model's graph may serve several: embeddings and features)
    future: asyncio.Future[list[Any]]
    loop: asyncio.AbstractEventLoop
    queued_at: float = field(default_factory=time.perf_counter)
    cancelled: bool = False
    queue_s: float = 0.0
    inference_s: float = 0.0
    batch_requests: int = 0

    @property
    def features(self) -> list[Feature]:
        return self.plan.features

    @property
    def tokens(self) -> int:
        return max(f.length for f in self.features)


class Batcher:
    def __init__(
        self,
        pipe: Pipeline[Any, Any, Any],
        max_batch_tokens: int = 16384,
        max_batch_requests: int = 16,
        max_wait_ms: float = 2.0,
        max_queue: int = 1024,
        metrics: Metrics | None = None,
        model: str = "default",
    ):
        self.pipe = pipe
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_requests = max_batch_requests
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.metrics = metrics
        self.model = model
        self.queue: queue.Queue[Job | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name=f"onnxpipe-infer-{model}", daemon=True)
        self.thread.start()

    async def submit(self, plan: Plan[Any], pipe: Pipeline[Any, Any, Any] | None = None) -> tuple[list[Any], Job]:
        """The plan's per-feature values (``pipe``'s postprocess, with the plan's own parameters), once its rows
        have run in some batch; ``pipe.complete(plan, values)`` is the request's answer."""
        if self.queue.qsize() >= self.max_queue:
            raise QueueFull(f"the queue holds {self.max_queue} requests already")
        loop = asyncio.get_running_loop()
        job = Job(plan, pipe or self.pipe, loop.create_future(), loop)
        self.queue.put(job)
        if self.metrics:
            self.metrics.queue_depth.labels(self.model).set(self.queue.qsize())
        try:
            return await asyncio.shield(job.future), job
        except asyncio.CancelledError:  # the caller timed out or left: never run (or answer) it
            job.cancelled = True
            raise

    def close(self) -> None:
        """Stop after every request already queued is answered (graceful shutdown drains)."""
        self.queue.put(None)
        self.thread.join(timeout=60)

    # -- the inference thread ------------------------------------------------------------------
    def _loop(self) -> None:
        pending: Job | None = None
        stop = False
        while not stop:
            first = pending if pending is not None else self.queue.get()
            pending = None
            if first is None:
                return
            jobs = [first]
            longest, count = first.tokens, len(first.features)
            deadline = time.perf_counter() + self.max_wait
            while len(jobs) < self.max_batch_requests:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    # Nothing waiting: a lone request runs now; under traffic, wait a little for more.
                    remaining = deadline - time.perf_counter()
                    if len(jobs) == 1 or remaining <= 0:
                        break
                    try:
                        nxt = self.queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if nxt is None:
                    stop = True
                    break
                if max(longest, nxt.tokens) * (count + len(nxt.features)) > self.max_batch_tokens:
                    pending = nxt  # past the token budget: it opens the next batch
                    break
                jobs.append(nxt)
                longest, count = max(longest, nxt.tokens), count + len(nxt.features)
            if self.metrics:
                self.metrics.queue_depth.labels(self.model).set(self.queue.qsize())
            self._run([j for j in jobs if not j.cancelled])
        if pending is not None:
            self._run([pending])

    def _run(self, jobs: list[Job]) -> None:
        """Run the jobs' features in length-sorted graph runs, answering each job as soon as its last row is
        computed: short requests leave before the long ones' runs, and their clients can send again while
        the rest of the batch still runs (answering at the end held every client for the whole batch)."""
        if not jobs:
            return
        started = time.perf_counter()
        features = [f for job in jobs for f in job.features]
        owner = [j for j, job in enumerate(jobs) for _ in job.features]
        first = np.cumsum([0] + [len(job.features) for job in jobs])
        left = [len(job.features) for job in jobs]
        rows: dict[int, tuple[dict[str, np.ndarray], int]] = {}
        try:
            for idx, outputs in self.pipe.runs(features):
                for r, i in enumerate(idx):
                    rows[i] = (outputs, r)
                    left[owner[i]] -= 1
                if self.metrics:
                    self.metrics.batch_size.labels(self.model).observe(len(idx))
                    self.metrics.batch_tokens.labels(self.model).observe(
                        len(idx) * max(features[i].length for i in idx)
                    )
                for j in sorted({owner[i] for i in idx}):
                    if left[j] == 0:
                        mine = [rows.pop(i) for i in range(first[j], first[j + 1])]
                        self._answer(jobs[j], mine, started, len(jobs))
        except BaseException as e:  # a graph failure answers every caller still waiting; the thread lives on
            for job in jobs:
                job.loop.call_soon_threadsafe(_resolve, job.future, None, e)

    @staticmethod
    def _answer(job: Job, mine: list[tuple[dict[str, np.ndarray], int]], started: float, batched: int) -> None:
        """Postprocess one job's rows with its own parameters; an error there answers that job alone."""
        try:
            outputs = {name: stack([o[name][r] for o, r in mine]) for name in mine[0][0]}
            values, error = job.pipe.postprocess(job.features, outputs, **job.plan.post), None
        except Exception as e:
            values, error = None, e
        job.queue_s, job.inference_s, job.batch_requests = (
            started - job.queued_at,
            time.perf_counter() - started,
            batched,
        )
        job.loop.call_soon_threadsafe(_resolve, job.future, values, error)


def _resolve(future: asyncio.Future[list[Any]], values: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(values)
