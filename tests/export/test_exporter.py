"""The export stage: manifest, validation against PyTorch, atomic writes, clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

import onnxpipe
from onnxpipe.artifact import sha256_file
from onnxpipe.export import ExportError, export


def test_manifest_describes_the_artifact(artifact, checkpoint):
    path = artifact("bert", "multi", optimize=True, quantize="int8")
    m = json.loads((path / "onnxpipe.json").read_text())
    assert m["task"] == "text-classification" and m["model_type"] == "bert"
    assert m["source"]["kind"] == "local" and m["source"]["name_or_path"] == str(checkpoint("bert", "multi"))
    assert len(m["source"]["content_sha256"]) == 64
    assert m["config"] == {
        "id2label": {"0": "joy", "1": "anger", "2": "fear", "3": "love"},
        "label2id": {"joy": 0, "anger": 1, "fear": 2, "love": 3},
        "problem_type": "multi_label_classification",
        "num_labels": 4,
        "return_all_scores": None,
    }  # None: the config does not set it
    assert m["head"] == "sequence-classification"
    assert m["tokenizer"] == {
        "file": "tokenizer.json",
        "max_length": 64,
        "pad_token": "[PAD]",
        "pad_id": 0,
        "mask_token": "[MASK]",
        "mask_id": 4,
        "unk_token": "[UNK]",
        "cls_token": "[CLS]",
        "padding_side": "right",
        "clean_up_tokenization_spaces": False,
    }
    assert m["opset"] >= 14
    assert {"torch", "transformers", "optimum", "onnxruntime", "tokenizers"} <= set(m["versions"])
    assert set(m["variants"]) == {"fp32", "optimized", "int8"} and m["default_variant"] == "int8"
    for name in ("fp32", "optimized"):
        v = m["variants"][name]["validation"]
        assert v["outputs"] == ["logits"] and v["max_gap"] <= 1e-4 and v["agreement"] == 1.0
        assert v["samples"] == 10  # 8 texts and 2 pairs
    fused = m["variants"]["optimized"]["fused_operators"]
    assert fused["Attention"] == 2  # one per layer
    # Residual adds stay apart from their layer norms (ORT 1.32's SkipLayerNormalization kernel is slow).
    assert "SkipLayerNormalization" not in fused and fused["LayerNormalization"] == 4
    for name, digest in m["files"].items():
        assert sha256_file(path / name) == digest
    assert {"model.onnx", "model_optimized.onnx", "model_quantized.onnx", "tokenizer.json", "config.json"} <= set(
        m["files"]
    )
    # Each graph's weights in a file beside it, which onnxruntime maps instead of copying (export/external.py):
    # the graph keeps only tensors under 1 KB, and the weights file is listed and hashed like the rest.
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    for name in ("model.onnx", "model_optimized.onnx", "model_quantized.onnx"):
        graph = onnx.load(str(path / name), load_external_data=False)
        outside = [t for t in graph.graph.initializer if uses_external_data(t)]
        assert outside and {ExternalDataInfo(t).location for t in outside} == {f"{name}.data"}
        inside = [t for t in graph.graph.initializer if not uses_external_data(t)]
        assert all(len(t.raw_data) < 1024 for t in inside)
        assert f"{name}.data" in m["files"] and (path / f"{name}.data").stat().st_mode & 0o777 == 0o644
    assert {p.name for p in path.iterdir()} == {*m["files"], "onnxpipe.json"}  # nothing stale left beside them


def test_failed_validation_writes_nothing_and_keeps_the_old_artifact(checkpoint, tmp_path, monkeypatch):
    out = tmp_path / "art"
    export(checkpoint(), out)
    before = {p.name: sha256_file(p) for p in out.iterdir()}
    import onnxpipe.export.exporter as exporter

    monkeypatch.setattr(exporter, "FP32_MAX_GAP", -1.0)  # any graph now "differs from PyTorch"
    with pytest.raises(ExportError, match="differs from PyTorch by .* not writing the artifact"):
        export(checkpoint(), out, overwrite=True)
    assert {p.name: sha256_file(p) for p in out.iterdir()} == before
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export(checkpoint(), tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]  # no partial folders left behind


def test_refuses_to_overwrite_unless_asked(checkpoint, tmp_path):
    out = tmp_path / "art"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(ExportError, match="already exists and is not empty"):
        export(checkpoint(), out)
    assert (out / "precious.txt").read_text() == "keep me"


def test_unsupported_architecture_and_task(tmp_path, checkpoint):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=50)).save_pretrained(
        tmp_path / "gpt2"
    )
    with pytest.raises(ExportError, match="unsupported architecture 'gpt2'.*bert"):
        export(tmp_path / "gpt2", tmp_path / "out")
    with pytest.raises(ValueError, match="unsupported task 'translation'"):
        export(checkpoint(), tmp_path / "out", task="translation")
    with pytest.raises(ValueError, match="unknown quantization mode 'int4'"):
        export(checkpoint(), tmp_path / "out", quantize="int4")
    with pytest.raises(ExportError, match="cannot load a config from"):
        export(tmp_path / "no-such-folder", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_optimum_loads_the_same_folder(artifact):
    """Variant files follow optimum's names, so ORTModelForSequenceClassification reads the artifact."""
    from optimum.onnxruntime import ORTModelForSequenceClassification

    path = artifact("bert", "single", optimize=True, quantize="int8")
    pipe = onnxpipe.pipeline(model=path, variant="optimized")
    feed = pipe.encoder.collate(pipe.encode(["good film", "the food was bad"]))
    ours = pipe.session.run(feed)["logits"]
    ort_model = ORTModelForSequenceClassification.from_pretrained(path, file_name="model_optimized.onnx")
    import torch

    theirs = ort_model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_an_artifact_is_not_a_checkpoint(artifact, tmp_path):
    """Passing an exported folder (config.json, no weights) as SOURCE is refused, not a traceback."""
    with pytest.raises(
        ExportError, match=r"cannot load a PyTorch AutoModelForSequenceClassification \(text-classification\)"
    ):
        export(artifact(), tmp_path / "out")


