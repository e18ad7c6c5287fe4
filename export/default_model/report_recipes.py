"""Every recipe the train-only choice scored (``recipe.py --out TABLE``), reported on SST-2 dev: the report
that never chooses. Accuracy, agreement with the fp32 graph, and each recipe's train figure beside it.

    python -m onnxpipe.export.default_model.report_recipes ARTIFACT TABLE --data ../shared/data/sst2
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> None:
    from onnxpipe.export.data import load_sst2
    from onnxpipe.export.exporter import graph_logits

    from .recipe import Quantizer

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", type=Path)
    p.add_argument("table", type=Path, help="recipe.py's --out JSON")
    p.add_argument("--data", type=Path, required=True, help="folder holding SST-2 dev.tsv")
    a = p.parse_args(argv)
    q = Quantizer(a.artifact)
    enc, src = q.encoder, q.src
    texts, labels = load_sst2(a.data, "dev")
    y = np.array(labels)
    ref = graph_logits(src, enc, texts).argmax(-1)
    print(f"| recipe | train agreement | dev accuracy (fp32 {100 * np.mean(ref == y):.2f}%) | dev agreement |")
    print("|---|--:|--:|--:|")
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "q.onnx"
        for row in json.loads(a.table.read_text())["rows"]:
            exclude = row.get("exclude", [])
            q.build(row, dst)
            got = graph_logits(dst, enc, texts).argmax(-1)
            what = f"smoothing {row['alpha']}, {row['method']}" + (f", {len(exclude)} in float" if exclude else "")
            print(
                f"| {what} | {row['agreement']:.2f}% | {100 * np.mean(got == y):.2f}% | {100 * np.mean(got == ref):.2f}% |",
                flush=True,
            )


if __name__ == "__main__":
    main()
