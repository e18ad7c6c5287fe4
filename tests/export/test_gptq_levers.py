"""GPTQ's further levers (issue 24): a clipped scale per output channel chosen by the layer's output error, a
target that takes back the error the inputs bring (GPTAQ), and moments read off the partly quantized graph
(sequential GPTQ)."""

from __future__ import annotations

import numpy as np
import pytest

from onnxpipe.export.gptq import Moments, clipped_round, gptq_round, output_error, toward_float
from onnxpipe.export.rowwise import quantize_rowwise, unfuse_attention, weight_groups
from onnxpipe.export.sequential import sequential_moments
from graphs import artifact_feeds as _feeds
from graphs import matmul_add
from graphs import run_graph as _run
from tiny_models import CORPUS


def _inputs(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(3000, 32)) @ rng.normal(size=(32, 32))


def test_clip_search_never_errs_more_than_the_full_range():
    """Each output channel keeps the clip of its least output error, so no channel does worse than the unclipped
    scale (a candidate), and with Student-t weights over inputs of uneven scale some channels are clipped (a large
    weight on a quiet input costs less clipped than the coarser step costs every other weight). At int8 the gain
    is small (0.3% here): clipping pays at 4 bits, where the step is 16 times coarser."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 256)) * np.exp(rng.normal(size=256))
    h = x.T @ x / len(x)
    w = rng.standard_t(2, size=(256, 24))
    clips = tuple(np.round(np.arange(0.5, 1.001, 0.05), 2))
    for rounding in ("nearest", "gptq"):
        full_q, full_s, _ = clipped_round(w, h, 127, (1.0,), rounding)
        q, s, z = clipped_round(w, h, 127, clips, rounding)
        assert np.array_equal(q, np.round(q)) and np.abs(q).max() <= 127 and not z.any()
        assert np.all(s <= full_s * (1 + 1e-12)) and np.any(s < full_s)
        full, best = output_error(w, full_q, full_s, h), output_error(w, q, s, h)
        assert np.all(best <= full * (1 + 1e-9)) and best.sum() < full.sum()


def test_act_order_off_rounds_in_stored_order():
    """act_order=False is still GPTQ (closer than nearest) but not the same integers as act order."""
    x = _inputs(2)
    x[:, 3] *= 30
    h = x.T @ x / len(x)
    w = np.random.default_rng(3).normal(size=(32, 16))
    scale = np.abs(w).max(0) / 127
    nearest = np.clip(np.round(w / scale), -127, 127)
    ordered, stored = gptq_round(w, scale, h), gptq_round(w, scale, h, act_order=False)
    assert not np.array_equal(ordered, stored)
    assert output_error(w, stored, scale, h).sum() < output_error(w, nearest, scale, h).sum()


def test_toward_float_takes_back_the_inputs_error():
    """When the layer's inputs arrive perturbed (x_q = x + noise correlated with x), rounding toward_float's
    weights gives a product closer to the float graph's x w than rounding w itself."""
    rng = np.random.default_rng(4)
    x = _inputs(4)
    xq = x @ (np.eye(32) + 0.05 * rng.normal(size=(32, 32)))
    m = Moments()
    m.add(xq)
    m.pair(xq, x)
    w = rng.normal(size=(32, 16))
    v = toward_float(w, m)
    h = m.hessian()

    def gap(target: np.ndarray) -> float:
        scale = np.abs(target).max(0) / 127
        return float(np.linalg.norm(xq @ (gptq_round(target, scale, h) * scale) - x @ w))

    assert gap(v) < 0.5 * gap(w)
    with pytest.raises(ValueError, match="not paired"):
        toward_float(w, Moments())


