"""A bug inside the server is a 500 with a request id (body and header) and its traceback in the log, never a
422 that blames the client; the input errors the runtime raises on purpose stay 4xx, and are still the
built-in exceptions transformers raises, for Python callers."""

from __future__ import annotations

import logging
import time

import pytest
from fastapi.testclient import TestClient

import onnxpipe
from onnxpipe.serve.app import Settings, create_app


@pytest.fixture(scope="module")
def client(artifact):
    models = {"sst": artifact("bert", "single", quantize="int8"), "emb": artifact("bert", "base")}
    with TestClient(create_app(models, Settings())) as c:
        for _ in range(300):
            if c.get("/health").status_code == 200:
                break
            time.sleep(0.05)
        yield c


@pytest.mark.parametrize("bug", [KeyError("label"), TypeError("'NoneType' object is not subscriptable")])
@pytest.mark.parametrize("path", ["/predict", "/v1/embeddings"])
def test_a_bug_while_featurizing_is_a_500_with_a_request_id(client, monkeypatch, caplog, bug, path):
    served = client.app.state.server.served["sst" if path == "/predict" else "emb"]
    pipe = served.task_pipe("text-classification" if path == "/predict" else "sentence-embeddings")

    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(pipe, "preprocess", broken)  # runs in featurize, where the request is tokenized
    body = {"inputs": "good film"} if path == "/predict" else {"input": "good film", "model": "emb"}
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        r = client.post(path, json=body)
    assert r.status_code == 500, r.text
    rid = r.headers["x-request-id"]
    assert len(rid) == 32
    if path == "/predict":  # TEI's (and onnxpipe's) shape
        assert r.json() == {"error": r.json()["error"], "error_type": "internal", "request_id": rid}
    else:  # OpenAI's shape: its client shows the message
        assert r.json()["error"]["type"] == "server_error" and r.json()["error"]["code"] == "internal"
    assert rid in (r.json()["error"] if path == "/predict" else r.json()["error"]["message"])
    logged = [rec for rec in caplog.records if rid in rec.getMessage()]
    assert logged and logged[0].exc_info and logged[0].exc_info[1] is bug  # with its traceback
    monkeypatch.undo()
    assert client.post(path, json=body).status_code == 200  # the server lives on


def test_a_bug_in_reading_a_request_is_not_bad_input(client, monkeypatch):
    pipe = client.app.state.server.served["sst"].loaded

    def broken(*args, **kwargs):
        return {}["top_k"]  # a KeyError from a bug, not from the client's input

    monkeypatch.setattr(pipe, "sanitize_parameters", broken)
    r = client.post("/v1/pipeline", json={"inputs": "good film", "model": "sst"})
    assert r.status_code == 500 and r.json()["error_type"] == "internal"


def test_input_errors_are_4xx_and_still_the_builtin_exceptions(client, artifact):
    from onnxpipe import InputError

    r = client.post("/v1/pipeline", json={"inputs": "good film", "model": "sst", "parameters": {"top_k": -1}})
    assert r.status_code == 422 and "top_k" in r.json()["error"]
    assert client.post("/v1/pipeline", json={"inputs": [3], "model": "sst"}).status_code == 422
    r = client.post("/v1/pipeline", json={"inputs": "x", "model": "sst", "parameters": {"nope": 1}})
    assert r.status_code == 422 and "'nope'" in r.json()["error"]  # found by the schema-driven fuzzing
    lone = b'{"inputs": ["ok", "bad \\ud800 x"]}'  # a lone surrogate, which tokenizers refuses with a TypeError
    r = client.post("/tokenize", content=lone, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "inputs[1] is not valid Unicode" in r.json()["error"], r.text
    for ranges in ([[1.0, 2.0, 3.0], [4.0]], [[0.0, 1.0], [1.0, 2.0]]):  # ragged; the wrong size (seen at the end)
        r = client.post("/embed", json={"inputs": ["a b"], "precision": "uint8", "ranges": ranges, "model": "emb"})
        assert r.status_code == 422 and "ranges" in r.json()["error"], r.text
    sst = onnxpipe.pipeline(model=artifact("bert", "single", quantize="int8"))
    for call, builtin in ((lambda: sst("x", top_k=-1), ValueError), (lambda: sst([3]), TypeError)):
        with pytest.raises(builtin) as e:
            call()
        assert isinstance(e.value, InputError)
    qa = onnxpipe.pipeline(model=artifact("bert", "qa"))
    with pytest.raises(KeyError) as e:  # transformers' KeyError for a dict without its keys
        qa({"question": "where?"})
    assert isinstance(e.value, InputError)
    # a bug's own TypeError is not one: the server and call_each let it through as a failure
    assert not isinstance(TypeError("x"), onnxpipe.InputError)


def test_every_v1_404_is_in_openais_shape(client):
    for r in (client.get("/v1/models/nope"), client.post("/v1/nope", json={}), client.get("/v1/nope")):
        assert r.status_code == 404
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"], r.text
    assert set(client.post("/v1/pipeline", json={"inputs": "x", "model": "nope"}).json()) == {"error", "error_type"}


def test_call_each_lets_a_bug_through_and_answers_bad_inputs_one_by_one(artifact, monkeypatch):
    """call_each (behind `onnxpipe run` and `score`) keeps a bad input's error as that input's answer, but a
    bug's TypeError is raised, not handed out as if each input were bad."""
    from onnxpipe.pipeline import call_each

    sst = onnxpipe.pipeline(model=artifact("bert", "single", quantize="int8"))
    results = call_each(sst, ["good film", 3, "bad film"])
    assert isinstance(results[1], TypeError) and results[0] == sst("good film")[0]

    def broken(*args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(sst, "preprocess", broken)
    with pytest.raises(TypeError, match="a bug"):
        call_each(sst, ["good film", "bad film"])
