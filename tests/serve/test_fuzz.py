"""Property-based fuzzing (hypothesis): arbitrary text, lone surrogates, NUL and control characters, huge
strings, wrong types and big batches give a result or a clear ValueError / TypeError from the runtime, and
never a 5xx from the server."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import onnxpipe

TEXT = st.text(alphabet=st.characters(codec=None), max_size=300) | st.sampled_from(["", "\x00", "\ud800", "a" * 50_000])
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def pipe(artifact):
    return onnxpipe.pipeline(model=artifact("bert", "single", quantize="int8"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inputs=TEXT | st.lists(TEXT, max_size=40) | JSONISH)
def test_runtime_answers_or_refuses_clearly(pipe, inputs):
    try:
        result = pipe(inputs)
    except (ValueError, TypeError) as e:
        assert str(e)  # a reason, not a bare exception
        return
    n = 1 if isinstance(inputs, (str, dict)) else len(inputs)
    assert len(result) == n


@pytest.fixture(scope="module")
def client(artifact):
    from fastapi.testclient import TestClient

    from onnxpipe.serve.app import create_app

    from .test_app import ready

    with TestClient(create_app({"m": artifact("bert", "single", quantize="int8")})) as c:
        yield ready(c)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(
        ["/v1/pipeline", "/predict", "/rerank", "/tokenize", "/embed", "/v1/embeddings", "/v1/explain"]
    ),
    body=st.dictionaries(
        st.sampled_from(
            ["inputs", "parameters", "query", "texts", "input", "model", "raw_scores", "truncate", "normalize"]
        ),
        JSONISH,
        max_size=4,
    ),
)
def test_http_api_never_answers_5xx(client, route, body):
    import json

    raw = json.dumps(body, ensure_ascii=True).encode()  # lone surrogates travel as JSON escapes
    r = client.post(route, content=raw, headers={"content-type": "application/json"})
    assert r.status_code < 500, (route, body, r.text)
    assert r.status_code == 200 or r.json()["error"]
