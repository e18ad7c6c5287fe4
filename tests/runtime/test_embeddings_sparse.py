"""sparse-embeddings against sentence-transformers' SparseEncoder.encode on tiny MLM checkpoints: a SparseEncoder
folder (BERT; MLMTransformer → SpladePooling, max and sum) and a plain MLM checkpoint (DistilBERT), compared
densely within 1e-4 (a logit within float noise of zero may enter or leave the index set)."""

from __future__ import annotations

import numpy as np
import pytest

import onnxpipe

TEXTS = [
    "We are very happy to show you the Transformers library.",
    "Terrible.",
    "très émouvant, à voir absolument",
    "the food was good but the service was bad " * 3,
]


def dense(result, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=np.float32)
    out[result["indices"]] = result["values"]
    return out


def test_sparse_encoder_folder(tmp_path, checkpoint):
    """A SparseEncoder folder whose SpladePooling is not the default (sum, log1p_relu): read from modules.json
    (the default max / ReLU is the plain checkpoint's, below)."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    from onnxpipe.export import export

    encoder = SparseEncoder(
        modules=[MLMTransformer(str(checkpoint("bert", "mlm"))), SpladePooling("sum", "log1p_relu")], device="cpu"
    )
    encoder.save(str(tmp_path / "splade"))
    art = export(tmp_path / "splade", tmp_path / "art", "sparse-embeddings")
    ours = onnxpipe.pipeline("sparse-embeddings", model=art)
    assert ours.config.pooling == ["splade-sum-log1p_relu"]
    theirs = SparseEncoder(str(tmp_path / "splade"), device="cpu").encode(TEXTS, convert_to_sparse_tensor=False)
    theirs = np.asarray(theirs)
    results = ours(TEXTS)
    assert len(results) == len(TEXTS) and results[0]["indices"].dtype == np.int32
    got = np.stack([dense(r, theirs.shape[1]) for r in results])
    assert np.max(np.abs(got - theirs)) < 1e-4
    assert all(np.all(np.diff(r["indices"]) > 0) and np.all(r["values"] > 0) for r in results)


def test_plain_mlm_checkpoint_and_top_k(splade_distilbert, checkpoint):
    """A plain DistilBERT MLM checkpoint: SPLADE max / ReLU, as SparseEncoder builds on it; top_k keeps the k
    largest weights (sentence-transformers' max_active_dims)."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    ours = onnxpipe.pipeline("sparse-embeddings", model=splade_distilbert)
    limit = ours.token_limit
    encoder = SparseEncoder(
        modules=[MLMTransformer(str(checkpoint("distilbert", "mlm")), max_seq_length=limit), SpladePooling("max")],
        device="cpu",
    )
    theirs = np.asarray(encoder.encode(TEXTS, convert_to_sparse_tensor=False))
    got = np.stack([dense(r, theirs.shape[1]) for r in ours(TEXTS)])
    assert np.max(np.abs(got - theirs)) < 1e-4
    one = ours(TEXTS[0], top_k=5)
    assert len(one["indices"]) == 5
    top = np.asarray(encoder.encode([TEXTS[0]], max_active_dims=5, convert_to_sparse_tensor=False))[0]
    assert np.max(np.abs(dense(one, theirs.shape[1]) - top)) < 1e-4
    with pytest.raises(ValueError, match="top_k must be a positive int or None, got 0"):
        ours(TEXTS, top_k=0)
