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
    """`onnxpipe serve` with a classifier (named "artifact", the first) and a base encoder named "emb"."""
    from onnxpipe.bench.serve_load import start

    proc, url = start(artifact("bert", "single"), True, 1, extra=("-m", f"emb={artifact('bert', 'base')}"))
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
    assert [m.id for m in client.models.list()] == ["artifact", "emb"]
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
    plan.pre["direction"] = "left"
    emb.featurize(plan)
    assert plan.features[0].encoding.ids == ids
    assert np.array_equal(np.asarray(left, dtype=np.float32), emb.complete(plan, emb.execute(plan))[0])
    assert not np.allclose(left, right, atol=1e-3)
    bad = httpx.post(f"{emb_server}/embed", json={"inputs": ["x"], "truncation_direction": "middle"})
    assert bad.status_code == 422 and set(bad.json()) == {"error", "error_type"}
