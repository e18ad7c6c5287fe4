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


# Lengths that make several graph runs at batch size 2 (one past the tiny models' 64 positions).
STREAMED = ["good", "never again", "x y z", "the food was bad", "a beautiful, moving film " * 4, "so so " * 40]


def test_streams_give_the_two_thread_sessions_bits(artifact, real_default):
    """A call with several graph runs runs them two at a time on a one-thread session of the same graph: every
    variant's outputs must be the two-thread session's, bit for bit, in the same order (else a text's answer
    would depend on the list it came in). The real default's int8 graph too: its products are integers, and its
    float operators must not split a sum between threads."""
    import numpy as np

    import onnxpipe

    models = [
        (artifact("bert", "base"), "fp32"),
        (artifact("bert", "single", optimize=True, quantize="int8"), "optimized"),
        (artifact("bert", "single", optimize=True, quantize="int8"), "int8"),
        (real_default, "int8"),
    ]
    for model, variant in models:
        pipe = onnxpipe.pipeline(model=model, variant=variant, threads=2, batch_size=2)
        runs: dict[int, list] = {}
        for streams in (1, 2):
            pipe.session.streams = streams
            runs[streams] = []
            pipe.execute(pipe.plan(STREAMED), observe=lambda idx, out, s, seen=runs[streams]: seen.append((idx, out)))
        assert pipe.session._alone is not None  # the streams ran, on their own session
        assert len(runs[2]) >= 3 and [i for i, _ in runs[1]] == [i for i, _ in runs[2]]  # same runs, same order
        for (_, a), (_, b) in zip(runs[1], runs[2]):
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), (model.name, variant)


def test_a_serving_session_leaves_streams_to_the_batcher(artifact):
    """The server's batcher runs its own streams (serve/server.py); its sessions take one run at a time."""
    graph = artifact("bert", "single") / "model.onnx"
    assert Session(graph, threads=2, serving=True).streams == 1
    assert Session(graph, threads=2).streams == 2 and Session(graph, threads=1).streams == 1
    assert Session(graph, threads=2, serving=True, streams=2).streams == 2


def test_spinning_is_what_each_use_asks_and_never_changes_an_answer(artifact):
    """A pipeline's session spins between operators (and after a run); a serving one never spins; one timed in turns
    with others (runtime/tune.py) spins within a run and stops as it returns. The outputs are the same bits."""
    import numpy as np

    graph = artifact("bert", "single") / "model.onnx"
    sessions = {
        "default": Session(graph, threads=2),
        "serving": Session(graph, threads=2, serving=True),
        "timed": Session(graph, threads=2, spin=True, spin_stop=True),
    }

    def entry(name: str, key: str) -> str:
        options = sessions[name].session.get_session_options()
        try:
            return options.get_session_config_entry(key)
        except RuntimeError:  # not set: onnxruntime's default (spinning on, not stopped)
            return ""

    spins = {n: entry(n, "session.intra_op.allow_spinning") for n in sessions}
    stops = {n: entry(n, "session.force_spinning_stop") for n in sessions}
    assert spins == {"default": "", "serving": "0", "timed": ""} and stops == {
        "default": "",
        "serving": "",
        "timed": "1",
    }
    feed = {"input_ids": np.array([[2, 7, 9, 3]]), "attention_mask": np.ones((1, 4), np.int64)}
    feed["token_type_ids"] = np.zeros((1, 4), np.int64)
    outs = [s.run(feed) for s in sessions.values()]
    assert all(np.array_equal(o[k], outs[0][k]) for o in outs for k in o)


def test_a_generator_feeds_every_stream(artifact):
    """An iterator of inputs is read a batch per stream at a time, so its batches run side by side as a list's do,
    with the list's results (the same bits: the scores compared exactly)."""
    import onnxpipe

    pipe = onnxpipe.pipeline(model=artifact("bert", "single"), threads=2, batch_size=2)
    texts = STREAMED * 3
    listed = pipe(texts)
    assert pipe.session._alone is not None  # the list ran on the streams
    pipe.session._alone = None
    streamed = list(pipe(iter(texts)))
    assert pipe.session._alone is not None and streamed == listed


def test_a_forked_child_runs_a_list_on_its_own_streams(artifact):
    """A pipeline that ran a list before a fork (multiprocessing's default on Linux) runs lists in the child too:
    the child has none of the parent's stream threads, so its session makes its own (else its runs never start)."""
    import multiprocessing

    import onnxpipe

    pipe = onnxpipe.pipeline(model=artifact("bert", "single"), threads=2, batch_size=2)
    listed = pipe(STREAMED)  # the parent's stream threads exist now
    _FORKED.append(pipe)  # the child inherits it (a pipeline is not pickled)
    try:
        with multiprocessing.get_context("fork").Pool(1) as pool:
            in_child = pool.apply_async(_run_list).get(timeout=60)
    finally:
        _FORKED.clear()
    assert in_child == listed


_FORKED: list = []


def _run_list():
    return _FORKED[0](STREAMED)
