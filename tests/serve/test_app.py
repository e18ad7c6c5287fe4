"""onnxpipe serve, in process: every route's answer equals the Python pipeline's; limits, auth and errors
answer with the status and words a client can act on; concurrent callers each get exactly their own."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

import onnxpipe
from onnxpipe.serve.app import Settings, create_app

TEXTS = ["good film", "the food was bad", "a beautiful, moving film with a great cast", "never again"]


def ready(client: TestClient) -> TestClient:
    for _ in range(300):
        if client.get("/health").status_code == 200:
            return client
        time.sleep(0.05)
    raise AssertionError(client.get("/health").json())


@pytest.fixture(scope="module")
def client(artifact):
    models = {
        "sst": artifact("bert", "single", quantize="int8"),
        "emb": artifact("bert", "base"),
        "qa": artifact("bert", "qa"),
        "ner": artifact("bert", "ner"),
    }
    # One stream: the gated tests (queued_together) hold the one inference thread's graph run while requests queue;
    # a second stream would take them meanwhile. Streams side by side have their own test (test_hot_path). No lone
    # request inline: TestClient's callers share one client address, and a gated run on the event loop would hold
    # the very loop the queued requests need (the inline path has its own tests, test_hot_path).
    settings = Settings(max_client_batch=8, max_body_bytes=20_000, streams=1, lone_inline=0)
    with TestClient(create_app(models, settings)) as c:
        yield ready(c)


def test_pipeline_route_equals_the_python_pipeline(client, artifact):
    sst = onnxpipe.pipeline(model=artifact("bert", "single", quantize="int8"))
    r = client.post("/v1/pipeline", json={"inputs": TEXTS, "parameters": {"top_k": 2}})
    assert r.status_code == 200 and r.json() == sst(TEXTS, top_k=2)
    for header in ("x-tokenization-time", "x-queue-time", "x-inference-time", "x-total-time"):
        assert float(r.headers[header]) >= 0
    qa = onnxpipe.pipeline(model=artifact("bert", "qa"))
    example = {"question": "Where?", "context": "I live in Berlin and work in Paris."}
    r = client.post("/v1/pipeline", json={"inputs": example, "parameters": {"top_k": 2}, "model": "qa"})
    assert r.json() == qa(example, top_k=2)
    ner = onnxpipe.pipeline(model=artifact("bert", "ner"))
    r = client.post(
        "/v1/pipeline",
        json={
            "inputs": TEXTS[2],
            "model": "ner",
            "parameters": {"aggregation_strategy": "simple", "ignore_labels": []},
        },
    )
    assert r.json() == ner(TEXTS[2], aggregation_strategy="simple", ignore_labels=[])


def test_tei_and_openai_routes(client, artifact):
    sst = onnxpipe.pipeline(model=artifact("bert", "single", quantize="int8"))
    assert client.post("/predict", json={"inputs": "good film"}).json() == sst("good film", top_k=None)
    assert client.post("/predict", json={"inputs": TEXTS}).json() == sst(TEXTS, top_k=None)
    pair = {"text": "good film", "text_pair": "bad food"}
    assert client.post("/predict", json={"inputs": ["good film", "bad food"]}).json() == sst(pair, top_k=None)
    raw = client.post("/predict", json={"inputs": "good film", "raw_scores": True}).json()
    assert raw == sst("good film", top_k=None, function_to_apply="none")
    ranked = client.post("/rerank", json={"query": "film", "texts": TEXTS, "return_text": True}).json()
    assert [{k: d[k] for k in ("index", "score")} for d in ranked] == sst.rerank("film", TEXTS)
    assert all(d["text"] == TEXTS[d["index"]] for d in ranked)

    emb = onnxpipe.pipeline("sentence-embeddings", model=artifact("bert", "base"))
    vectors = client.post("/embed", json={"inputs": TEXTS, "model": "emb"}).json()
    unit = emb(TEXTS, normalize=True)
    assert np.allclose(vectors, unit, atol=1e-6)
    # Unnamed, a route takes the first model that runs its task: "emb" here, though "sst" is the default.
    assert np.allclose(client.post("/embed", json={"inputs": TEXTS}).json(), unit, atol=1e-6)
    unknown = client.post("/v1/embeddings", json={"input": TEXTS[:2], "model": "text-embedding-3-small"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    openai = client.post("/v1/embeddings", json={"input": TEXTS[:2], "model": "emb"}).json()
    assert openai["object"] == "list" and [d["index"] for d in openai["data"]] == [0, 1]
    assert np.allclose([d["embedding"] for d in openai["data"]], emb(TEXTS[:2]), atol=1e-6)
    assert openai["usage"]["prompt_tokens"] == sum(len(e) for e in emb.encoder.encode(TEXTS[:2]))
    tokens = client.post("/tokenize", json={"inputs": "good film"}).json()
    assert [t["text"] for t in tokens[0]] == ["[CLS]", "good", "film", "[SEP]"]
    assert [t["special"] for t in tokens[0]] == [True, False, False, True]


def test_limits_and_errors_name_the_problem(client):
    def check(response, status, *words):
        assert response.status_code == status, response.text
        assert all(w in response.json()["error"] for w in words), response.json()

    check(client.post("/v1/pipeline", json={"inputs": ["x"] * 9}), 413, "9 inputs", "at most 8")
    check(client.post("/embed", json={"inputs": "x", "normalize": "yes"}), 422, "normalize")  # booleans only
    check(
        client.post(
            "/v1/pipeline",
            content=b'{"inputs": "' + b"a" * 30_000 + b'"}',
            headers={"content-type": "application/json"},
        ),
        413,
        "limit is 20000",
    )
    check(client.post("/v1/pipeline", json={"inputs": [1, 2]}), 422, "inputs[0] is a int")
    check(client.post("/predict", json={"inputs": 5}), 422, "inputs")
    check(client.post("/v1/pipeline", content=b"{not json", headers={"content-type": "application/json"}), 422)
    check(client.post("/v1/pipeline", json={"inputs": "x", "parameters": {"top_k": -1}}), 422, "top_k")
    check(
        client.post("/embed", json={"inputs": "x", "model": "sst"}),
        400,
        "runs text-classification",
        "needs sentence-embeddings",
    )
    check(client.post("/v1/pipeline", json={"inputs": "x", "model": "nope"}), 404, "no model 'nope'")
    long = "the food was bad " * 100
    check(client.post("/predict", json={"inputs": long, "truncate": False}), 422, "longer than the model's 64 tokens")
    assert client.post("/predict", json={"inputs": long}).status_code == 200  # truncated by default
    surrogate = client.post(
        "/v1/pipeline", content=b'{"inputs": "\\ud800 lone surrogate"}', headers={"content-type": "application/json"}
    )
    check(surrogate, 422, "not valid Unicode")
    info = client.get("/info").json()
    assert info["models"]["sst"]["task"] == "text-classification" and info["limits"]["max_client_batch"] == 8
    # The tests pin the manifest's default (ONNXPIPE_TUNE=0, conftest); /info says so.
    assert info["models"]["sst"]["variant_reason"].startswith("the manifest's default")
    metrics = client.get("/metrics").text
    assert 'onnxpipe_failures_total{kind="too_many_inputs"}' in metrics and "onnxpipe_batch_size_bucket" in metrics
    assert client.get("/openapi.json").json()["paths"]["/rerank"]


class Gate:
    """The served graph, held shut until the test opens it: requests that arrive meanwhile queue, so which of
    them share a graph run is decided by the batcher, not by how the threads happen to be scheduled."""

    def __init__(self, engine):
        self.engine, self.open, self.entered = engine, threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def run(self, feed):
        self.entered.set()
        assert self.open.wait(60), "the test never opened the gate"
        return self.engine.run(feed)


def queued_together(served, calls):
    """Run ``calls`` (functions of no argument, each one request) while the graph is held shut, so that all but
    the first, which holds it, wait in the queue and are gathered into one batch when it opens."""
    gate = Gate(served.pipe.session)
    served.pipe.session = gate
    threads = [threading.Thread(target=c) for c in calls]
    try:
        threads[0].start()
        assert gate.entered.wait(60)  # the first request holds the graph
        for t in threads[1:]:
            t.start()
        for _ in range(1200):  # the others wait in the queue (polling a count, not a time)
            if served.batcher.queue.qsize() == len(calls) - 1:
                break
            time.sleep(0.05)
        assert served.batcher.queue.qsize() == len(calls) - 1
        gate.open.set()
        for t in threads:
            t.join()
    finally:
        gate.open.set()
        served.pipe.session = gate.engine


def test_concurrent_callers_each_get_their_own_answer(client, artifact):
    sst = onnxpipe.pipeline(model=artifact("bert", "single", quantize="int8"))
    texts = [f"{t} {i}" for i in range(3) for t in TEXTS]  # 12 distinct texts, varied lengths
    expected = {t: sst(t) for t in texts}
    got: dict[str, object] = {}
    batches: dict[str, int] = {}
    served = client.app.state.server.served["sst"]

    def call(text):
        def post():
            r = client.post("/v1/pipeline", json={"inputs": text})
            got[text] = r.json()
            batches[text] = int(r.headers["x-batch-requests"])

        return post

    queued_together(served, [call(t) for t in texts])
    assert got == expected  # none lost, none swapped, equal to the in-process pipeline (batch-invariant int8)
    # The first ran alone; the eleven that queued behind it shared one batch (max_batch_requests 16).
    assert batches == {t: 1 if t == texts[0] else len(texts) - 1 for t in texts}


def test_a_misspelt_truncation_is_a_422_naming_it(client):
    """Checked whether or not max_length is given (it once answered without max_length)."""
    for parameters in ({"truncation": "only_thrid"}, {"truncation": "only_thrid", "max_length": 8}):
        r = client.post("/v1/pipeline", json={"inputs": "a fine film", "parameters": parameters})
        assert r.status_code == 422 and "truncation must be a bool or one of" in r.json()["error"], r.json()


def test_api_key(artifact):
    with TestClient(create_app({"m": artifact()}, Settings(api_key="s3cret"))) as c:
        ready(c)
        assert c.post("/v1/pipeline", json={"inputs": "x"}).status_code == 401
        bad = c.post("/v1/pipeline", json={"inputs": "x"}, headers={"authorization": "Bearer nope"})
        assert bad.status_code == 401 and "API key" in bad.json()["error"]
        ok = c.post("/v1/pipeline", json={"inputs": "x"}, headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert c.get("/metrics").status_code == 401


def test_broken_artifact_is_reported_by_health_not_a_crash(artifact, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(artifact(), broken)
    (broken / "model.onnx").write_bytes(b"not onnx")
    with TestClient(create_app({"m": broken})) as c:
        for _ in range(100):
            health = c.get("/health")
            if health.json()["status"] != "loading":
                break
            time.sleep(0.05)
        assert health.status_code == 503 and "model.onnx" in health.json()["error"]
        r = c.post("/v1/pipeline", json={"inputs": "x"})
        assert r.status_code == 503 and "model.onnx" in r.json()["error"]


def test_a_batch_answers_each_request_when_its_rows_are_done(artifact):
    """In one batch a short request is answered after its own graph run, not after the long one's, and a
    request whose postprocess fails is answered with its error alone."""
    import asyncio

    from onnxpipe.inputs import Post
    from onnxpipe.serve.batcher import Batcher, Job

    sst = onnxpipe.pipeline(model=artifact("bert", "single", quantize="int8"))
    batcher = Batcher(sst, max_batch_requests=8)
    long_text, short_text = "a beautiful, moving film " * 40, "good"

    async def run():
        loop = asyncio.get_running_loop()
        plans = [sst.plan([long_text] * 4), sst.plan([short_text]), sst.plan([short_text])]
        plans[2].post = Post()  # a postprocess that fails: given the base class, not its own parameters
        jobs = [Job(plan, sst, loop.create_future(), loop) for plan in plans]
        order: list[int] = []
        for n, job in enumerate(jobs):
            job.future.add_done_callback(lambda _, n=n: order.append(n))
        await loop.run_in_executor(None, batcher._run, jobs)
        results = await asyncio.gather(*(j.future for j in jobs), return_exceptions=True)
        return jobs, order, results

    jobs, order, results = asyncio.run(run())
    batcher.close()
    assert order == [1, 2, 0]  # the short ones' run comes first (length order); the long request's after it
    for job, result in zip(jobs[:2], results):  # the rows each got are its own
        alone = sst.session.run(sst.encoder.collate([f.encoding for f in job.features]))
        assert result == sst.postprocess(job.features, alone, job.plan.post)
    assert isinstance(results[2], AttributeError)  # its postprocess was given no parameters of its own


def test_pipeline_route_reads_a_request_as_the_python_call_does(client, artifact):
    """Call forms that the task's argument parsing reads (NER's pre-split words) answer as in Python."""
    ner = onnxpipe.pipeline(model=artifact("bert", "ner"))
    words = ["My", "name", "is", "Wolfgang"]
    params = {"is_split_into_words": True, "ignore_labels": []}
    r = client.post("/v1/pipeline", json={"inputs": words, "model": "ner", "parameters": params})
    assert r.status_code == 200 and r.json() == ner(words, **params)
    assert len(r.json()) == 1 and r.json()[0][0]["start"] == 0  # one input (the words), as a list of one


def test_explain_and_bodies_are_under_the_limits(client):
    r = client.post("/v1/explain", json={"inputs": ["good film"] * 9})  # the client fixture's limit is 8
    assert r.status_code == 413 and r.json()["error_type"] == "too_many_inputs"
    r = client.post("/v1/explain", json={"inputs": ["good film"] * 8})
    assert r.status_code == 200 and len(r.json()["result"]) == 8

    def chunked():  # no Content-Length: counted as it is read (the limit is 20,000 bytes)
        yield b'{"inputs": ["'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"]}'

    r = client.post("/v1/pipeline", content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error_type"] == "body_too_large"
    for r in (client.get("/nosuch"), client.get("/v1/pipeline")):
        assert r.status_code in (404, 405) and set(r.json()) == {"error", "error_type"}
