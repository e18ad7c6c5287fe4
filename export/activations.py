"""What calibration reads off a graph: its intermediate activations on sample text, and the one bound on them the
int8 recipes rely on (a GELU's floor). Shared by the static recipe (:mod:`.quantize`), the per-row one
(:mod:`.rowwise`) and its smoothing search (:mod:`.smoothing`)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

GELU_MIN = -0.17  # min of x * Phi(x) is -0.16997 (at x = -0.7518); tanh-approximated GELU's is within 1e-4


def run_with_outputs(model, tensors: list[str], feeds: Iterable[dict]) -> Iterable[list[np.ndarray]]:
    """Run ``model`` (an onnx ModelProto) with extra graph outputs and yield their values per feed."""
    import onnx
    import onnxruntime as ort

    model = onnx.ModelProto.FromString(model.SerializeToString())
    for name in tensors:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    for feed in feeds:
        yield session.run(tensors, {n: feed[n] for n in names})
