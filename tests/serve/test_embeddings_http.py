"""Embeddings options over HTTP, against a real `onnxpipe serve` process and the in-process pipeline: TEI's /embed
with precision, truncate_dim and long documents by windows; OpenAI's `dimensions` (a Matryoshka size the manifest
lists) and the `long` extension through the official openai client; TEI's /embed_sparse."""

from __future__ import annotations

import numpy as np
import pytest

import onnxpipe

openai = pytest.importorskip("openai", reason="the openai client is in the test extra")

TEXTS = ["good film", "the food was good but the service was bad", "très émouvant"]
LONG = " ".join(["the food was good but the service was bad i love it"] * 5)  # ~4x the 16-token limit


@pytest.fixture(scope="module")
def server(st_matryoshka, splade_distilbert):
    """The Matryoshka model (first: the default) and a SPLADE model named "splade"."""
    from onnxpipe.bench.serve_load import start

    proc, url = start(st_matryoshka[1], True, 1, extra=("-m", f"splade={splade_distilbert}"))
    yield url
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def pipe(st_matryoshka):
    return onnxpipe.pipeline("sentence-embeddings", model=st_matryoshka[1])


def test_tei_embed_options(server, pipe):
    import httpx

    def embed(**body):
        r = httpx.post(f"{server}/embed", json={"inputs": TEXTS, **body}, timeout=60)
        assert r.status_code == 200, r.text
        return np.array(r.json())

    for precision in ("int8", "uint8", "binary", "ubinary"):
        assert np.array_equal(embed(precision=precision), pipe(TEXTS, precision=precision)), precision
    ranges = [[-0.5] * 8, [0.5] * 8]
    assert np.array_equal(
        embed(precision="uint8", ranges=ranges, truncate_dim=8),
        pipe(TEXTS, precision="uint8", ranges=ranges, truncate_dim=8, normalize=True),
    )
    cut = embed(truncate_dim=8)  # TEI's normalize (true by default) normalises the cut vector
    assert cut.shape == (3, 8) and np.allclose(cut, pipe(TEXTS, truncate_dim=8, normalize=True), atol=0)
    r = httpx.post(f"{server}/embed", json={"inputs": LONG, "long": "chunk", "truncate": False}, timeout=60)
    assert r.status_code == 200, r.text
    assert np.array_equal(np.array(r.json()[0], dtype=np.float32), pipe(LONG, long="chunk"))
    r = httpx.post(f"{server}/embed", json={"inputs": LONG, "truncate": False}, timeout=60)
    assert r.status_code == 422  # truncated otherwise, and truncate is false: refused as before
    r = httpx.post(f"{server}/embed", json={"inputs": TEXTS, "precision": "int4"}, timeout=60)
    assert 400 <= r.status_code < 500 and "precision" in r.text


def test_openai_dimensions_and_long(server, pipe):
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    name = client.models.list().data[0].id

    def vectors(response):
        return np.array([d.embedding for d in sorted(response.data, key=lambda d: d.index)], dtype=np.float32)

    for size in (16, 8):  # the manifest's Matryoshka sizes: cut, then normalised (the model normalises)
        got = vectors(client.embeddings.create(model=name, input=TEXTS, dimensions=size))
        assert np.array_equal(got, pipe(TEXTS, truncate_dim=size, normalize=True))
    assert vectors(client.embeddings.create(model=name, input=TEXTS, dimensions=32)).shape == (3, 32)
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=name, input=TEXTS, dimensions=12)
    assert e.value.param == "dimensions" and "16, 8" in e.value.message
    chunked = client.embeddings.create(model=name, input=[LONG], extra_body={"long": "chunk"})
    assert np.array_equal(vectors(chunked)[0], pipe(LONG, long="chunk"))


def test_tei_embed_sparse(server, splade_distilbert):
    import httpx

    sparse = onnxpipe.pipeline("sparse-embeddings", model=splade_distilbert)
    for body, params in (({}, {}), ({"top_k": 3}, {"top_k": 3})):
        r = httpx.post(f"{server}/embed_sparse", json={"inputs": TEXTS, **body}, timeout=60)
        assert r.status_code == 200, r.text
        expected = [
            [{"index": int(i), "value": float(v)} for i, v in zip(e["indices"], e["values"])]
            for e in sparse(TEXTS, **params)
        ]
        assert r.json() == expected
    assert len(r.json()[0]) == 3
