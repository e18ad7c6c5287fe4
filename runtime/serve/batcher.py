"""Micro-batching by a padded-token budget: requests' features gathered into one graph run, one thread.

Callers read and featurize a request off the event loop (:meth:`Pipeline.read`, :meth:`Pipeline.featurize`),
then ``submit`` the plan; the batcher only decides which requests share a call of the one executor
(:mod:`onnxpipe.executor`). One inference thread takes the oldest request, then every request already waiting while
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
from functools import partial
from typing import Any

from ..arrays import Outputs
from ..executor import execute
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
        """Run the jobs' features together through the one executor, each job's rows postprocessed with its own
        parameters and answered as soon as its last row is computed: short requests leave before the long
        ones' runs, and their clients can send again while the rest of the batch still runs (answering at the
        end held every client for the whole batch)."""
        if not jobs:
            return
        started = time.perf_counter()
        work = [
            job.pipe.work(job.plan, partial(self._answer, job, started, len(jobs)), partial(self._fail, job))
            for job in jobs
        ]
        features = [f for job in jobs for f in job.features]

        def observe(idx: list[int], outputs: Outputs, run_s: float) -> None:
            if self.metrics:
                self.metrics.batch_size.labels(self.model).observe(len(idx))
                self.metrics.batch_tokens.labels(self.model).observe(len(idx) * max(features[i].length for i in idx))

        try:
            execute(self.pipe.session, self.pipe.encoder, work, self.pipe.batch_size, observe)
        except BaseException as e:  # a graph failure answers every caller still waiting; the thread lives on
            for job in jobs:
                job.loop.call_soon_threadsafe(_resolve, job.future, None, e)

    @staticmethod
    def _answer(job: Job, started: float, batched: int, values: list[Any]) -> None:
        job.queue_s, job.inference_s, job.batch_requests = (
            started - job.queued_at,
            time.perf_counter() - started,
            batched,
        )
        job.loop.call_soon_threadsafe(_resolve, job.future, values, None)

    @staticmethod
    def _fail(job: Job, error: BaseException) -> None:
        """An error in one job's postprocess answers that job alone."""
        job.loop.call_soon_threadsafe(_resolve, job.future, None, error)


def _resolve(future: asyncio.Future[list[Any]], values: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(values)