def test_sequential_moments_read_the_partly_quantized_graph(artifact):
    """On the tiny BERT: one set of moments per quantized activation, in graph order; the first is the float
    graph's own (nothing before it is quantized), a later one differs from the float graph's (its inputs went
    through int8 products); paired moments carry the cross term; the graph they build runs and is all int8."""
    import onnx

    from onnxpipe.export.smoothing import statistics

    src = artifact("bert", "single", optimize=True)
    feeds = _feeds(src, sorted(set(CORPUS)))
    fused = onnx.load(str(src / "model_optimized.onnx"))
    got = sequential_moments(fused, feeds, rounding="gptq")
    plain = onnx.load(str(src / "model_optimized.onnx"))
    unfuse_attention(plain)
    order = list(weight_groups(plain))
    assert list(got) == order and len(order) >= 4
    ref = statistics(plain, order, feeds)
    first, last = order[0], order[-1]
    assert np.allclose(got[first].hessian(), ref[first][1].hessian())
    assert got[last].count == ref[last][1].count
    assert not np.allclose(got[last].hessian(), ref[last][1].hessian(), rtol=1e-6, atol=0)
    paired = sequential_moments(fused, feeds, target=True, rounding="gptq")
    assert all(m.cross is not None and m.cross.shape == m.gram.shape for m in paired.values())
    model = onnx.load(str(src / "model_optimized.onnx"))
    done = quantize_rowwise(model, feeds, rounding="gptq", moments=paired, clips=(0.9, 1.0))
    assert done["int8_matmuls"] == sum(len(v) for v in weight_groups(plain).values())
    # (on 93 calibration tokens of a random tiny model the int8 outputs are not close to float: whether the levers
    # pay is measured on the embeddings default, benchmarks/int8_embeddings.py)
    for a, b in zip(_run(onnx.load(str(src / "model_optimized.onnx")), feeds), _run(model, feeds)):
        assert a.shape == b.shape and np.isfinite(b).all()


def test_asymmetric_weights_are_exact_integer_arithmetic():
    """uint8 weights with a zero point per output column (MatMulIntegerToFloat's 1-D b_zero_point): onnxruntime
    gives numpy's (x_q - 128)(w_q - zero) product of the same bytes, on weights leaning to one side (where a
    symmetric range wastes most of its steps), and the product is closer to float than the symmetric one."""
    import onnxruntime as ort
    from onnx import numpy_helper

    rng = np.random.default_rng(5)
    w = (rng.normal(size=(64, 48)) + np.linspace(-1.5, 1.5, 48)).astype(np.float32)
    x = rng.normal(size=(3, 5, 64)).astype(np.float32)
    bias = rng.normal(size=48).astype(np.float32)

    def built(asymmetric: bool):
        model = matmul_add(w, bias)
        quantize_rowwise(model, None, weights="u8", asymmetric=asymmetric)
        return model

    model = built(True)
    mm = next(n for n in model.graph.node if n.op_type == "MatMulIntegerToFloat")
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    wq, zero, w_scale = inits[mm.input[1]], inits[mm.input[5]], inits[mm.input[3]]
    assert wq.dtype == np.uint8 and zero.shape == (48,) and wq.min() == 0 and wq.max() == 255
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    a_scale = np.abs(x).max(-1, keepdims=True)
    xq = np.clip(np.round(x / a_scale * 127), -127, 127)
    expected = (xq @ (wq.astype(np.float64) - zero)) * a_scale * w_scale + bias
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-4 * np.abs(expected).max())
    with pytest.raises(ValueError, match="asymmetric weights are uint8 or int8"):
        quantize_rowwise(built(False), None, weights="s8-w7", asymmetric=True)
    symmetric = ort.InferenceSession(built(False).SerializeToString(), providers=["CPUExecutionProvider"])
    exact = x @ w + bias
    assert np.abs(y - exact).mean() < np.abs(symmetric.run(None, {"x": x})[0] - exact).mean()


