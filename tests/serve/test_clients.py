"""The clients people already use, unchanged, against a real `onnxpipe serve` process: the official `openai`
package (its default arguments: base64 vectors) gets the in-process pipeline's vectors bit for bit, and its
errors as OpenAI shapes them."""

from __future__ import annotations

import numpy as np
import pytest

import onnxpipe

openai = pytest.importorskip("openai", reason="the openai client is in the test extra")

TEXTS = ["good film", "the food was good but the service was bad", "très émouvant 🔥"]


@pytest.fixture(scope="module")
def server(artifact):
    """`onnxpipe serve` with a classifier (named "artifact", the first), a base encoder named "emb", a token
    classifier "ner" and a question-answering model "qa"."""
    from onnxpipe.bench.serve_load import start

    more = {"emb": artifact("bert", "base"), "ner": artifact("bert", "ner"), "qa": artifact("bert", "qa")}
    extra = tuple(arg for name, path in more.items() for arg in ("-m", f"{name}={path}"))
    proc, url = start(artifact("bert", "single"), True, 1, extra=extra)
    yield url
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)


def test_openai_embeddings_equal_the_pipeline(client, artifact):
    emb = onnxpipe.pipeline("sentence-embeddings", model=artifact("bert", "base"))
    expected = emb(TEXTS)
    default = client.embeddings.create(model="emb", input=TEXTS)  # the client asks for base64
    as_float = client.embeddings.create(model="emb", input=TEXTS, encoding_format="float")
    for response in (default, as_float):
        got = np.array([d.embedding for d in sorted(response.data, key=lambda d: d.index)], dtype=np.float32)
        assert np.array_equal(got, expected)
        assert response.model == "emb"
    tokens = sum(len(e) for e in emb.encode(TEXTS))
    assert default.usage.prompt_tokens == tokens == default.usage.total_tokens
    one = client.embeddings.create(model="emb", input="good film")
    assert np.array_equal(np.array(one.data[0].embedding, dtype=np.float32), emb("good film"))
    same_size = client.embeddings.create(model="emb", input=TEXTS, dimensions=expected.shape[1])
    assert len(same_size.data[0].embedding) == expected.shape[1]


def test_openai_models_and_errors(client):
    assert [m.id for m in client.models.list()] == ["artifact", "emb", "ner", "qa"]
    with pytest.raises(openai.NotFoundError) as e:
        client.embeddings.create(model="nosuch", input=TEXTS)
    assert e.value.code == "model_not_found" and "nosuch" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="emb", input=TEXTS, dimensions=3)
    assert e.value.param == "dimensions"
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="artifact", input=TEXTS)  # a classifier gives no embeddings
    assert "sentence-embeddings" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="emb", input=TEXTS, encoding_format="int8")  # type: ignore[arg-type]
    assert "encoding_format" in e.value.message


@pytest.fixture(scope="module")
def emb_server(artifact):
    """`onnxpipe serve` whose default (first) model is a base encoder: TEI's embedding server."""
    from onnxpipe.bench.serve_load import start

    proc, url = start(artifact("bert", "base"), True, 1)
    yield url
    proc.kill()
    proc.wait()


def test_huggingface_inference_client_and_tei_shapes(server, emb_server, artifact):
    import httpx
    from huggingface_hub import InferenceClient

    sst = onnxpipe.pipeline(model=artifact("bert", "single"))
    # It posts to the server's root and reads TEI's answer (every label, best first) as the best one.
    best = InferenceClient(model=server).text_classification(TEXTS[0])
    expected = sst(TEXTS[0], top_k=None)
    assert (best.label, best.score) == (expected[0]["label"], expected[0]["score"])
    emb = onnxpipe.pipeline("sentence-embeddings", model=artifact("bert", "base"))
    vector = InferenceClient(model=emb_server).feature_extraction(TEXTS[1])
    assert vector.shape == (1, emb.dimension or vector.shape[1])
    assert np.allclose(vector[0], emb(TEXTS[1], normalize=True), atol=1e-6)  # TEI normalises by default
    # TEI's /predict batch of [text] and [text, pair] lists
    batch = httpx.post(f"{server}/predict", json={"inputs": [[TEXTS[0]], [TEXTS[1], TEXTS[2]]]}).json()
    pair = {"text": TEXTS[1], "text_pair": TEXTS[2]}
    assert batch == [sst(TEXTS[0], top_k=None), sst(pair, top_k=None)]
    bad = httpx.post(f"{server}/predict", json={"inputs": [["a", "b", "c"]]})
    assert bad.status_code == 422 and set(bad.json()) == {"error", "error_type"}