@pytest.mark.parametrize(
    "task, missing", [("text-classification", "classifier.bias"), ("fill-mask", "cls.predictions.bias")]
)
def test_a_head_the_checkpoint_never_trained_is_refused(checkpoint, tmp_path, task, missing):
    """transformers would fill a missing head with random weights; the export would answer confidently wrong."""
    with pytest.raises(ExportError, match=f"has no trained .* head for {task} .*missing weights: .*{missing}"):
        export(checkpoint("bert", "base"), tmp_path / "art", task)
    assert not (tmp_path / "art").exists()


def test_unknown_task_names_the_supported_ones(checkpoint, tmp_path):
    from onnxpipe.tasks import ALIASES, TASKS

    with pytest.raises(ValueError, match="unsupported task 'summarization': onnxpipe supports ") as refused:
        export(checkpoint(), tmp_path / "art", "summarization")
    named = str(refused.value).split("supports ", 1)[1].split(", ")
    assert set(named) >= {*TASKS, *ALIASES}  # every task and alias the registry has, however many there are


def test_span_heads_are_validated_on_their_spans(artifact):
    m = json.loads((artifact("bert", "qa") / "onnxpipe.json").read_text())
    v = m["variants"]["fp32"]["validation"]
    assert v["outputs"] == ["start_logits", "end_logits"] and v["span_agreement"] == 1.0 and v["max_gap"] <= 1e-4
    assert m["head"] == "question-answering" and v["samples"] == 9  # 2 pairs + 7 non-empty contexts
    ner = json.loads((artifact("bert", "ner") / "onnxpipe.json").read_text())["variants"]["fp32"]["validation"]
    assert ner["outputs"] == ["logits"] and ner["agreement"] == 1.0  # every token's label


