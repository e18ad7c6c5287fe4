"""A GELU output quantized per row in groups of its channels (``gelu_groups``, export/gelu_groups.py): the same
function in float, the widest channels first, a lifted scale per row and group, a text's answer the same alone and
batched, and bad group sizes refused."""

from __future__ import annotations

import numpy as np
import pytest

from onnxpipe.errors import InputValueError
from onnxpipe.export.rowwise import quantize_rowwise
from graphs import artifact_feeds as _feeds
from graphs import run_graph as _run
from tiny_models import CORPUS

SIZES = (2, 4)  # the tiny BERT's GELU outputs are 37 wide: groups of 2, 4 and the other 31 channels


def _gelus(model) -> list:
    return [n for n in model.graph.node if n.op_type in ("BiasGelu", "Gelu", "FastGelu")]


def test_grouping_alone_is_the_same_function_with_the_widest_channels_first(artifact):
    """In float (``int8=False``) the permuted, cut product gives the graph's outputs within 1e-5 of their scale;
    each GELU output is one Split into 2 | 4 | 31 channels read by one MatMul each, and its channels' max |x| over
    the calibration text falls from the first channel to the last."""
    import onnx

    from onnxpipe.export.activations import run_with_outputs

    src = artifact("bert", "single", optimize=True)
    feeds = _feeds(src, sorted(set(CORPUS)))
    original = onnx.load(str(src / "model_optimized.onnx"))
    grouped = onnx.load(str(src / "model_optimized.onnx"))
    done = quantize_rowwise(grouped, feeds, None, int8=False, gelu_groups=SIZES)
    gelus = _gelus(grouped)
    assert done["gelu_groups"] == [2, 4, "rest"] and done["gelu_outputs_grouped"] == len(gelus) > 0
    splits = [n for n in grouped.graph.node if n.name.endswith("/ChannelGroups")]
    assert sorted(n.input[0] for n in splits) == sorted(n.output[0] for n in gelus)
    sizes = {i.name: i for i in grouped.graph.initializer}
    for s in splits:
        assert list(onnx.numpy_helper.to_array(sizes[s.input[1]])) == [2, 4, 31] and len(s.output) == 3
    for a, b in zip(_run(original, feeds), _run(grouped, feeds)):
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()
    peaks = np.zeros((len(gelus), 37))
    for feed, values in zip(feeds, run_with_outputs(grouped, [n.output[0] for n in gelus], feeds)):
        keep = feed["attention_mask"].reshape(-1).astype(bool)
        for k, v in enumerate(values):
            rows = v.reshape(-1, 37)
            rows = rows[keep] if len(rows) == keep.size else rows  # the last layer computes the head's row alone
            peaks[k] = np.maximum(peaks[k], np.abs(rows).max(0))
    assert np.all(np.diff(peaks, axis=1) <= 0), "channels not widest first"


def test_grouped_int8_lifts_each_group_and_answers_alike_alone_and_batched(artifact):
    """With int8, each group is its own activation: one lifted per-row quantize (x - GELU_MIN over 255 steps, its
    own row max) and one MatMulIntegerToFloat with its own weight grid, summed; the graph's output is near the
    float one, and a text's output alone equals its row in a padded batch of 8 (within float noise, 1e-5)."""
    import onnx

    src = artifact("bert", "single", optimize=True)
    texts = sorted(set(CORPUS))
    feeds = _feeds(src, texts)
    original = onnx.load(str(src / "model_optimized.onnx"))
    model = onnx.load(str(src / "model_optimized.onnx"))
    quantize_rowwise(model, feeds, gelu_groups=SIZES)
    nodes = {n.name: n for n in model.graph.node}
    layers = len(_gelus(model))
    for k in range(3):
        lifts = [n for name, n in nodes.items() if name.endswith(f"_group{k}_rowq/Lift")]
        assert len(lifts) == layers and all(n.op_type == "Add" for n in lifts)
    products = [n for n in model.graph.node if n.op_type == "MatMulIntegerToFloat" and "_group" in n.input[0]]
    assert len(products) == 3 * layers
    assert len({n.input[2] for n in products}) == 3 * layers  # a row scale per group, not one per row
    sums = [n for n in model.graph.node if n.op_type == "Sum" and n.name.endswith("_groups")]
    assert len(sums) == layers and all(len(n.input) == 3 for n in sums)
    reference = np.concatenate(_run(original, feeds))
    batched = np.concatenate(_run(model, feeds))
    assert np.abs(batched - reference).max() < 0.05 * np.abs(reference).max()
    alone = np.concatenate(_run(model, _feeds(src, texts, size=1)))
    assert np.abs(alone - batched).max() <= 1e-5 * np.abs(batched).max()


@pytest.mark.parametrize(("sizes", "words"), [((4, 2), "rising order"), ((0, 4), "at least 1"), ((2.5,), "sizes")])
def test_bad_group_sizes_are_refused(sizes, words):
    from graphs import matmul_add

    rng = np.random.default_rng(0)
    model = matmul_add(rng.normal(size=(8, 4)).astype(np.float32), np.zeros(4, np.float32))
    with pytest.raises(InputValueError, match=words):
        quantize_rowwise(model, [{"x": rng.normal(size=(1, 2, 8)).astype(np.float32)}], gelu_groups=sizes)


def test_groups_need_calibration_text():
    from graphs import matmul_add

    model = matmul_add(np.ones((8, 4), np.float32), np.zeros(4, np.float32))
    with pytest.raises(InputValueError, match="GELU channel groups needs calibration text"):
        quantize_rowwise(model, None, gelu_groups=SIZES)