def test_sentence_similarity_and_truncation_direction(emb_server, artifact):
    """InferenceClient.sentence_similarity posts TEI's similarity body to the root; truncation_direction="left"
    keeps the end of an overlong text, as the tokenizer truncating from the left does."""
    import httpx
    from huggingface_hub import InferenceClient
    from tokenizers import Tokenizer

    emb = onnxpipe.pipeline("sentence-embeddings", model=artifact("bert", "base"))
    got = InferenceClient(model=emb_server).sentence_similarity(TEXTS[0], other_sentences=TEXTS[1:])
    vectors = emb(TEXTS, normalize=True)
    assert np.allclose(got, [float(vectors[0] @ v) for v in vectors[1:]], atol=1e-6)
    assert httpx.post(f"{emb_server}/similarity", json={"inputs": {"source_sentence": "a"}}).status_code == 422

    long = "first words here " + "filler " * 300 + "the very end"
    left = httpx.post(f"{emb_server}/embed", json={"inputs": [long], "truncation_direction": "Left"}).json()[0]
    right = httpx.post(f"{emb_server}/embed", json={"inputs": [long]}).json()[0]
    tok = Tokenizer.from_file(str(emb.artifact.path / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(emb.token_limit, direction="left")
    ids = tok.encode(long).ids
    assert ids[-2:] == tok.encode("end").ids[-2:]  # the end kept, and the closing [SEP] still last
    plan = emb.read([long], normalize=True)  # the in-process pipeline, cut from the left as the server cuts it
    plan.pre = plan.pre.cut_from("left")
    emb.featurize(plan)
    assert plan.features[0].encoding.ids == ids
    assert np.array_equal(np.asarray(left, dtype=np.float32), emb.complete(plan, emb.execute(plan))[0])
    assert not np.allclose(left, right, atol=1e-3)
    bad = httpx.post(f"{emb_server}/embed", json={"inputs": ["x"], "truncation_direction": "middle"})
    assert bad.status_code == 422 and set(bad.json()) == {"error", "error_type"}


def test_openai_embeddings_contract(server, client, artifact):
    """input=[] is OpenAI's 400; a 404 shows its message; no model means the embeddings model; 2,048 short texts
    (OpenAI's limit) are one request, under the default body limit, and equal the pipeline's vectors."""
    import json

    import httpx

    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="emb", input=[])
    assert e.value.status_code == 400 and e.value.param == "input" and "input" in e.value.message
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("nope")
    assert "nope" in str(e.value) and e.value.code == "model_not_found"
    unnamed = httpx.post(f"{server}/v1/embeddings", json={"input": TEXTS}).json()
    assert unnamed["model"] == "emb" and len(unnamed["data"]) == len(TEXTS)

    texts = [f"text number {i}: a short sentence to embed."[:40] for i in range(2048)]
    assert len(json.dumps({"input": texts, "model": "emb"})) < 2_000_000  # the default --max-body-bytes
    response = client.embeddings.create(model="emb", input=texts, encoding_format="float")
    got = np.array([d.embedding for d in response.data], dtype=np.float32)
    emb = onnxpipe.pipeline("sentence-embeddings", model=artifact("bert", "base"))
    assert got.shape[0] == 2048 and np.allclose(got, emb(texts), atol=1e-6)
    with pytest.raises(openai.APIStatusError) as e:
        client.embeddings.create(model="emb", input=[*texts, "one more"])
    assert e.value.status_code == 413 and "--max-embeddings-inputs" in e.value.message


def test_inference_client_reaches_each_model_by_its_address(server, artifact):
    """InferenceClient(model=f"{url}/models/{name}") on a multi-model server, for each task it posts to one URL."""
    from huggingface_hub import InferenceClient

    def at(name: str) -> InferenceClient:
        return InferenceClient(model=f"{server}/models/{name}")

    sst = onnxpipe.pipeline(model=artifact("bert", "single"))
    best = at("artifact").text_classification(TEXTS[0])  # TEI's answer (every label, best first), read as the best
    assert (best.label, best.score) == (sst(TEXTS[0], top_k=None)[0]["label"], sst(TEXTS[0], top_k=None)[0]["score"])
    emb = onnxpipe.pipeline("sentence-embeddings", model=artifact("bert", "base"))
    assert np.allclose(at("emb").feature_extraction(TEXTS[1])[0], emb(TEXTS[1], normalize=True), atol=1e-6)
    vectors = emb(TEXTS, normalize=True)
    similar = at("emb").sentence_similarity(TEXTS[0], other_sentences=TEXTS[1:])
    assert np.allclose(similar, [float(vectors[0] @ v) for v in vectors[1:]], atol=1e-6)
    ner = onnxpipe.pipeline(model=artifact("bert", "ner"))
    entities = at("ner").token_classification(TEXTS[1], aggregation_strategy="simple")
    expected = ner(TEXTS[1], aggregation_strategy="simple")
    assert [(e.entity_group, e.word, e.start, e.end) for e in entities] == [
        (x["entity_group"], x["word"], x["start"], x["end"]) for x in expected
    ]
    qa = onnxpipe.pipeline(model=artifact("bert", "qa"))
    answer = at("qa").question_answering(question="Where?", context="I live in Berlin and work in Paris.")
    want = qa(question="Where?", context="I live in Berlin and work in Paris.")
    assert (answer.answer, answer.start, answer.end) == (want["answer"], want["start"], want["end"])
    with pytest.raises(Exception, match="404"):
        at("nope").text_classification(TEXTS[0])


def test_a_body_over_the_limit_is_a_413_every_client_reads(server):
    """A 5 MB text (over the default 2 MB limit) is read and thrown away before the 413 is sent, so clients that
    send the whole body first see the status, not a reset."""
    import json
    import urllib.error
    import urllib.request

    import httpx
    import requests

    body = json.dumps({"inputs": "a" * 5_000_000}).encode()
    request = urllib.request.Request(f"{server}/v1/pipeline", data=body, headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=60)
    assert e.value.code == 413 and json.loads(e.value.read())["error_type"] == "body_too_large"
    r = requests.post(f"{server}/v1/pipeline", data=body, headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 413 and "--max-body-bytes" in r.json()["error"]
    r = httpx.post(f"{server}/v1/embeddings", content=body, headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"  # OpenAI's shape there
    assert httpx.get(f"{server}/health").status_code == 200