def test_quantize_graph_takes_asymmetric_and_sequential(artifact, tmp_path):
    """quantize_graph (what export runs): rowwise with asymmetric weights and sequential GPTQ records both, its
    products carry a zero point per column; the static mode and sequential without GPTQ refuse them by name.
    The weights' type is this CPU's (uint8 without VNNI, int8 with it: ``weight_type_for``)."""
    import onnx
    from onnx import numpy_helper

    from onnxpipe.export.quantize import detect_isa, quantize_graph
    from onnxpipe.export.rowwise import weight_type_for

    src = artifact("bert", "single", optimize=True)
    feeds = _feeds(src, sorted(set(CORPUS)))
    fp32 = src / "model_optimized.onnx"
    recipe = quantize_graph(
        fp32, tmp_path / "q.onnx", "rowwise", feeds=feeds, alpha=0.5, rounding="gptq", asymmetric=True, sequential=True
    )
    kind = {"u8": "uint8", "s8": "int8"}[weight_type_for(detect_isa())]
    assert recipe["sequential_gptq"] is True and recipe["weights"].startswith(f"{kind} asymmetric"), recipe["weights"]
    model = onnx.load(str(tmp_path / "q.onnx"))
    inits = {i.name: i for i in model.graph.initializer}
    products = [n for n in model.graph.node if n.op_type == "MatMulIntegerToFloat"]
    assert products and all(len(numpy_helper.to_array(inits[n.input[5]]).shape) == 1 for n in products)
    with pytest.raises(ValueError, match="asymmetric weights is for --quantize rowwise"):
        quantize_graph(fp32, tmp_path / "s.onnx", "static", feeds=feeds, asymmetric=True)
    with pytest.raises(ValueError, match="sequential GPTQ needs rounding='gptq'"):
        quantize_graph(fp32, tmp_path / "r.onnx", "rowwise", feeds=feeds, sequential=True)


def test_a_graph_built_for_vnni_holds_the_same_integers_and_runs_exactly_anywhere(artifact, tmp_path):
    """On a VNNI CPU the rowwise weights are int8 (MLAS has VNNI kernels for u8 x s8 only): asymmetric ones are the
    uint8 bytes and zero points shifted by 128, so every product's w - z is the same integer, and GELU outputs are
    lifted as with uint8. Such a graph run on x86 without VNNI would saturate (u8 x s8 adds pairs in int16): the
    runtime's Session sees the graph's int8-weights mark and asks onnxruntime for exact u8 x u8 products, so the
    graph built for VNNI gives the uint8 graph's outputs here, whichever CPU this is."""
    import onnx
    from onnx import numpy_helper

    from onnxpipe.export.quantize import quantize_graph
    from onnxpipe.session import WEIGHTS_KEY, Session, u8s8_saturates

    src = artifact("bert", "single", optimize=True)
    feeds = _feeds(src, sorted(set(CORPUS)))
    graphs = {}
    for isa in ("avx2", "avx512-vnni"):
        graphs[isa] = tmp_path / f"{isa}.onnx"
        recipe = quantize_graph(
            src / "model_optimized.onnx",
            graphs[isa],
            "rowwise",
            feeds=feeds,
            alpha=0.5,
            rounding="gptq",
            asymmetric=True,
            isa=isa,
        )
        assert recipe["weights"].startswith("int8 asymmetric" if isa != "avx2" else "uint8 asymmetric")
    models = {isa: onnx.load(str(path)) for isa, path in graphs.items()}

    def products(model) -> list[tuple[str, np.ndarray, np.dtype]]:
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        mms = [n for n in model.graph.node if n.op_type == "MatMulIntegerToFloat"]
        return [
            (n.name, inits[n.input[1]].astype(int) - inits[n.input[5]].astype(int), inits[n.input[1]].dtype)
            for n in mms
        ]

    ours, vnni = products(models["avx2"]), products(models["avx512-vnni"])
    assert [p[0] for p in ours] == [p[0] for p in vnni] and ours
    assert all(a[2] == np.uint8 and b[2] == np.int8 and np.array_equal(a[1], b[1]) for a, b in zip(ours, vnni))
    assert [n.op_type for n in models["avx2"].graph.node] == [n.op_type for n in models["avx512-vnni"].graph.node]
    marks = {isa: {p.key: p.value for p in m.metadata_props}.get(WEIGHTS_KEY) for isa, m in models.items()}
    assert marks == {"avx2": None, "avx512-vnni": "int8"}
    sessions = {isa: Session(path, threads=1) for isa, path in graphs.items()}
    for feed in feeds:
        expected = sessions["avx2"].run(feed)
        got = sessions["avx512-vnni"].run(feed)
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-5)
    if u8s8_saturates():  # what the mark prevents: the same graph in a plain session here is wrong
        import onnxruntime as ort

        plain = ort.InferenceSession(str(graphs["avx512-vnni"]), providers=["CPUExecutionProvider"])
        names = [i.name for i in plain.get_inputs()]
        raw = plain.run(None, {n: feeds[0][n] for n in names})[0]
        assert np.abs(raw - sessions["avx2"].run(feeds[0])[plain.get_outputs()[0].name]).max() > 1e-3


