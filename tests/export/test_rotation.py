"""Hadamard rotation before per-row int8 (``rotate``, export/rotation.py): exact in float, a spread outlier, the
widths it leaves alone, and the export path's checks."""

from __future__ import annotations

import numpy as np
import pytest

from onnxpipe.export.rotation import hadamard_block, kronecker_factors
from onnxpipe.export.rowwise import quantize_rowwise
from graphs import artifact_feeds as _feeds
from graphs import run_graph as _run
from tiny_models import CORPUS


def test_hadamard_block_is_orthonormal_and_spreads_an_outlier_channel():
    """H Hᵀ = I (so x W = (x H)(Hᵀ W) exactly), and a row with one channel 30x the rest, turned by H, has its
    largest |x| within 4x of its root mean square (30 / sqrt(1 + 900/64) ~ 7.7x before): per-row int8's step
    shrinks with that ratio."""
    h = hadamard_block(64)
    assert np.abs(h @ h.T - np.eye(64)).max() < 1e-6
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 64))
    x[:, 7] *= 30

    def crest(rows: np.ndarray) -> float:
        return float(np.median(np.abs(rows).max(1) / np.sqrt((rows**2).mean(1))))

    assert crest(x) > 7 and crest(x @ h) < 4
    for bad in (0, 1, 48, -8):
        with pytest.raises(ValueError, match=f"power of two of at least 2, not {bad}"):
            hadamard_block(bad)


def test_a_hadamard_block_is_two_small_ones():
    """H_B = H_a ⊗ H_b with a <= b: the graph turns a block in a + b multiply-adds an element (24 at B = 128)."""
    for block, (a, b) in {2: (1, 2), 16: (4, 4), 128: (8, 16), 256: (16, 16)}.items():
        across, within = kronecker_factors(block)
        assert (len(across), len(within)) == (a, b)
        assert np.abs(np.kron(across, within) - hadamard_block(block)).max() < 1e-6
    with pytest.raises(ValueError, match="power of two of at least 2, not 96"):
        kronecker_factors(96)


def test_rotation_alone_is_exact_in_float(artifact):
    """The rotation and centring alone (``int8=False``) give the float graph's outputs within 1e-5 of their scale;
    the tiny BERT's 32-wide activations are turned by 16 x 16 blocks, its 37-wide FFN outputs are left alone."""
    import onnx

    from onnxpipe.export.rowwise import unfuse_attention, weight_groups

    src = artifact("bert", "single", optimize=True)
    feeds = _feeds(src, sorted(set(CORPUS)))
    original = onnx.load(str(src / "model_optimized.onnx"))
    turned = onnx.load(str(src / "model_optimized.onnx"))
    done = quantize_rowwise(turned, feeds, None, int8=False, rotate=16)
    plain = onnx.load(str(src / "model_optimized.onnx"))
    unfuse_attention(plain)
    widths = [int(next(i for i in plain.graph.initializer if i.name == m[0].input[1]).dims[0]) for m in
              weight_groups(plain).values()]  # fmt: skip
    assert sorted(set(widths)) == [32, 37]
    assert done["rotated_activations"] == widths.count(32) and done["unrotated"] == widths.count(37) > 0, done
    rotations = [n for n in turned.graph.node if n.name.endswith("_rot/MatMul")]
    assert len(rotations) == widths.count(32) and all(n.input[1] == "rotation_hadamard_16_within" for n in rotations)
    across = [n for n in turned.graph.node if n.op_type == "FusedMatMul"]  # the second stage reads the first transposed
    assert len(across) == len(rotations) and all(n.input[1] == "rotation_hadamard_16_across" for n in across)
    assert all(a.attribute[0].name == "transA" and a.attribute[0].i == 1 for a in across)
    # centred where a bias carries the mean's share (the last layer's one-row Q/K/V have none: turned, not centred)
    assert 0 < sum(n.name.endswith("_rot/Sub") for n in turned.graph.node) <= widths.count(32)
    for a, b in zip(_run(original, feeds), _run(turned, feeds)):
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()


def test_rotated_int8_keeps_the_rotations_in_float_and_every_weight_product_int8(artifact, tmp_path):
    """With int8: each weight product is one MatMulIntegerToFloat reading a rotated activation (or the 37-wide one
    as it is), the only float MatMuls are the rotations, which ``explain``'s count of weight products left in float
    does not take for fallbacks (the head's two Gemms are), and rotating needs calibration text (for the centring)."""
    import onnx

    from onnxpipe.graph_nodes import node_counts

    src = artifact("bert", "single", optimize=True)
    feeds = _feeds(src, sorted(set(CORPUS)))
    model = onnx.load(str(src / "model_optimized.onnx"))
    done = quantize_rowwise(model, feeds, rotate=16)
    ops = [n for n in model.graph.node]
    floats = [n.name for n in ops if n.op_type == "MatMul"]
    assert floats and all(name.endswith("_rot/MatMul") for name in floats)
    products = done["int8_matmuls"] + 2 * done["split_products"]  # Q/K/V: three products of one input
    assert sum(n.op_type == "MatMulIntegerToFloat" for n in ops) == products > 0
    onnx.save(model, str(tmp_path / "rotated.onnx"))
    gemms = sum(n.op_type == "Gemm" for n in ops)  # the pooler and the classifier
    assert gemms == 2 and node_counts(tmp_path / "rotated.onnx") == (len(ops), gemms)
    with pytest.raises(ValueError, match="rotation needs calibration text"):
        quantize_rowwise(onnx.load(str(src / "model_optimized.onnx")), None, rotate=16)
    untouched = onnx.load(str(src / "model_optimized.onnx"))
    with pytest.raises(ValueError, match="power of two of at least 2, not 24"):
        quantize_rowwise(untouched, feeds, rotate=24)
    assert untouched == onnx.load(str(src / "model_optimized.onnx"))  # refused before the graph was changed
    with pytest.raises(ValueError, match="GPTQ damping is a fraction of the Hessian's mean diagonal, 0 or more"):
        quantize_rowwise(untouched, feeds, rounding="gptq", damp=-1.0)


def test_quantize_graph_records_the_rotation_and_refuses_it_elsewhere(artifact, tmp_path):
    from onnxpipe.export.quantize import quantize_graph

    src = artifact("bert", "single", optimize=True)
    graph = src / "model_optimized.onnx"
    feeds = _feeds(src, sorted(set(CORPUS)))
    recipe = quantize_graph(graph, tmp_path / "q.onnx", "rowwise", feeds=feeds, alpha=None, rotate=16)
    assert recipe["rotation"] == "Hadamard, blocks of 16 channels, after centring on the calibration mean"
    assert recipe["rotation_block"] == 16 and recipe["rotated_activations"] > 0
    with pytest.raises(ValueError, match="rotation is for --quantize rowwise"):
        quantize_graph(graph, tmp_path / "s.onnx", "static", feeds=feeds, rotate=16)
    with pytest.raises(ValueError, match="sequential GPTQ and rotation do not combine"):
        quantize_graph(graph, tmp_path / "r.onnx", "rowwise", feeds=feeds, rounding="gptq", sequential=True, rotate=16)
