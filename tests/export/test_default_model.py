"""The embedded default model: merging a delta into a base, building on first use, the real one."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

import onnxpipe
from conftest import SEED_SENTENCE
from onnxpipe import OnnxPipeError
from onnxpipe.export.default_model import build as build_mod
from onnxpipe.export.default_model.base import load_base_classifier
from onnxpipe.export.default_model.train import LORA_TARGETS
from tiny_models import build_base_encoder

TEXTS = [SEED_SENTENCE, "This movie was terrible, boring and far too long.", "a beautiful film", "bad food"]


@pytest.fixture(scope="module")
def tiny_base_and_delta(tmp_path_factory):
    """A tiny encoder and a LoRA delta with random (non-zero) weights, saved as peft saves them."""
    from peft import LoraConfig, TaskType, get_peft_model

    root = tmp_path_factory.mktemp("tiny-default")
    base = build_base_encoder(root / "base")
    torch.manual_seed(1)
    model = get_peft_model(
        load_base_classifier(base),
        LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=4,
            lora_alpha=8,
            target_modules=LORA_TARGETS,
            modules_to_save=["classifier", "bert.pooler.dense"],
            init_lora_weights=False,
        ),
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "classifier" in name and p.requires_grad:
                p.normal_(0, 2.0)
    model.eval().save_pretrained(root / "delta")
    return base, root / "delta", model


def torch_scores(model, tokenizer, texts):
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    return torch.softmax(logits, -1).numpy()


def test_build_from_tiny_delta_matches_the_unmerged_adapter(tiny_base_and_delta, tmp_path):
    from transformers import AutoTokenizer

    base, delta, peft_model = tiny_base_and_delta
    out = build_mod.build_default(tmp_path / "default", log=lambda m: None, base_dir=base, delta_dir=delta)
    pipe = onnxpipe.pipeline("sentiment-analysis", model=out, variant="fp32")
    ours = np.array([[d["score"] for d in sorted(r, key=lambda d: d["label"])] for r in pipe(TEXTS, top_k=None)])
    # NEGATIVE < POSITIVE alphabetically, which is also id order 0, 1.
    expected = torch_scores(peft_model, AutoTokenizer.from_pretrained(base), TEXTS)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    assert set(pipe.artifact.id2label.values()) == {"NEGATIVE", "POSITIVE"}
    m = pipe.artifact.manifest
    assert m.source["kind"] == "onnxpipe default" and len(m.source["delta_sha256"]) == 64
    assert set(m.variants) == {"fp32", "optimized", "int8"}
    merged = json.loads((out / "pytorch" / "config.json").read_text())
    assert merged["id2label"] == {"0": "NEGATIVE", "1": "POSITIVE"}
    assert (out / "pytorch" / "model.safetensors").is_file()
    with pytest.raises(OnnxPipeError, match="already exists"):
        build_mod.build_default(out, log=lambda m: None, base_dir=base, delta_dir=delta)


def test_first_use_builds_into_the_cache_then_reuses_it(tiny_base_and_delta, tmp_path, monkeypatch):
    import onnxpipe.export.default_model as default_model

    base, delta, _ = tiny_base_and_delta
    monkeypatch.setenv("ONNXPIPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(default_model, "DELTA_DIR", delta)
    monkeypatch.setattr(build_mod, "DELTA_DIR", delta)
    monkeypatch.setattr(build_mod, "base_model_dir", lambda: base)
    messages = []
    monkeypatch.setattr("onnxpipe.default.print", lambda *a, **k: messages.append(" ".join(map(str, a))), raising=False)
    first = onnxpipe.pipeline("sentiment-analysis")
    assert first.artifact.path.parent == tmp_path / "cache"
    assert first.artifact.path.name.startswith("minilm-sst2-")
    assert any("building the default" in m for m in messages)

    def no_rebuild(*a, **k):
        raise AssertionError("the cached default was rebuilt")

    monkeypatch.setattr(build_mod, "build_default", no_rebuild)
    again = onnxpipe.pipeline("sentiment-analysis")
    assert again.artifact.path == first.artifact.path
    assert again(TEXTS) == first(TEXTS)

    # `onnxpipe export --default OUTDIR` writes the (cached) default where a server or a user wants it.
    from onnxpipe.cli import main

    out = tmp_path / "artifacts" / "minilm-sst2"
    assert main(["export", "--default", str(out)]) == 0
    assert onnxpipe.pipeline(model=out)(TEXTS) == first(TEXTS)
    assert main(["export", "--default", str(out)]) == 2  # not over a full folder without --overwrite


def test_without_the_export_extra_the_message_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("ONNXPIPE_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setitem(sys.modules, "onnxpipe.export.default_model.build", None)  # import fails
    with pytest.raises(
        OnnxPipeError,
        match=r"needs the export extra .*download\.pytorch\.org/whl/cpu && "
        r"pip install '\.\[export\]'",
    ):
        onnxpipe.pipeline("sentiment-analysis")
    with pytest.raises(ValueError, match="no default model for task"):
        from onnxpipe.default import default_artifact_dir

        default_artifact_dir("token-classification")


# -- the real default: the packaged MiniLM encoder plus the committed delta ------------------------


def test_the_default_build_reads_no_sst2_split_and_names_the_data_that_chose_its_recipe(real_default):
    """Issue 16: int8 settings are chosen on train and reported on dev; the build itself reads neither, and a
    build that opened dev.tsv (or any SST-2 file) fails here. The audit hook saw every file Python opened."""
    from conftest import BUILD_OPENED

    assert any(p.endswith("adapter_model.safetensors") for p in BUILD_OPENED)  # the hook watched the build
    assert [p for p in BUILD_OPENED if p.endswith(".tsv") or "/shared/data" in p or "glue" in p.lower()] == []
    recipe = onnxpipe.load_artifact(real_default).variants["int8"]["quantization"]
    assert recipe["chosen_on"].startswith("SST-2 train") and "dev" not in recipe["chosen_on"]
    assert recipe["calibration"].startswith("bundled general-en.txt") and len(recipe["smoothing_alpha"]) == 7


def test_the_default_int8_graph_has_no_float_fallback_in_the_encoder(real_default):
    """Issue 24: every encoder weight product int8 (the attention's Q/K/V included: 6 layers x Q/K/V, attention
    output, FFN up and down, the last layer's Q, K and V apart for its one row), none kept in float; the head
    (pooler, classifier) is not the encoder's and stays float. Recorded in the manifest as built."""
    import onnx

    q = onnxpipe.load_artifact(real_default).variants["int8"]["quantization"]
    assert q["mode"] == "rowwise" and q["excluded"] == [] and q["attentions_left_fused"] == []
    assert q["weight_rounding"] == "gptq" and q["centred_layernorm"] and q["residual"] is None
    ops = [n.op_type for n in onnx.load(str(real_default / "model_quantized.onnx")).graph.node]
    assert "MatMul" not in ops and "Attention" not in ops and "QAttention" not in ops
    assert q["int8_matmuls"] == 26 and q["split_products"] == 5 and "Split" not in ops and ops.count("Gemm") == 2
    assert ops.count("MatMulIntegerToFloat") == 26 + 2 * 5  # layers 0-4's Q/K/V: three products, no Split


def test_readme_main_job_explains_and_runs_offline(real_default, capsys):
    """`onnxpipe explain TEXT` and `onnxpipe run TEXT...` with no model: the four stages, then labels."""
    from onnxpipe.cli import main

    assert main(["explain", SEED_SENTENCE]) == 0
    out = capsys.readouterr().out
    assert "[101, 2057, 2024, 2200, 3407, 2000, 2265, 2017, 1996, 100, 19081, 3075, 1012, 102]" in out
    assert "label  POSITIVE" in out and str(real_default) in out
    assert main(["run", "A gripping, beautifully shot film.", "Boring and far too long."]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in rows] == ["POSITIVE", "NEGATIVE"]


def test_real_default_says_positive_for_the_seed_sentence(real_default):
    pipe = onnxpipe.pipeline("sentiment-analysis", model=real_default)
    assert pipe.variant == pipe.artifact.default_variant
    (result,) = pipe(SEED_SENTENCE)
    assert result["label"] == "POSITIVE" and result["score"] > 0.9
    assert pipe("This movie was terrible, boring and far too long.")[0]["label"] == "NEGATIVE"


def test_real_default_matches_pytorch_on_the_same_weights(real_default):
    from transformers import pipeline

    theirs = pipeline("text-classification", model=str(real_default / "pytorch"), truncation=True)
    texts = [*TEXTS, "it 's a charming and often affecting journey . " * 60]
    expected = theirs(texts, top_k=None)
    for variant in ("fp32", "optimized"):
        ours = onnxpipe.pipeline(model=real_default, variant=variant)(texts, top_k=None)
        for o, t in zip(ours, expected):
            assert [d["label"] for d in o] == [d["label"] for d in t]
            assert max(abs(a["score"] - b["score"]) for a, b in zip(o, t)) <= 1e-5
    int8 = onnxpipe.pipeline(model=real_default, variant="int8")(texts)
    assert [r["label"] for r in int8] == [t[0]["label"] for t in expected]


def test_real_default_variant_gives_the_same_answer_in_any_batch(real_default):
    """The default variant is int8 with per-row scales: each text's label and scores are the same alone and in
    padded batches of any size (the bound is the issue's 1e-4; integer products are exact per row, the float
    attention's softmax over padded keys rounds with the batch: ~1e-7)."""
    pipe = onnxpipe.pipeline(model=real_default)
    assert pipe.variant == "int8" and pipe.artifact.variants["int8"]["quantization"]["mode"] == "rowwise"
    texts = [
        *TEXTS,
        "meh",
        "the plot is thin but the visuals are so inventive that I could not look away . " * 3,
        "Worst. Purchase. Ever.",
        "not bad at all",
        "x " * 600,
    ]
    alone = [pipe(t, top_k=None) for t in texts]
    for size in (2, 5, 64):
        for a, b in zip(alone, pipe(texts, top_k=None, batch_size=size)):
            assert [d["label"] for d in a] == [d["label"] for d in b]
            assert max(abs(x["score"] - y["score"]) for x, y in zip(a, b)) <= 1e-4


def test_recipe_trains_builds_and_writes_the_card(tmp_path):
    """The training recipe end to end on a tiny base and a tiny SST-2-shaped data folder."""
    from onnxpipe.export.default_model.train import build_and_card, train

    data = tmp_path / "sst2"
    data.mkdir()
    rows = [
        "1\ta beautiful , moving film",
        "0\tboring and far too long",
        "1\ti love it",
        "0\tnever again",
        "1\tgreat cast",
        "0\tthe food was bad",
    ]
    (data / "train.tsv").write_text("label\tsentence\n" + "\n".join(rows * 4) + "\n")
    (data / "dev.tsv").write_text("label\tsentence\n" + "\n".join(rows) + "\n")
    base = build_base_encoder(tmp_path / "base")
    out = tmp_path / "delta"
    summary = train(
        data,
        out,
        rank=2,
        alpha=4,
        steps=3,
        batch_size=4,
        lr=1e-3,
        warmup=0.0,
        max_length=32,
        seed=0,
        threads=1,
        base_dir=base,
        eval_every=3,
    )
    assert (out / "adapter_model.safetensors").is_file()
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert summary["log"][-1]["step"] == 3
    assert any(abs(summary["dev_accuracy_pytorch"] - i / 6) < 1e-3 for i in range(7))  # 6 dev sentences
    accuracies = build_and_card(out, data, summary, base_dir=base)
    assert {"pytorch", "fp32", "optimized", "int8"} <= set(accuracies)
    assert accuracies["fp32 agreement"] == accuracies["optimized agreement"] == 1.0
    assert accuracies["int8 flips vs batch 1"] == 0 and accuracies["int8 score gap vs batch 1"] <= 1e-4
    assert accuracies["fp32"] == accuracies["optimized"] == accuracies["pytorch"]
    card = (out / "README.md").read_text()
    assert (
        "3 steps at batch 4" in card and f"| PyTorch, merged checkpoint | {100 * accuracies['pytorch']:.2f}% |" in card
    )