@pytest.mark.parametrize("residual", ["activations", "weights", "both"])
def test_residual_products_are_exact_integer_arithmetic(residual):
    """``residual``: a second int8 product per weight MatMul, of each row's rounding leftover (quantized per row
    again) or of the weights' (per column), or both. onnxruntime gives numpy's sum of the same integer products;
    each leftover brings the product closer to float than plain rowwise int8 (both: within 0.2% of its scale); a
    row's result does not depend on the other rows."""
    import onnxruntime as ort

    rng = np.random.default_rng(7)
    w = rng.normal(size=(64, 48)).astype(np.float32)
    x = rng.normal(size=(3, 5, 64)).astype(np.float32) * rng.uniform(0.1, 20, size=(3, 5, 1)).astype(np.float32)
    bias = rng.normal(size=48).astype(np.float32)

    def session(residual: str):
        model = matmul_add(w, bias)
        quantize_rowwise(model, None, weights="u8", residual=residual)
        return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    got = session(residual).run(None, {"x": x})[0]
    a_scale = np.abs(x).max(-1, keepdims=True)
    xq = np.round(x / a_scale * 127)
    w_scale = np.abs(w).max(0) / 127
    wq = np.round(w / w_scale)
    expected = (xq @ wq) * (a_scale / 127) * w_scale + bias
    if residual in ("activations", "both"):
        left = x - xq * a_scale / 127
        l_scale = np.abs(left).max(-1, keepdims=True)
        expected += (np.round(left / l_scale * 127) @ wq) * (l_scale / 127) * w_scale
    if residual in ("weights", "both"):
        r = w - wq * w_scale
        r_scale = np.abs(r).max(0) / 127
        expected += (xq @ np.round(r / r_scale)) * (a_scale / 127) * r_scale
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4 * np.abs(expected).max())
    exact = x @ w + bias
    plain = session("").run(None, {"x": x})[0]
    assert np.abs(got - exact).mean() < np.abs(plain - exact).mean()
    if residual == "both":
        assert np.abs(got - exact).max() < 0.002 * np.abs(exact).max()
    alone = session(residual).run(None, {"x": x[2:3, 1:3]})[0]
    np.testing.assert_array_equal(alone, got[2:3, 1:3])
    with pytest.raises(ValueError, match="unknown residual 'all'"):
        quantize_rowwise(matmul_add(w, bias), None, residual="all")


def test_residual_after_a_gelu_reads_the_lifted_row():
    """After a GELU the row is quantized from zero (lifted by 0.17); its leftover is taken in that lifted form, so
    with both leftovers the product is within 0.2% of the float one."""
    import math

    import onnxruntime as ort
    from onnx import helper

    rng = np.random.default_rng(3)
    w, bias = rng.normal(size=(64, 32)).astype(np.float32), rng.normal(size=32).astype(np.float32)
    x = rng.normal(size=(2, 7, 64)).astype(np.float32) * 3
    model = matmul_add(w, bias, before=[helper.make_node("Gelu", ["x"], ["h"])], opset=20)
    done = quantize_rowwise(model, weights="u8", residual="both")
    assert done["gelu_outputs_from_zero"] == 1
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    h = x * 0.5 * (1 + np.vectorize(math.erf)(x / np.sqrt(2)))
    exact = h @ w + bias
    assert np.abs(y - exact).max() < 0.002 * np.abs(exact).max()
