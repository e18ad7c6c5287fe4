"""The one executor: the Python call, the server's batcher, explain and export validation run the same features
through it and get identical arrays, bit for bit (not within a tolerance: the same graph runs, padded once)."""

from __future__ import annotations

import asyncio

import numpy as np

import onnxpipe
from onnxpipe.executor import Feature, Work, execute
from onnxpipe.explain import stages
from onnxpipe.serve.batcher import Batcher, Job

# Lengths that make several graph runs (the padding bound splits them), one past the tiny models' 64 positions.
TEXTS = [
    "good",
    "a beautiful, moving film with a great cast " * 3,
    "never again",
    "the food was good but the service was bad " * 20,
    "the food was bad",
    "x y z",
]


def test_every_entry_point_gets_the_same_arrays(artifact):
    from onnxpipe.export.validate import onnx_outputs

    pipe = onnxpipe.pipeline("feature-extraction", model=artifact("bert", "base"))
    called = [np.asarray(a)[0] for a in pipe(TEXTS, return_tensors=True)]  # (tokens, hidden) each
    assert len({a.shape[0] for a in called}) > 2  # several lengths: several graph runs

    explained = [np.asarray(a)[0] for a in stages(pipe, pipe.read(TEXTS, return_tensors=True))["result"]]

    batcher = Batcher(pipe)  # one batch of six requests, one text each, as the server's inference thread runs it

    async def serve() -> list:
        loop = asyncio.get_running_loop()
        jobs = [Job(pipe.plan([t], return_tensors=True), pipe, loop.create_future(), loop) for t in TEXTS]
        await loop.run_in_executor(None, batcher._run, jobs)
        return [pipe.complete(job.plan, await job.future) for job in jobs]

    try:
        served = [np.asarray(r[0])[0] for r in asyncio.run(serve())]
    finally:
        batcher.close()

    validated = onnx_outputs(pipe.session, pipe.encoder, TEXTS, ("last_hidden_state",))[0]["last_hidden_state"]

    for got in (explained, served, validated):
        assert len(got) == len(called)
        for a, b in zip(called, got):
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


class Recorder:
    """An engine that records each feed's shape (and answers with the row index and width as outputs)."""

    def __init__(self):
        self.feeds: list[tuple[int, int]] = []

    def run(self, feed):
        rows, width = feed["input_ids"].shape
        self.feeds.append((rows, width))
        return {"ids": feed["input_ids"]}


def test_items_share_runs_each_postprocessed_alone_and_answered_when_done(artifact):
    """Two callers' features in one call: each item's rows reach its own postprocess in run order, an item is
    answered as soon as its last row is done, and an item whose postprocess fails fails alone."""
    pipe = onnxpipe.pipeline(model=artifact("bert", "single"))
    encode = pipe.encoder.encode

    def features(texts):
        return [Feature(e, i, len(e)) for i, e in enumerate(encode(texts))]

    long_ones, short_ones, broken = features(["a b c d e f g h"] * 2), features(["a", "b"]), features(["c"])
    answered: list[str] = []
    failures: list[BaseException] = []

    def ids(fs, outputs):
        return [list(outputs["ids"][r, : f.length]) for r, f in enumerate(fs)]

    def fail(fs, outputs):
        raise KeyError("a bug in this caller's postprocess")

    engine = Recorder()
    work = [
        Work(long_ones, ids, answer=lambda v: answered.append("long")),
        Work(short_ones, ids, answer=lambda v: answered.append("short")),
        Work(broken, fail, answer=lambda v: answered.append("broken"), fail=failures.append),
    ]
    values = execute(engine, pipe.encoder, work, size=32)
    assert engine.feeds == [(3, 3), (2, 10)]  # the three 1-word texts together, then the two long ones
    assert answered == ["short", "long"] and isinstance(failures[0], KeyError)
    assert values[0] == [list(f.encoding.ids[: f.length]) for f in long_ones]
    assert values[1] == [list(f.encoding.ids[: f.length]) for f in short_ones]


class Streamed(Recorder):
    """An engine with two streams whose third run fails; it records the runs that started and ended."""

    streams = 2

    def __init__(self):
        super().__init__()
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(2)
        self.started: list[int] = []
        self.ended: list[int] = []

    def submit(self, feed):
        self.feeds.append(feed["input_ids"].shape)
        return self.pool.submit(self._run, len(self.feeds) - 1, feed)

    def _run(self, n, feed):
        import time

        self.started.append(n)
        time.sleep(0.05)
        self.ended.append(n)
        if n == 2:
            raise RuntimeError("onnxruntime failed this run")
        return {"ids": feed["input_ids"]}, 0.05


def test_a_failed_stream_run_raises_and_no_run_outlives_the_call(artifact):
    """With streams, runs are queued ahead (a bounded number); the third run's failure reaches the caller after
    the runs before it are answered, the runs not yet queued never start, and none still runs once execute has
    raised (the session is the caller's again)."""
    import pytest

    pipe = onnxpipe.pipeline(model=artifact("bert", "single"))
    encodings = pipe.encoder.encode([" ".join(["w"] * n) for n in range(1, 9)])
    features = [Feature(e, i, len(e)) for i, e in enumerate(encodings)]
    answered: list[int] = []
    engine = Streamed()
    work = [
        Work([f], lambda fs, out: [out["ids"].shape], answer=lambda v, k=k: answered.append(k))
        for k, f in enumerate(features)
    ]
    with pytest.raises(RuntimeError, match="failed this run"):
        execute(engine, pipe.encoder, work, size=1)
    assert sorted(engine.ended) == sorted(engine.started)  # nothing left running
    assert answered == [0, 1]  # the runs before the failed one, answered in order
    # Four queued ahead (twice the streams), one more as each of the first two was consumed: the last two never
    assert len(engine.feeds) == 6 and set(engine.started) <= set(range(6))
    engine.pool.shutdown()
