"""SST-2 dev accuracy of the built default model: PyTorch (merged checkpoint) and every ONNX variant.

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
            enc = tok(texts[s:s + 64], padding=True, truncation=True, return_tensors="pt")
            preds += model(**enc).logits.argmax(-1).tolist()
    out["pytorch"] = float(np.mean(np.array(preds) == y))
    for variant in onnxpipe.load_artifact(artifact).variants:
        pipe = onnxpipe.pipeline(model=artifact, variant=variant)
        id_of = {v: k for k, v in pipe.artifact.id2label.items()}
        out[variant] = float(np.mean(np.array([id_of[r["label"]] for r in pipe(texts)]) == y))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", nargs="?", type=Path, help="built default model (default: build or reuse the cache)")
    p.add_argument("--data", type=Path, help="folder with SST-2 dev.tsv")
    a = p.parse_args(argv)
    if a.artifact is None:
        from onnxpipe.default import ensure_default

        a.artifact = ensure_default()
    print(json.dumps({k: round(v, 4) for k, v in evaluate(a.artifact, a.data).items()}))


if __name__ == "__main__":
    main()
