"""The traffic routes' lean path (issue 29): requests queued together are tokenized together and still each get
exactly their own answer (or their own refusal); the routes that skip FastAPI's machinery are the declared ones,
and what that path does not take keeps FastAPI's answer; responses read back as what ``json.dumps`` writes."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.responses import JSONResponse

import onnxpipe
from onnxpipe.serve.app import Settings, create_app
from onnxpipe.serve.fast import Direct
from onnxpipe.serve.routes import Answer

from .test_app import queued_together, ready


@pytest.fixture(scope="module")
def client(artifact):
    models = {"sst": artifact("bert", "single", quantize="int8"), "emb": artifact("bert", "base")}
    with TestClient(
        create_app(models, Settings(max_batch_requests=16, streams=1, lone_inline=0))
    ) as c:  # gated: see test_app
        yield ready(c)


def test_a_batch_tokenized_together_answers_each_request_its_own(client, artifact):
    sst = onnxpipe.pipeline(model=artifact("bert", "single", quantize="int8"))
    served = client.app.state.server.served["sst"]
    good = ["good film", ["a beautiful, moving film", "with a great cast"], "never again", "the food was bad"]
    overlong = "word " * 600  # past the tiny model's 128 positions
    got: dict[str, object] = {}

    def post(key, body, route="/predict"):
        def call():
            content = json.dumps(body).encode()  # escaped: httpx's json= cannot send a lone surrogate
            r = client.post(route, content=content, headers={"content-type": "application/json"})
            got[key] = (r.status_code, r.json(), r.headers.get("x-batch-requests"))

        return call

    calls = [post("holder", {"inputs": "held"})]
    calls += [post(f"good{i}", {"inputs": [g]}) for i, g in enumerate(good)]
    calls.append(post("surrogate", {"inputs": "bad \ud800 text"}))  # read takes it; only the tokenizer refuses it
    calls.append(post("too_long", {"inputs": overlong, "truncate": False}))
    calls.append(post("cut", {"inputs": overlong}))
    queued_together(served, calls)

    for i, g in enumerate(good):
        item = {"text": g[0], "text_pair": g[1]} if isinstance(g, list) else g
        status, body, batched = got[f"good{i}"]
        assert status == 200, body
        assert body == [sst(item, top_k=None)]  # its own answer, as in-process (int8 is batch-invariant)
        assert batched == "5"  # the four good ones and the overlong one that is cut shared the run
    assert got["surrogate"][0] == 422 and "surrogate" in got["surrogate"][1]["error"]
    assert got["too_long"][0] == 422 and got["too_long"][1]["error_type"] == "too_long"
    assert got["cut"][0] == 200 and got["cut"][1] == sst(overlong, top_k=None)


def test_the_traffic_routes_take_the_direct_path_and_the_rest_keep_fastapis_answer(client):
    direct = Direct(None, client.app)._table()
    assert {"/predict", "/embed", "/rerank", "/v1/embeddings", "/v1/pipeline"} <= set(direct)
    assert not any("{" in path for path in direct)  # path parameters go through FastAPI
    # Not JSON by its header: FastAPI reads it (a 422 in the family's shape), as before the direct path.
    r = client.post("/predict", content=b'{"inputs": "good"}', headers={"content-type": "text/plain"})
    assert r.status_code == 422 and r.json()["error_type"] == "validation"
    # A body the model refuses goes to FastAPI replayed: FastAPI's words, naming the field.
    r = client.post("/embed", json={"inputs": 5})
    assert r.status_code == 422 and r.json()["error"].startswith("body.inputs")
    # An error the endpoint raises is answered by the app's handler, with the route family's shape.
    r = client.post("/v1/embeddings", json={"input": "x", "model": "nope"})
    assert r.status_code == 404 and set(r.json()) == {"error"}
    # A JSON content type with parameters is still JSON.
    r = client.post(
        "/embed", content=b'{"inputs": "good"}', headers={"content-type": "application/json; charset=utf-8"}
    )
    assert r.status_code == 200 and len(r.json()[0]) == 32


@pytest.mark.parametrize(
    "value",
    [
        [np.random.default_rng(0).standard_normal(384).astype(np.float32).tolist()],
        [{"label": "POSITIVE", "score": 0.9968554973602295}, {"label": "NEGATIVE", "score": 1e-05}],
        {"entity": "B-PER", "word": "zoë ☃ 🤗", "start": 0, "end": 3, "score": 2.5e-300, "big": 2**62},
        [[{"index": 7, "value": 0.1}], [], None, True, 'q"uote\\ \n\t\u0001'],
    ],
)
def test_answers_read_back_as_what_json_dumps_writes(value):
    """orjson may spell a float otherwise (0.00001 for 1e-05), never another value: each reads back the same."""
    ours, starlettes = json.loads(Answer(value).body), json.loads(JSONResponse(value).body)
    assert ours == starlettes == value
    assert json.dumps(ours) == json.dumps(starlettes)  # same types too (an int stays an int)


class Counting:
    """An engine that counts its graph runs (and can hold the first one until the test opens it)."""

    def __init__(self, engine, hold: bool = False):
        self.engine, self.runs = engine, 0
        self.open, self.entered = threading.Event(), threading.Event()
        if not hold:
            self.open.set()

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def run(self, feed):
        self.runs += 1
        self.entered.set()
        assert self.open.wait(60)
        return self.engine.run(feed)


def test_spin_busy_runs_on_the_spinning_session_only_while_requests_wait(artifact):
    import asyncio

    from onnxpipe.serve.batcher import Batcher

    sst = onnxpipe.pipeline(model=artifact("bert", "single", quantize="int8"))
    quiet = Counting(sst.session, hold=True)
    busy = Counting(sst.session)
    sst.session = quiet
    batcher = Batcher(sst, max_batch_requests=1, busy=busy)  # one request per batch: the rest wait

    async def run():
        first = asyncio.ensure_future(batcher.submit(sst.read("held")))
        await asyncio.get_running_loop().run_in_executor(None, quiet.entered.wait, 60)
        rest = [asyncio.ensure_future(batcher.submit(sst.read(t))) for t in ("a", "b", "c")]
        while batcher.queue.qsize() < 3:  # a count, not a time
            await asyncio.sleep(0.01)
        quiet.open.set()
        return await asyncio.gather(first, *rest)

    answers = asyncio.run(run())
    batcher.close()
    runs = (quiet.runs, busy.runs)
    assert [values for values, _ in answers] == [sst.execute(sst.plan(t)) for t in ("held", "a", "b", "c")]
    # "held" ran with the queue empty (quiet); "a" and "b" each with requests behind them (busy); "c" last (quiet).
    assert runs == (2, 2)


def test_streams_run_batches_side_by_side_and_a_lone_request_on_every_core(artifact):
    """With streams, a request that arrives while another batch runs starts on a stream of its own before that
    batch ends (held open by the test: an order, not a time), and a batch that finds the others idle and nothing
    waiting runs on the pipe's own (all-thread) session. Every answer is the in-process one."""
    import asyncio

    from onnxpipe.serve.batcher import Batcher
    from onnxpipe.session import Session

    sst = onnxpipe.pipeline(model=artifact("bert", "single", quantize="int8"))
    wide = Counting(sst.session, hold=True)
    narrow = Counting(Session(sst.artifact.variant_file(sst.variant), threads=1))
    sst.session = wide
    batcher = Batcher(sst, streams=[narrow, narrow])

    async def run():
        held = asyncio.ensure_future(batcher.submit(sst.read("held")))
        await asyncio.get_running_loop().run_in_executor(None, wide.entered.wait, 60)
        beside = await batcher.submit(sst.read("beside"))  # answered while "held" is still held
        assert not held.done() and (wide.runs, narrow.runs) == (1, 1)
        wide.open.set()
        first = await held
        while batcher.running:  # its thread leaves the run after answering: a count, not a time
            await asyncio.sleep(0.01)
        after = await batcher.submit(sst.read("after"))  # idle again: the wide session
        return [first, beside, after]

    answers = asyncio.run(run())
    batcher.close()
    runs = (wide.runs, narrow.runs)
    assert [values for values, _ in answers] == [sst.execute(sst.plan(t)) for t in ("held", "beside", "after")]
    assert runs == (2, 1)


