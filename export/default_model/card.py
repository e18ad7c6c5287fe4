"""The model card of the default model's delta (``minilm-sst2/README.md``), written by the recipe."""

from __future__ import annotations

from pathlib import Path

_VARIANTS = (
    ("pytorch", "PyTorch, merged checkpoint"),
    ("fp32", "ONNX fp32 (`model.onnx`)"),
    ("optimized", "ONNX fused fp32 (`model_optimized.onnx`)"),
    (
        "int8",
        "ONNX int8, every encoder product, per-row scales (`model_quantized.onnx`, the runtime's default variant)",
    ),
)


def render(summary: dict, accuracies: dict[str, float], adapter_bytes: int) -> str:
    h = summary["hyperparameters"]
    size_mb = adapter_bytes / 1e6
    steps = [e for e in summary["log"] if "dev_accuracy" in e]
    rows = []
    for key, label in _VARIANTS:
        if key in accuracies:
            delta = "" if key == "pytorch" else f" ({100 * (accuracies[key] - accuracies['pytorch']):+.2f} pt)"
            agreement = accuracies.get(f"{key} agreement")
            flips = accuracies.get(f"{key} flips vs batch 1")
            gap = accuracies.get(f"{key} score gap vs batch 1")
            rows.append(
                f"| {label} | {100 * accuracies[key]:.2f}%{delta} | "
                + ("–" if agreement is None else f"{100 * agreement:.2f}%")
                + " | "
                + ("–" if flips is None else f"{flips} / {gap:.1e}")
                + " |"
            )
    return f"""# minilm-sst2 — onnxpipe's embedded default sentiment model

The model `pipeline("sentiment-analysis")` uses when no model is named. It is built offline from a
PyPI package plus the small delta in this folder; no hub is needed. This card is written by the
recipe (`python -m onnxpipe.export.default_model.train`), which trains, builds and evaluates.

| | |
|---|---|
| architecture | `BertForSequenceClassification`, labels `0 NEGATIVE`, `1 POSITIVE`, 512 positions |
| base encoder | {summary["base"]}: 6 layers, 384 wide, bert-base-uncased vocabulary |
| fine-tuned part (this folder) | LoRA rank {h["lora_rank"]}, alpha {h["lora_alpha"]}, dropout 0.05, on {", ".join(h["lora_targets"])} (every layer's attention and feed-forward projections); pooler and classifier trained in full. {summary["trained_parameters"]:,} parameters, `adapter_model.safetensors` {size_mb:.2f} MB (fp32), peft format |
| data | {summary["data"]} |
| recipe | {h["steps"]:,} steps at batch {h["batch_size"]}, AdamW lr {h["lr"]:g}, weight decay 0.01, {h["schedule"]} schedule with {100 * h["warmup"]:.0f}% warm-up, gradient clipping 1.0, max {h["max_length"]} tokens, length-grouped batches, seed {h["seed"]}, {h["threads"]} threads |
| training time | {summary["train_seconds"]:,.0f} s ({summary["train_seconds"] / 60:.1f} min){", " + summary["note"] if summary.get("note") else ""}; `train_log.json` has the loss and dev-accuracy log |

## SST-2 dev accuracy (872 sentences)

| | accuracy | agreement with PyTorch | batch 1 vs 8, 32, 64: label flips / largest score gap |
|---|--:|--:|--:|
{chr(10).join(rows)}

Accuracy and agreement at batch 32. The int8 graph keeps no encoder product in float (per-row activation scales,
smoothing strength chosen per activation, GPTQ rounding; recipe chosen on SST-2 train), calibrated on the bundled
general English set (`export/calibration/general-en.txt`, 92 texts, none from SST-2).

During training: {", ".join(f"{100 * e['dev_accuracy']:.2f}% after {e['step']:,} steps" for e in steps)}.
For scale: the seed's distilbert-base-uncased-finetuned-sst-2-english (66M parameters) reports 91.3%.

Commands (from the repository root, with the export extra installed):

    python -m onnxpipe.export.default_model.train --data ../shared/data/sst2      # writes this folder and card
    python -m onnxpipe.export.default_model.evaluate --data ../shared/data/sst2   # the table's figures alone

## How it is built

`onnxpipe export --default`, or the first `pipeline("sentiment-analysis")`, loads the packaged
encoder into a `BertForSequenceClassification`, applies this adapter with peft and merges it
(`merge_and_unload`), saves the merged checkpoint, and exports it through the normal export stage
(validated against PyTorch; fp32, fused and int8). The result lands in
`~/.cache/onnxpipe/minilm-sst2-<12 hex of the adapter's sha256 and the build recipe>/` (or `$ONNXPIPE_CACHE`), with the
merged PyTorch checkpoint kept in its `pytorch/` folder.
"""


def write_card(out_dir: Path, summary: dict, accuracies: dict[str, float]) -> Path:
    path = out_dir / "README.md"  # replaces peft's template card
    path.write_text(render(summary, accuracies, (out_dir / "adapter_model.safetensors").stat().st_size))
    return path
