"""explain's graph line: the node count and the float weight products of the graph it loaded, as onnx counts them."""

from __future__ import annotations

import io
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxpipe
from onnxpipe.explain import explain
from onnxpipe.graph_nodes import node_counts


def onnx_counts(path) -> tuple[int, int]:
    """The same two figures with the onnx package: nodes, and MatMul/Gemm/Attention whose weight is a constant."""
    graph = onnx.load(str(path)).graph
    constants = {i.name for i in graph.initializer} | {
        o for n in graph.node if n.op_type == "Constant" for o in n.output
    }
    products = [n for n in graph.node if n.op_type in ("MatMul", "Gemm", "Attention")]
    return len(graph.node), sum(len(n.input) > 1 and n.input[1] in constants for n in products)


@pytest.mark.parametrize("variant", ["fp32", "optimized", "int8"])
def test_explain_prints_the_loaded_graphs_node_count(artifact, variant):
    path = artifact("bert", "single", optimize=True, quantize="int8")
    pipe = onnxpipe.pipeline(model=path, variant=variant)
    out = io.StringIO()
    explain(pipe, "a fine film", 0.0, out=out)
    nodes, in_float = map(int, re.search(r"graph: (\d+) nodes, (\d+) weight products", out.getvalue()).groups())
    assert (nodes, in_float) == onnx_counts(pipe.model_path)
    assert nodes == len(onnx.load(str(pipe.model_path)).graph.node)
    if variant == "int8":  # static int8 quantizes the encoder's products: fewer left in float than fused fp32's
        assert in_float < onnx_counts(path / "model_optimized.onnx")[1]
    else:
        assert in_float > 0


def test_node_counts_of_a_hand_built_graph(tmp_path):
    """Weights as an initializer and as a Constant node count as float products; a product of two activations
    does not; a quantized product (MatMulInteger) is not a float one."""
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    nodes = [
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones((4, 4), np.float32))),
        helper.make_node("MatMul", ["x", "w"], ["a"]),  # initializer weight: float fallback
        helper.make_node("MatMul", ["a", "c"], ["b"]),  # Constant weight: float fallback
        helper.make_node("MatMul", ["b", "x"], ["y"]),  # two activations: no weight
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])
    file = tmp_path / "g.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w])), str(file))
    assert node_counts(file) == (4, 2) == onnx_counts(file)


def test_a_file_that_is_not_onnx_is_named(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\xff\xff\xff")
    with pytest.raises(ValueError, match="model.onnx is not an ONNX model"):
        node_counts(bad)


@pytest.mark.parametrize("threads", [1, 2])
def test_explain_says_how_a_lists_runs_go(artifact, threads):
    """The load line names the streams a list's graph runs take (none at one thread)."""
    pipe = onnxpipe.pipeline(model=artifact("bert", "single"), threads=threads)
    out = io.StringIO()
    explain(pipe, "a fine film", 0.0, out=out)
    said = re.search(r"(\d+) threads( \(a list's runs: (\d+) at a time, 1 thread each\))?;", out.getvalue())
    assert said is not None and int(said[1]) == threads
    assert said[3] == ("2" if threads == 2 else None)
