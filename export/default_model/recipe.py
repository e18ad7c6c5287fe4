"""Choose the default model's int8 recipe on SST-2 *train* only; dev is never opened here.

    python -m onnxpipe.export.default_model.recipe --data ../shared/data/sst2 ARTIFACT [--out recipes.json]

ARTIFACT is the built default model (``onnxpipe export --default OUT``); its fused fp32 graph is the reference
and each candidate recipe is quantized from it with the bundled calibration text (the build runs offline, so
that is what it can calibrate on). Each candidate is scored on a selection set drawn from train.tsv: agreement
with the fp32 graph's labels and the mean squared gap of the positive-class probability, the finer signal
when agreement ties. The default model was fine-tuned on train, so train sentences sit farther from its
decision boundary than unseen text does: agreement here reads high, and only the ranking of recipes is used.
The chosen settings are written into ``default_model/__init__.py`` by hand, with this command's figures.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import numpy as np

from onnxpipe.export.data import load_sst2

# Whole sentences, as users send and as dev holds: most of train's 67k rows are parse-tree phrases.
MIN_WORDS = 8
SELECTION = 5000
SENSITIVITY = 1000  # the first sentences of the selection set: each node's damage alone
MAX_FLOAT = 4  # nodes kept in float at most: each costs int8 speed
SEED = 0
CANDIDATES = [
    {"alpha": a, "method": m} for m in ("minmax", "percentile") for a in (0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95)
]


def selection_set(data_dir: Path, n: int = SELECTION, seed: int = SEED) -> list[str]:
    texts, _ = load_sst2(data_dir, "train")
    whole = sorted({t.strip() for t in texts if len(t.split()) >= MIN_WORDS})
    return random.Random(seed).sample(whole, min(n, len(whole)))


def probabilities(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def main(argv: list[str] | None = None) -> None:
    from onnxpipe import load_artifact
    from onnxpipe.export.exporter import graph_logits
    from onnxpipe.export.quantize import CALIBRATION_TEXTS, quantizable_nodes, quantize_graph, read_texts
    from onnxpipe.tokenize import TextEncoder

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", type=Path)
    p.add_argument("--data", type=Path, required=True, help="folder holding SST-2 train.tsv (dev is not read)")
    p.add_argument("--out", type=Path, help="write the table as JSON here")
    a = p.parse_args(argv)
    art = load_artifact(a.artifact)
    enc = TextEncoder(a.artifact / "tokenizer.json", art.max_length, art.pad_id, art.pad_token)
    texts = selection_set(a.data)
    calib, _, name = read_texts(None)
    feeds = [enc.collate([e]) for e in enc.encode(calib[:CALIBRATION_TEXTS])]
    src = a.artifact / "model_optimized.onnx"
    ref = probabilities(graph_logits(src, enc, texts))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "q.onnx"

        def run(c: dict, subset: list[str] = texts, reference: np.ndarray = ref) -> dict:
            quantize_graph(
                src,
                dst,
                feeds=feeds,
                calibration_name=name,
                alpha=c["alpha"] or None,
                method=c["method"],
                exclude=c.get("exclude", ()),
            )
            got = probabilities(graph_logits(dst, enc, subset))
            return {
                **c,
                "agreement": round(100 * float(np.mean(got.argmax(-1) == reference.argmax(-1))), 3),
                "mean_sq_gap": float(np.mean((got[:, 1] - reference[:, 1]) ** 2)),
                "max_gap": float(np.max(np.abs(got[:, 1] - reference[:, 1]))),
            }

        for c in CANDIDATES:
            rows.append(run(c))
            print(json.dumps(rows[-1]), flush=True)
        best = pick(rows, len(texts))
        print("settings chosen on train:", json.dumps(best), flush=True)
        # Which nodes hurt most, each alone quantized (the others' errors would mask it), on a subset.
        nodes = quantizable_nodes(src)
        damage = {}
        for node in nodes:
            r = run({**best, "exclude": [n for n in nodes if n != node]}, texts[:SENSITIVITY], ref[:SENSITIVITY])
            damage[node] = r["mean_sq_gap"]
        order = sorted(nodes, key=damage.__getitem__, reverse=True)
        print("most damaging alone:", json.dumps(order[:8]), flush=True)
        for k in range(1, MAX_FLOAT + 1):
            rows.append(run({"alpha": best["alpha"], "method": best["method"], "exclude": order[:k]}))
            print(json.dumps(rows[-1]), flush=True)
    chosen = pick(rows, len(texts))
    print("chosen on train:", json.dumps(chosen))
    if a.out:
        a.out.write_text(
            json.dumps(
                {
                    "selection": f"SST-2 train, {len(texts)} sentences of >= {MIN_WORDS} words, seed {SEED}",
                    "rows": rows,
                    "chosen": chosen,
                },
                indent=1,
            )
        )


def pick(rows: list[dict], n: int) -> dict:
    """The best agreement, where agreement within one binomial standard error of the best is a tie (on a few
    thousand sentences a flip or two is noise); among ties the smallest squared gap, then the fewest float nodes."""
    top = max(r["agreement"] for r in rows) / 100
    se = 100 * (top * (1 - top) / n) ** 0.5
    tied = [r for r in rows if r["agreement"] >= 100 * top - se]
    return min(tied, key=lambda r: (round(r["mean_sq_gap"], 6), len(r.get("exclude", ()))))


if __name__ == "__main__":
    main()