def test_streams_default_to_one_per_thread_and_never_more():
    assert Settings().session_streams(2) == 2 and Settings().session_streams(1) == 1
    assert Settings(streams=1).session_streams(4) == 1 and Settings(streams=8).session_streams(2) == 2


class Threads(Counting):
    """Counting, and the thread each graph run ran on."""

    def __init__(self, engine):
        super().__init__(engine)
        self.threads: list[threading.Thread] = []

    def run(self, feed):
        self.threads.append(threading.current_thread())
        return super().run(feed)


def test_a_lone_small_request_runs_where_it_is_read_and_the_rest_on_the_inference_thread(artifact):
    """``here``: with nothing running or waiting, a request within the token bound runs on the calling thread (the
    event loop's), one over it goes to an inference thread already tokenized, and while another batch runs the
    request queues as ever. Every answer is the in-process one."""
    import asyncio

    from onnxpipe.serve.batcher import Batcher

    sst = onnxpipe.pipeline(model=artifact("bert", "single", quantize="int8"))
    engine = Threads(sst.session)
    sst.session = engine
    batcher = Batcher(sst, streams=None)
    long = "the food was good but the service was bad " * 8
    tokens = len(sst.plan(long).features[0].encoding.ids)

    async def run():
        here = await batcher.submit(sst.read("a fine film"), here=tokens - 1)
        there = await batcher.submit(sst.read(long), here=tokens - 1)  # over the bound: the inference thread
        with batcher.lock:
            batcher.running += 1  # as while another batch runs: nothing runs here
        busy = asyncio.ensure_future(batcher.submit(sst.read("a dull film"), here=tokens))
        while batcher.queue.qsize() + batcher.running < 2 and not busy.done():  # queued, or its thread took it
            await asyncio.sleep(0.01)
        with batcher.lock:
            batcher.running -= 1
        return [here, there, await busy]

    answers = asyncio.run(run())
    batcher.close()
    ran, loop_thread = list(engine.threads), threading.main_thread()  # before the in-process calls below add theirs
    assert [values for values, _ in answers] == [sst.execute(sst.plan(t)) for t in ("a fine film", long, "a dull film")]
    assert len(ran) == 3 and ran[0] is loop_thread and ran[1] is not loop_thread and ran[2] is not loop_thread
    assert answers[1][1].tokenized and answers[0][1].batch_requests == 1


def test_lone_inline_takes_0_for_never_and_defaults_to_128_tokens():
    import argparse

    parser = argparse.ArgumentParser()
    Settings.add_arguments(parser)
    assert parser.parse_args(["--lone-inline", "0"]).lone_inline == 0 and parser.parse_args([]).lone_inline == 128


def test_one_caller_alone_means_one_request_in_flight_from_the_only_connection_active_lately():
    import time

    from onnxpipe.serve.guard import Callers

    callers = Callers()
    callers.WINDOW = 0.2
    callers.enter(("127.0.0.1", 5000))
    assert callers.alone()
    callers.enter(("127.0.0.1", 5000))  # a second request in flight (TestClient's callers share one address)
    assert not callers.alone()
    callers.leave()
    callers.leave()
    callers.enter(("127.0.0.1", 5001))  # another connection, within the window
    assert not callers.alone()
    callers.leave()
    time.sleep(0.25)  # both quiet past the window: the next caller is alone
    callers.enter(("127.0.0.1", 5002))
    assert callers.alone()
