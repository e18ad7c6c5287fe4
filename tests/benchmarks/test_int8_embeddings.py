"""The embeddings int8 harness's leftover scaling (``--leftover-fraction``): what it measures is what it says."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from graphs import artifact_feeds
import pytest

from onnxpipe.bench.int8_embeddings import main, scale_leftover
from onnxpipe.export.rowwise import quantize_rowwise
from tiny_models import CORPUS


def _run(model_bytes: bytes, feeds: list[dict]) -> list[np.ndarray]:
    s = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    names = [i.name for i in s.get_inputs()]
    return [s.run(None, {n: f[n] for n in names})[0] for f in feeds]


def test_a_leftover_scaled_to_zero_is_the_recipe_without_it_and_to_one_the_graph_as_built(artifact):
    """f = 0 leaves the one-product recipe's answers (its leftover product adds exactly 0), f = 1 the graph's own,
    and f = 0.5 lands between them: half the activations' rounding error left, on each output."""
    src = artifact("bert", "single", optimize=True)
    feeds = artifact_feeds(src, sorted(set(CORPUS)))
    one, two = onnx.load(str(src / "model_optimized.onnx")), onnx.load(str(src / "model_optimized.onnx"))
    quantize_rowwise(one, feeds, alpha=0.5, weights="u8")
    quantize_rowwise(two, feeds, alpha=0.5, weights="u8", residual="activations")
    built = two.SerializeToString()
    assert scale_leftover(built, 1.0) == built
    plain, full = _run(one.SerializeToString(), feeds), _run(built, feeds)
    for a, b in zip(_run(scale_leftover(built, 0.0), feeds), plain):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    for half, a, b in zip(_run(scale_leftover(built, 0.5), feeds), plain, full):
        assert np.abs(half - b).max() < np.abs(a - b).max()
        assert np.abs(a - b).max() > 0  # the leftover moves the answer at all


@pytest.mark.parametrize("bad", ["0.5,x", "1.5", ","])
def test_a_bad_leftover_fraction_is_one_line_not_a_traceback(bad, capsys):
    """Refused by argparse before any data is read (exit 2, its usage line and the reason)."""
    with pytest.raises(SystemExit) as exit:
        main(["--data", "/nonexistent", "--leftover-fraction", bad])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "--leftover-fraction" in err and "Traceback" not in err
    assert ("between 0 and 1" in err) or ("not a comma-separated list of numbers" in err)


@pytest.mark.parametrize("isa", ["avx2", "avx512-vnni"])
def test_the_recipe_table_names_the_isa_its_speed_was_measured_on(monkeypatch, isa):
    """int8's speed (and rounding) differ by ISA: the table's speed column names the CPU's, not a fixed one."""
    from onnxpipe.bench import int8_embeddings
    from onnxpipe.export import quantize

    monkeypatch.setattr(quantize, "detect_isa", lambda: isa)
    truth = {f"{k}_knn_reference": {"knn": 0.7} for k in ("train", "dev")}
    row = {"nodes": 3, "float": 0, "train": {"overlap": 0.98, "knn": 0.76}, "dev": {"overlap": 0.97, "knn": 0.71}}
    speed = {"b1_ratio": 1.1, "b32_ratio": 0.8}
    table = int8_embeddings.markdown({"r": {**row, "speed": speed}}, truth)
    assert f"speed vs fp32 b1 / b32 ({isa}) |" in table.splitlines()[0]
    assert "| r | 3 | 0 | 0.9800 | 76.00% | 0.9700 | 71.00% | 1.10x / 0.80x |" in table
