"""The runtime's onnxruntime session: what it asks ORT to do when it loads a graph."""

from __future__ import annotations

import onnx
import onnxruntime as ort

from onnxpipe.session import Session


def test_load_leaves_residual_adds_and_layer_norms_unfused(artifact, tmp_path, monkeypatch):
    """ORT would fuse the fused graph's Add + LayerNormalization into SkipLayerNormalization at load, a slower
    kernel in ORT 1.32; the runtime's session keeps them apart (the graph ORT runs is dumped and read back)."""
    dumped = tmp_path / "as-run.onnx"
    real = ort.SessionOptions

    def dumping():
        opts = real()
        opts.optimized_model_filepath = str(dumped)
        return opts

    monkeypatch.setattr(ort, "SessionOptions", dumping)
    Session(artifact("bert", "single", optimize=True) / "model_optimized.onnx", threads=1)
    ops = {n.op_type for n in onnx.load(str(dumped)).graph.node}
    assert "LayerNormalization" in ops and "SkipLayerNormalization" not in ops

    monkeypatch.setattr("onnxpipe.session.UNFUSED", [])  # the check can fail: without the option ORT fuses
    Session(artifact("bert", "single", optimize=True) / "model_optimized.onnx", threads=1)
    assert "SkipLayerNormalization" in {n.op_type for n in onnx.load(str(dumped)).graph.node}
