"""SST-2 dev accuracy of the built default model: PyTorch (merged checkpoint) and every ONNX variant,
with each variant's agreement with PyTorch and its label flips / score gap between batch sizes.

    python -m onnxpipe.export.default_model.evaluate --data ../shared/data/sst2 [ARTIFACT]

The figures in ``minilm-sst2/README.md`` come from this command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from onnxpipe.export.data import load_sst2


def evaluate(artifact: Path, data_dir: Path | None) -> dict[str, float]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import onnxpipe

    texts, labels = load_sst2(data_dir, "dev")
    y = np.array(labels)
    out = {}
    ckpt = artifact / "pytorch"
    model = AutoModelForSequenceClassification.from_pretrained(ckpt).eval()
    tok = AutoTokenizer.from_pretrained(ckpt)
    preds = []
    with torch.no_grad():
        for s in range(0, len(texts), 64):
            enc = tok(texts[s : s + 64], padding=True, truncation=True, return_tensors="pt")
            preds += model(**enc).logits.argmax(-1).tolist()
    out["pytorch"] = float(np.mean(np.array(preds) == y))
    for variant in onnxpipe.load_artifact(artifact).variants:
        pipe = onnxpipe.pipeline(model=artifact, variant=variant)
        id_of = {v: k for k, v in pipe.artifact.id2label.items()}
        by_batch = {b: pipe(texts, top_k=None, batch_size=b) for b in BATCH_SIZES}
        label = {b: np.array([id_of[r[0]["label"]] for r in rows]) for b, rows in by_batch.items()}
        positive = {
            b: np.array([next(d["score"] for d in r if d["label"] == pipe.artifact.id2label[1]) for r in rows])
            for b, rows in by_batch.items()
        }
        out[variant] = float(np.mean(label[32] == y))
        out[f"{variant} agreement"] = float(np.mean(label[32] == np.array(preds)))
        out[f"{variant} flips vs batch 1"] = int(sum(np.sum(label[b] != label[1]) for b in BATCH_SIZES))
        out[f"{variant} score gap vs batch 1"] = float(
            max(np.max(np.abs(positive[b] - positive[1])) for b in BATCH_SIZES)
        )
    return out


# Accuracy is quoted at batch 32; batch invariance compares every batch size with each text alone.
BATCH_SIZES = (1, 8, 32, 64)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", nargs="?", type=Path, help="built default model (default: build or reuse the cache)")
    p.add_argument("--data", type=Path, help="folder with SST-2 dev.tsv")
    p.add_argument(
        "--write-card",
        action="store_true",
        help="rewrite the delta's model card (minilm-sst2/README.md) with these figures, keeping the "
        "training summary from its train_log.json (for a new build recipe without retraining)",
    )
    a = p.parse_args(argv)
    if a.artifact is None:
        from onnxpipe.default import ensure_default

        a.artifact = ensure_default()
    figures = evaluate(a.artifact, a.data)
    print(json.dumps({k: v if isinstance(v, int) else round(v, 6) for k, v in figures.items()}, indent=1))
    if a.write_card:
        from . import DELTA_DIR
        from .card import write_card

        summary = json.loads((DELTA_DIR / "train_log.json").read_text(encoding="utf-8"))
        print(write_card(DELTA_DIR, summary, figures))


if __name__ == "__main__":
    main()
