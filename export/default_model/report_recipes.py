"""Every recipe the train-only choice scored (``recipe.py --out TABLE``), reported in one table: its train figures
beside its dev figures, its graph's size in nodes and float fallbacks, and its speed. The report never chooses.

    python -m onnxpipe.export.default_model.recipe ARTIFACT --data ../shared/data/sst2 --candidates compare --out T
    python -m onnxpipe.export.default_model.report_recipes ARTIFACT T --data ../shared/data/sst2 [--speed-rounds 3]

Each row is rebuilt from the artifact's fused graph as ``recipe.py`` built it. Dev: accuracy, and agreement with
the fused fp32 graph (which agrees with PyTorch on every dev sentence for the default model). Speed: each graph
timed in a fresh process of its own (:func:`onnxpipe.bench.graphs.run_one`: batch-1 p50 of ``session.run`` on the
seed sentence, SST-2 dev at batch 32), the graphs in turns for ``--speed-rounds`` rounds; a ratio is the fused
fp32 graph's time over the row's in the same round, median [range] over the rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np

FP32 = "fused fp32 (the reference)"


def ratios(runs: dict[str, list[dict]], name: str) -> str:
    """Batch-1 and batch-32 speed over the fused fp32 graph, each paired with it round by round."""
    if not runs:
        return "– | –"
    b1 = [f["b1_p50_ms"] / g["b1_p50_ms"] for f, g in zip(runs[FP32], runs[name])]
    b32 = [g["per_s"] / f["per_s"] for f, g in zip(runs[FP32], runs[name])]
    return " | ".join(
        f"{statistics.median(r):.2f}x [{min(r):.2f}–{max(r):.2f}]" if len(r) > 1 else f"{r[0]:.2f}x" for r in (b1, b32)
    )


def main(argv: list[str] | None = None) -> None:
    from onnxpipe.bench.graphs import run_one
    from onnxpipe.export.data import load_sst2
    from onnxpipe.export.validate import graph_logits
    from onnxpipe.graph_nodes import node_counts

    from .recipe import Quantizer, describe

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", type=Path)
    p.add_argument("table", type=Path, help="recipe.py's --out JSON")
    p.add_argument("--data", type=Path, required=True, help="folder holding SST-2 dev.tsv")
    p.add_argument("--speed-rounds", type=int, default=3, help="rounds of per-process timing (0: no speed columns)")
    p.add_argument("--calls", type=int, default=300, help="batch-1 calls per graph and round (default: 300)")
    p.add_argument("--threads", type=int, help="intra-op threads for the timing (default: all cores)")
    a = p.parse_args(argv)
    if a.speed_rounds < 0 or a.calls < 1:
        p.error("--speed-rounds must be >= 0 and --calls >= 1")
    table = json.loads(a.table.read_text())
    q = Quantizer(a.artifact)
    enc, src = q.encoder, q.src
    texts, labels = load_sst2(a.data, "dev")
    y = np.array(labels)
    ref = graph_logits(src, enc, texts).argmax(-1)
    nodes, in_float = node_counts(src)
    lines: list[tuple[str, str]] = [(FP32, f"{in_float} | {nodes} | 100% | 0 | 100% | {100 * np.mean(ref == y):.2f}%")]
    chosen = describe(table["chosen"])
    with tempfile.TemporaryDirectory() as tmp:
        graphs = {FP32: src}
        for i, row in enumerate(table["rows"]):
            dst = q.build(row, Path(tmp) / f"recipe-{i}.onnx")
            got = graph_logits(dst, enc, texts).argmax(-1)
            nodes, in_float = node_counts(dst)
            name = describe(row) + (" (chosen on train)" if describe(row) == chosen else "")
            graphs[name] = dst
            lines.append(
                (
                    name,
                    f"{in_float} | {nodes} | {row['agreement']:.2f}% | {row['mean_sq_gap']:.1e} | "
                    f"{100 * np.mean(got == ref):.2f}% | {100 * np.mean(got == y):.2f}%",
                )
            )
            print(json.dumps({"recipe": name, "line": lines[-1][1]}), flush=True)
        runs: dict[str, list[dict]] = {name: [] for name in graphs} if a.speed_rounds else {}
        for _ in range(a.speed_rounds):
            for name, file in graphs.items():
                runs[name].append(run_one(file, a.data, a.calls, a.threads, artifact=a.artifact))
    print(f"\n{table['selection']}; dev: {len(texts)} sentences, never used to choose\n")
    print(
        "| recipe | weight products in float | nodes | train agreement with fp32 | train mean sq. prob. gap "
        "| dev agreement with fp32 | dev accuracy | speed vs fused fp32, batch 1 | batch 32 |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for name, figures in lines:
        print(f"| {name} | {figures} | {ratios(runs, name)} |")


if __name__ == "__main__":
    main()
