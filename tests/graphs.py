"""Small ONNX helpers the export tests share: run a graph on feeds, an artifact's feeds, a one-product graph."""

from __future__ import annotations

import numpy as np


def run_graph(model, feeds: list[dict]) -> list[np.ndarray]:
    """The graph's first output for each feed (only the inputs it declares are fed)."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return [session.run(None, {n: f[n] for n in names})[0] for f in feeds]


def artifact_feeds(artifact_dir, texts: list[str], size: int = 8) -> list[dict]:
    """The texts as the artifact's fp32 pipeline pads them, ``size`` a feed."""
    import onnxpipe

    pipe = onnxpipe.pipeline(model=artifact_dir, variant="fp32")
    return [pipe.encoder.collate(pipe.encode(texts[i : i + size])) for i in range(0, len(texts), size)]


def matmul_add(w: np.ndarray, bias: np.ndarray, before: list | None = None, opset: int = 18):
    """y = x @ w + bias as an ONNX model (``before``: nodes that make ``x``'s product input from ``x``, named "h")."""
    from onnx import TensorProto, helper, numpy_helper

    first = "h" if before else "x"
    nodes = [
        *(before or []),
        helper.make_node("MatMul", [first, "w"], ["xw"], name="mm"),
        helper.make_node("Add", ["xw", "b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None, w.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
