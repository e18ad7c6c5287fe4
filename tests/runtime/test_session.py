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
    ops = {n.op_type for n in onnx.load(str(dumped), load_external_data=False).graph.node}
    assert "LayerNormalization" in ops and "SkipLayerNormalization" not in ops

    monkeypatch.setattr("onnxpipe.session.UNFUSED", [])  # the check can fail: without the option ORT fuses
    Session(artifact("bert", "single", optimize=True) / "model_optimized.onnx", threads=1)
    assert "SkipLayerNormalization" in {n.op_type for n in onnx.load(str(dumped), load_external_data=False).graph.node}


_PEAK = """
import sys
import onnxruntime
from onnxpipe.session import Session

def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))

before = status("VmRSS:")
Session(sys.argv[1], threads=1)
print((status("VmHWM:") - before) * 1024)
"""


def test_loading_maps_the_weights_file_instead_of_copying_the_weights(real_default, tmp_path):
    """The sentiment default's int8 graph (weights in model_quantized.onnx.data) against the same graph with its
    weights inside: the session's peak memory over the loading process's own grows by under half as much, and by
    under half the weights' size (measured: about 22 MB for 59 MB of weights, against 111 MB with them inside)."""
    import subprocess
    import sys

    from onnxpipe.artifact import weights_file

    graph = real_default / "model_quantized.onnx"
    inside = tmp_path / "inside.onnx"
    onnx.save(onnx.load(str(graph)), str(inside))
    grown = {}
    for name, path in (("weights file", graph), ("inside", inside)):
        out = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True, check=True)
        grown[name] = int(out.stdout.split()[-1])
    size = weights_file(graph).stat().st_size
    assert grown["weights file"] < 0.5 * grown["inside"] and grown["weights file"] < 0.5 * size, (grown, size)
