"""sentence-similarity against sentence-transformers' ``util.cos_sim`` of ``encode``'s vectors, on the tiny
sentence-transformers model (BERT, mean pooling, Normalize, max_seq_length 16) the embeddings tests use."""

from __future__ import annotations

import numpy as np
import pytest

import onnxpipe

SOURCE = "We are very happy to show you the Transformers library."
SENTENCES = ["Terrible.", "très émouvant, à voir absolument", "the food was good but the service was bad", SOURCE]
TOL = 1e-5  # float32 ONNX Runtime against float32 PyTorch on unit vectors (all-MiniLM-L6-v2, fused fp32: 1.4e-7)


@pytest.fixture(scope="module")
def pipe(st_matryoshka):
    return onnxpipe.pipeline("sentence-similarity", model=st_matryoshka[1])


def test_cosines_are_cos_sim(pipe, st_matryoshka):
    from sentence_transformers import SentenceTransformer, util

    st = SentenceTransformer(str(st_matryoshka[0]), device="cpu")
    theirs = util.cos_sim(st.encode(SOURCE), st.encode(SENTENCES))[0].tolist()
    ours = pipe({"source_sentence": SOURCE, "sentences": SENTENCES})
    assert isinstance(ours, list) and all(isinstance(x, float) for x in ours)
    assert np.allclose(ours, theirs, atol=TOL), (ours, theirs)
    assert abs(ours[-1] - 1.0) < TOL  # the source with itself
    # a list of inputs: one answer each, as each alone; a text and its pair: that one cosine
    both = pipe([{"source_sentence": SOURCE, "sentences": SENTENCES[:2]}, {"source_sentence": "x", "sentences": []}])
    assert both[1] == [] and np.allclose(both[0], theirs[:2], atol=TOL)
    assert np.allclose(pipe({"text": SOURCE, "text_pair": SENTENCES[0]}), theirs[:1], atol=TOL)
    cut = SentenceTransformer(str(st_matryoshka[0]), device="cpu", truncate_dim=8)
    small = util.cos_sim(cut.encode(SOURCE), cut.encode(SENTENCES))[0].tolist()
    assert np.allclose(pipe({"source_sentence": SOURCE, "sentences": SENTENCES}, truncate_dim=8), small, atol=TOL)


def test_runs_on_the_sentence_embeddings_graph(pipe, st_matryoshka):
    """The registry's head: an artifact exported for sentence-embeddings runs it, and the cosines are the dot
    products of that pipeline's unit vectors."""
    vectors = onnxpipe.pipeline("sentence-embeddings", model=st_matryoshka[1])([SOURCE, *SENTENCES], normalize=True)
    assert pipe.artifact.task == "sentence-embeddings"
    got = pipe({"source_sentence": SOURCE, "sentences": SENTENCES})
    assert np.allclose(got, vectors[1:] @ vectors[0], atol=1e-6)


def test_bad_input_is_named(pipe):
    with pytest.raises(TypeError, match="takes source_sentence and sentences"):
        pipe({"source_sentence": SOURCE})
    with pytest.raises(TypeError, match=r"inputs\['sentences'\]\[1\] is a int, not a str"):
        pipe({"source_sentence": SOURCE, "sentences": ["a", 3]})
    with pytest.raises(
        TypeError,
        match=r"inputs\[0\] is a str: sentence-similarity takes \{\"source_sentence\": str, \"sentences\": \[str\]\} \(or",
    ):
        pipe([SOURCE])
    with pytest.raises(TypeError, match="precision"):
        pipe({"source_sentence": SOURCE, "sentences": ["a"]}, precision="int8")
