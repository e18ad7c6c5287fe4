"""Fixed (calibrated) activation scales inside rowwise int8 (``fixed``, issue 24's per-tensor ranges where they hold):
one QuantizeLinear an activation in place of the per-row quantize's four nodes, its product adding the bias, the
choice made by each activation's simulated error, and the checks before the graph is touched."""

from __future__ import annotations

import numpy as np
import pytest

from onnxpipe.export.rowwise import quantize_rowwise
from graphs import artifact_feeds as _feeds
from graphs import matmul_add
from graphs import run_graph as _run
from tiny_models import CORPUS


def _built(src, feeds, **levers):
    import onnx

    model = onnx.load(str(src / "model_optimized.onnx"))
    return model, quantize_rowwise(model, feeds, alpha=0.5, **levers)


def _ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


def test_fixed_scales_everywhere_are_one_scalar_quantize_each_and_take_the_biases(artifact):
    """With ``fixed=inf`` every activation is one QuantizeLinear with a scalar scale (a per-channel one runs
    element by element in onnxruntime 1.32: 47.5 against 0.36 ms at 32 x 39 x 1536) and no per-row node is left;
    each product that had a bias Add now adds it itself, so the graph has exactly that many Adds fewer than the
    per-row graph of the same recipe. The answers stay within 10% of the float graph's logit scale (measured 6.4%;
    the per-row graph's 3.0%, bound 5%: one range for every token of this tiny random model costs that), and a text's answer alone and in a padded batch
    agree within 1e-5 of that scale (the float attention's softmax over padding; the integers are per text)."""
    import onnx

    src = artifact("bert", "single", optimize=True)
    texts = sorted(set(CORPUS))
    feeds = _feeds(src, texts)
    rows, _ = _built(src, feeds)
    fixed, done = _built(src, feeds, fixed=float("inf"))
    ops = _ops(fixed)
    assert not {"ReduceMax", "Abs", "Div"} & set(ops)
    assert ops.count("QuantizeLinear") == done["quantized_activations"] == len(done["fixed_scale_activations"]) > 0
    inits = {i.name: i for i in fixed.graph.initializer}
    for n in (n for n in fixed.graph.node if n.op_type == "QuantizeLinear"):
        assert list(inits[n.input[1]].dims) == [] and list(inits[n.input[2]].dims) == [], n.name
    took = sum(n.op_type == "MatMulIntegerToFloat" and len(n.input) == 7 for n in fixed.graph.node)
    assert took > 0 and _ops(rows).count("Add") - ops.count("Add") == took
    float_out = _run(onnx.load(str(src / "model_optimized.onnx")), feeds)
    scale = max(float(np.abs(a).max()) for a in float_out)
    for name, model in (("per-row", rows), ("fixed", fixed)):
        gap = max(float(np.abs(a - b).max()) for a, b in zip(float_out, _run(model, feeds)))
        assert gap <= {"per-row": 0.05, "fixed": 0.1}[name] * scale, (name, gap, scale)
    batched = np.concatenate(_run(fixed, feeds))
    alone = np.concatenate(_run(fixed, _feeds(src, texts, size=1)))
    assert np.abs(batched - alone).max() <= 1e-5 * scale


def test_a_fixed_product_is_the_calibrated_quantize_then_the_integer_product():
    """One product, every input shifted off zero: the graph's answer is numpy's (x quantized over the calibration's
    [min, max] in 255 steps with a zero point, times the stored integer weights and their scales, plus the bias the
    product now adds itself) within 1e-5 of its scale: the scale, the zero point and the bias land where they should."""
    from onnx import numpy_helper

    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(16, 8)).astype(np.float32), rng.normal(size=8).astype(np.float32)
    x = (rng.normal(size=(1, 50, 16)) + 0.7).astype(np.float32)
    model = matmul_add(w, b)
    done = quantize_rowwise(model, [{"x": x}], fixed=float("inf"))
    assert done["fixed_scale_activations"] == ["x"] and [n.op_type for n in model.graph.node] == [
        "QuantizeLinear",
        "MatMulIntegerToFloat",
    ]
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    quantize, product = model.graph.node
    step, zero = float(init[quantize.input[1]]), int(init[quantize.input[2]])
    assert step == pytest.approx((x.max() - min(x.min(), 0)) / 255) and zero == round(-min(x.min(), 0) / step)
    q = np.clip(np.round(x / step) + zero, 0, 255) - zero
    wq = init[product.input[1]].astype(np.int64) - init[product.input[5]].astype(np.int64)
    expected = (q @ wq) * init[product.input[2]] * init[product.input[3]] + init[product.input[6]]
    got = _run(model, [{"x": x}])[0]
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    assert np.abs(got - (x @ w + b)).max() <= 0.05 * np.abs(x @ w + b).max()  # and it is x W + b, quantized


def test_the_ratio_chooses_by_each_activations_simulated_error(artifact):
    """An activation takes a fixed scale when its simulated products err at most ``fixed`` times as much as per-row
    ones: the chosen set only grows with the ratio, a ratio of 1e-9 takes none that per-row quantizes better, inf
    takes all, and every activation not chosen keeps its per-row ReduceMax."""
    src = artifact("bert", "single", optimize=True)
    feeds = _feeds(src, sorted(set(CORPUS)))
    chosen = {}
    for ratio in (1e-9, 2.0, float("inf")):
        model, done = _built(src, feeds, fixed=ratio)
        chosen[ratio] = set(done["fixed_scale_activations"])
        assert _ops(model).count("ReduceMax") == done["quantized_activations"] - len(chosen[ratio])
    assert chosen[1e-9] <= chosen[2.0] <= chosen[float("inf")]
    assert len(chosen[1e-9]) < len(chosen[float("inf")]) == done["quantized_activations"]


def test_fixed_scales_are_refused_where_they_cannot_hold(artifact, tmp_path):
    """A negative ratio, a ratio with the leftover products (read per row) and a ratio without calibration text are
    refused before the graph is touched; the static mode refuses the option by name."""
    import onnx

    from onnxpipe.export.quantize import quantize_graph

    src = artifact("bert", "single", optimize=True)
    feeds = _feeds(src, sorted(set(CORPUS)))
    untouched = onnx.load(str(src / "model_optimized.onnx"))
    for levers, feeding, reason in (
        ({"fixed": -1.0}, feeds, "0 or more, not -1.0"),
        ({"fixed": 2.0, "residual": "activations"}, feeds, "do not combine"),
        ({"fixed": 2.0}, None, "fixed activation scales needs calibration text"),
    ):
        with pytest.raises(ValueError, match=reason):
            quantize_rowwise(untouched, feeding, **levers)
    assert untouched == onnx.load(str(src / "model_optimized.onnx"))
    with pytest.raises(ValueError, match="fixed activation scales chosen per activation is for --quantize rowwise"):
        quantize_graph(src / "model_optimized.onnx", tmp_path / "s.onnx", "static", feeds=feeds, fixed=2.0)
