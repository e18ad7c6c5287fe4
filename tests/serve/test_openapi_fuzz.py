"""The HTTP API fuzzed from its own OpenAPI document (schemathesis) against a real server process on loopback
serving a tiny model of every task (an NLI classifier, also run as zero-shot; embeddings; NER; QA; fill-mask;
sparse embeddings): whatever the document allows a client to send, the answer's status is one the document
declares, its body fits the declared schema, it is no 5xx and comes within the timeout, and a 4xx is in its
route family's error shape; /health is 200 after.

Examples per operation: ONNXPIPE_FUZZ_EXAMPLES (default 25 in CI; the long run, e.g. 300, is the README's)."""

from __future__ import annotations

import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from onnxpipe.serve.errors import is_openai

EXAMPLES = int(os.environ.get("ONNXPIPE_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def url(artifact, splade_distilbert):
    import signal

    from onnxpipe.bench.serve_load import start

    models = {
        "emb": artifact("bert", "base"),
        "ner": artifact("bert", "ner"),
        "qa": artifact("bert", "qa"),
        "fill": artifact("bert", "mlm"),
        "sparse": splade_distilbert,
    }
    extra = tuple(arg for name, path in models.items() for arg in ("-m", f"{name}={path}"))
    # The first model, the default: an NLI classifier, so /v1/pipeline's task=zero-shot-classification runs too.
    proc, url = start(artifact("bert", "nli"), True, 1, extra=(*extra, "--max-client-batch", "16"))
    yield url
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def in_family_shape(path: str, status: int, body: object) -> bool:
    if status < 400:
        return True
    if is_openai(path):  # OpenAI's, which its clients read
        error = body.get("error") if isinstance(body, dict) else None
        return isinstance(error, dict) and isinstance(error.get("message"), str) and isinstance(error.get("type"), str)
    return isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("error_type"), str)


def test_every_request_the_schema_allows_is_answered_as_declared(url):
    # Each operation's hypothesis strategy, driven here: schemathesis' pytest plugin does not load under
    # this pytest (AttributeError '_nodeid'), its strategies do.
    from hypothesis import given

    api = schemathesis.openapi.from_url(url + "/openapi.json")
    checked, statuses = [], set()
    for result in api.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case):
            response = case.call(timeout=30)  # a hang fails here
            case.validate_response(
                response, checks=[not_a_server_error, status_code_conformance, response_schema_conformance]
            )
            body = response.json() if response.status_code >= 400 else None  # an error body that is not JSON fails
            assert in_family_shape(case.formatted_path, response.status_code, body), (case.path, response.text[:300])
            statuses.add(response.status_code)

        call()
        checked.append(f"{operation.method.upper()} {operation.path}")
    assert {
        "POST /",
        "POST /v1/pipeline",
        "POST /v1/explain",
        "POST /predict",
        "POST /embed",
        "POST /embed_sparse",
        "POST /rerank",
        "POST /similarity",
        "POST /tokenize",
        "POST /v1/embeddings",
        "GET /v1/models/{name}",
        "POST /models/{name}",
        "POST /models/{name}/embed",
        "GET /health",
    } <= set(checked)
    assert 200 in statuses and any(400 <= s < 500 for s in statuses)  # both kinds were reached
    assert httpx.get(url + "/health").status_code == 200