def test_a_tokenizer_without_a_pad_token_runs_inputs_alone_as_transformers_does(checkpoint, tmp_path):
    """transformers answers single inputs (and a list, one at a time) and refuses to batch; so does onnxpipe."""
    import shutil

    from transformers import AutoTokenizer
    from transformers import pipeline as hf_pipeline

    folder = tmp_path / "nopad"
    shutil.copytree(checkpoint("bert", "single"), folder)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.pad_token = None
    tok.save_pretrained(folder)
    path = export(folder, tmp_path / "art", "text-classification")
    assert json.loads((path / "onnxpipe.json").read_text())["tokenizer"]["pad_id"] is None
    ours, theirs = onnxpipe.pipeline(model=path), hf_pipeline("text-classification", model=str(folder))
    texts = ["good film", "the food was good but the service was bad"]
    for inputs in (texts[0], texts):
        a, b = ours(inputs), theirs(inputs)
        assert [d["label"] for d in a] == [d["label"] for d in b]
        assert np.allclose([d["score"] for d in a], [d["score"] for d in b], atol=1e-5)
    with pytest.raises(ValueError, match="tokenizer without pad_token cannot do batching"):
        theirs(texts, batch_size=2)
    with pytest.raises(ValueError, match="tokenizer without pad_token cannot do batching"):
        ours(texts, batch_size=2)


def test_validation_tolerance_scales_with_the_outputs(checkpoint, tmp_path):
    """A QA head whose logits are in the thousands: float32 is ~1e-3 "away" from PyTorch there, 1e-7 relative."""
    import shutil

    import torch
    from transformers import AutoModelForQuestionAnswering
    from transformers import pipeline as hf_pipeline

    folder = tmp_path / "loud"
    shutil.copytree(checkpoint("bert", "qa"), folder)
    model = AutoModelForQuestionAnswering.from_pretrained(folder)
    with torch.no_grad():
        model.qa_outputs.weight.mul_(3000.0)
    model.save_pretrained(folder)
    path = export(folder, tmp_path / "art", "question-answering")
    fp32 = json.loads((path / "onnxpipe.json").read_text())["variants"]["fp32"]["validation"]
    assert fp32["scale"] > 1000 and fp32["relative_gap"] <= 1e-4
    example = {"question": "Where do I live?", "context": "My name is Wolfgang and I live in Berlin."}
    ours, theirs = onnxpipe.pipeline(model=path)(example), hf_pipeline("question-answering", model=str(folder))(example)
    assert (ours["start"], ours["end"], ours["answer"]) == (theirs["start"], theirs["end"], theirs["answer"])


def test_the_manifest_round_trips_through_its_types_and_old_ones_load(artifact, tmp_path):
    """Exporter and runtime share Manifest.to_dict / from_dict: what is written reads back equal, and a
    manifest of the first format (before the types: no head, no label2id, an unknown key) still loads."""
    import shutil

    from onnxpipe.manifest import Manifest

    path = artifact("bert", "base")
    written = json.loads((path / "onnxpipe.json").read_text())
    assert Manifest.from_dict(written).to_dict() == written
    old = tmp_path / "old"
    shutil.copytree(path, old)
    legacy = {k: v for k, v in written.items() if k not in ("head", "opset", "created", "default_variant")}
    legacy["config"] = {"id2label": written["config"]["id2label"]}
    legacy["tokenizer"] = {k: written["tokenizer"][k] for k in ("file", "max_length", "pad_token", "pad_id")}
    legacy["notes"] = "kept"
    (old / "onnxpipe.json").write_text(json.dumps(legacy))
    pipe = onnxpipe.pipeline("feature-extraction", model=old)
    assert pipe.artifact.manifest.extra == {"notes": "kept"} and pipe.artifact.manifest.embedding is not None
    assert np.allclose(pipe("good film"), onnxpipe.pipeline("feature-extraction", model=path)("good film"))


def test_an_architecture_optimum_cannot_export_for_a_task_is_refused_by_name(checkpoint, tmp_path):
    """ModernBERT exports for every task but question answering: optimum-onnx 0.1.0 has no ONNX config for
    ModernBertForQuestionAnswering. The user gets the architecture and the task named, and nothing written."""
    with pytest.raises(ExportError, match="unsupported architecture 'modernbert' for question-answering"):
        export(checkpoint("modernbert", "qa"), tmp_path / "out", "question-answering")
    assert not (tmp_path / "out").exists()
