"""Rowwise int8's calibrated levers (issue 24): SmoothQuant folded into the graph changes nothing in float, GPTQ
rounding keeps a product closer than nearest rounding, and on the embeddings default the recipe's neighbours stay
those of sentence-transformers fp32."""

from __future__ import annotations

import numpy as np
import pytest

from onnxpipe.export.gptq import gptq_round
from onnxpipe.export.quantize import read_texts
from onnxpipe.export.rowwise import quantize_rowwise
from graphs import artifact_feeds as _feeds
from graphs import run_graph as _run
from tiny_models import CORPUS

SEARCH = (0.0, 0.3, 0.5, 0.7, 0.9)


def test_gptq_rounding_beats_nearest_on_correlated_inputs():
    """On inputs with correlated channels and an outlier channel, GPTQ's integers (same scales, same bounds) give
    a product at least 30% closer to the float one than rounding each weight to its nearest step."""
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(48, 48))
    x = rng.normal(size=(2000, 48)) @ mix
    x[:, 5] *= 20
    w = rng.normal(size=(48, 16))
    scale = np.abs(w).max(0) / 127
    q = gptq_round(w, scale, x.T @ x / len(x))
    assert np.array_equal(q, np.round(q)) and np.abs(q).max() <= 127
    nearest = np.clip(np.round(w / scale), -127, 127)
    gap = np.linalg.norm(x @ (w - q * scale))
    assert gap < 0.7 * np.linalg.norm(x @ (w - nearest * scale))
    with pytest.raises(ValueError, match="shapes do not fit"):
        gptq_round(w, scale[:3], x.T @ x)


@pytest.mark.parametrize("alpha, center", [(0.5, False), (SEARCH, False), (0.5, True)])
def test_smoothing_folded_is_exact_in_float(artifact, alpha, center):
    """The smoothing alone (``int8=False``): the scales folded into each attention's V projection and the Muls
    before the other products give the original graph's outputs within 1e-5 of their scale."""
    import onnx

    src = artifact("bert", "single", optimize=True)
    feeds = _feeds(src, sorted(set(CORPUS)))
    original = onnx.load(str(src / "model_optimized.onnx"))
    smoothed = onnx.load(str(src / "model_optimized.onnx"))
    done = quantize_rowwise(smoothed, feeds, alpha, int8=False, center=center)
    attentions = sum(n.op_type == "Attention" for n in original.graph.node)
    if alpha == 0.5:
        assert done["smoothing_folded_into_v"] == attentions > 0
    if center:  # LayerNorm outputs read by weight products with a bias (the first attention's is not a LayerNorm's)
        assert sum(n.name.endswith("/centre") for n in smoothed.graph.node) >= 2
    assert done["int8_matmuls"] == 0
    assert "MultiHeadAttention" in [n.op_type for n in smoothed.graph.node]
    for a, b in zip(_run(original, feeds), _run(smoothed, feeds)):
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()


def test_calibration_levers_need_text(artifact):
    import onnx

    model = onnx.load(str(artifact("bert", "single", optimize=True) / "model_optimized.onnx"))
    with pytest.raises(ValueError, match="gptq rounding needs calibration text"):
        quantize_rowwise(model, None, rounding="gptq")
    with pytest.raises(ValueError, match="unknown weight rounding 'adaround'"):
        quantize_rowwise(model, None, rounding="adaround")


def _top10(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    sims = q @ c.T
    np.fill_diagonal(sims, -np.inf)  # the corpus is the queries: a text is not its own neighbour
    return np.argsort(-sims, axis=1, kind="stable")[:, :10]


def _pooled(hidden: list[np.ndarray], feeds: list[dict]) -> np.ndarray:
    out = []
    for h, f in zip(hidden, feeds):
        m = f["attention_mask"][..., None].astype(np.float32)
        v = (h * m).sum(1) / m.sum(1)
        out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return np.concatenate(out)


def test_smoothed_gptq_embeddings_keep_sentence_transformers_neighbours(embeddings_default, minilm_dir):
    """The embeddings default, all-int8 with per-activation smoothing and GPTQ rounding calibrated on 40 bundled
    texts: on the other bundled texts (each a query against the rest), the top-10 neighbours overlap
    sentence-transformers fp32's on at least 0.93 (plain rowwise int8 measured 0.931, this recipe 0.954 here;
    the issue's 0.97 is judged on SST-2 by benchmarks/int8_embeddings.py), and by at least as much as plain
    rowwise's."""
    import onnx
    from sentence_transformers import SentenceTransformer

    texts = read_texts(None)[0]
    calibration, sample = texts[:40], texts[40:]
    reference = SentenceTransformer(str(minilm_dir), device="cpu").encode(sample, convert_to_numpy=True)
    expected = _top10(reference, reference)
    feeds = _feeds(embeddings_default, sample)
    overlaps = {}
    for name, options in {"rowwise": {}, "smooth-gptq": {"alpha": SEARCH, "rounding": "gptq"}}.items():
        model = onnx.load(str(embeddings_default / "model_optimized.onnx"))
        done = quantize_rowwise(model, _feeds(embeddings_default, calibration) if options else None, **options)
        assert done["attentions_left_fused"] == [] and "MatMul" not in [n.op_type for n in model.graph.node]
        got = _pooled(_run(model, feeds), feeds)
        mine = _top10(got, got)
        overlaps[name] = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(mine, expected)])
    assert overlaps["smooth-gptq"] >= 0.95 and overlaps["smooth-gptq"] > overlaps["rowwise"], overlaps


def test_quantize_graph_takes_the_rowwise_levers(artifact, tmp_path):
    """quantize_graph (what export runs): rowwise with several alphas and GPTQ rounding records both and its
    calibration in the recipe; the static mode refuses them by name."""
    from onnxpipe.export.quantize import quantize_graph

    src = artifact("bert", "single", optimize=True)
    feeds = _feeds(src, sorted(set(CORPUS)))
    recipe = quantize_graph(
        src / "model_optimized.onnx", tmp_path / "q.onnx", "rowwise", feeds=feeds, calibration_name="corpus",
        alpha=SEARCH, rounding="gptq", center=True,
    )  # fmt: skip
    assert recipe["weight_rounding"] == "gptq" and recipe["smoothing_alpha"] == list(SEARCH)
    assert recipe["centred_layernorm"] is True and recipe["centred_layernorm_outputs"] >= 2
    assert recipe["calibration"] == "corpus" and recipe["attentions_left_fused"] == []
    with pytest.raises(ValueError, match="weight rounding 'gptq' is for --quantize rowwise"):
        quantize_graph(src / "model_optimized.onnx", tmp_path / "s.onnx", "static", feeds=feeds, rounding="gptq")
    with pytest.raises(ValueError, match="centring LayerNorm outputs is for --quantize rowwise"):
        quantize_graph(src / "model_optimized.onnx", tmp_path / "s.onnx", "static", feeds=feeds, center=True)
    with pytest.raises(ValueError, match="several smoothing strengths"):
        quantize_graph(src / "model_optimized.onnx", tmp_path / "s.onnx", "static", feeds=feeds, alpha=SEARCH)
