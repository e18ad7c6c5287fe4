"""The int8 recipe chooser tries rowwise beside the static recipes, on train only, and the report puts every tried
recipe's train and dev figures, node counts and speed in one table."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import onnxruntime as ort

import onnxpipe
from onnxpipe.export.default_model import recipe, report_recipes
from onnxpipe.export.quantize import quantize_graph

WORDS = ["good", "bad", "fine", "dull", "moving", "long", "bright", "slow", "warm", "cold", "funny", "flat"]


def sentences(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=9)) for _ in range(n)]


def write_split(folder, name: str, texts: list[str]) -> None:
    rows = [f"{i % 2}\t{t}" for i, t in enumerate(texts)]
    (folder / f"{name}.tsv").write_text("label\tsentence\n" + "\n".join(rows) + "\n", encoding="utf-8")


def test_compare_chooses_on_train_and_reports_every_row(artifact, tmp_path, capsys):
    art = artifact("bert", "single", optimize=True, quantize="int8")
    data = tmp_path / "sst2"
    data.mkdir()
    write_split(data, "train", sentences(40, 0))  # no dev.tsv: the chooser must not need it
    table = tmp_path / "recipes.json"
    recipe.main([str(art), "--data", str(data), "--candidates", "compare", "--selection", "30", "--out", str(table)])
    rows = json.loads(table.read_text())["rows"]
    assert [(r["mode"], r.get("rounding", "nearest"), r.get("asymmetric", False)) for r in rows] == [
        ("static", "nearest", False),
        ("static", "nearest", False),
        ("rowwise", "nearest", False),
        ("rowwise", "gptq", False),
        ("rowwise", "nearest", True),
        ("rowwise", "gptq", True),
    ]
    assert rows[0]["exclude"] and not rows[1].get("exclude")
    assert rows[4]["mean_sq_gap"] != rows[2]["mean_sq_gap"]  # asymmetric weights reached the quantizer: other outputs
    assert rows[0]["float_products"] > rows[1]["float_products"]  # the default's recipe keeps products in float
    chosen = json.loads(table.read_text())["chosen"]
    assert chosen in rows and chosen["agreement"] >= max(r["agreement"] for r in rows) - 100 * (0.25 / 30) ** 0.5

    # The rowwise row's graph, rebuilt here: its node count as onnx reads it, and its dev labels run one text at a
    # time by onnxruntime itself, against the fused fp32 graph's.
    dev = sentences(24, 1)
    write_split(data, "dev", dev)
    rowwise = tmp_path / "rowwise.onnx"
    quantize_graph(art / "model_optimized.onnx", rowwise, "rowwise", alpha=None)
    pipe = onnxpipe.pipeline(model=art, variant="fp32")

    def labels(path) -> np.ndarray:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}
        feeds = [pipe.encoder.collate(pipe.encoder.encode([t])) for t in dev]
        return np.array(
            [session.run(["logits"], {n: v for n, v in f.items() if n in names})[0][0].argmax() for f in feeds]
        )

    agreement = 100 * np.mean(labels(rowwise) == labels(art / "model_optimized.onnx"))
    capsys.readouterr()
    report_recipes.main([str(art), str(table), "--data", str(data), "--speed-rounds", "1", "--calls", "3"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(lines) == 1 + 1 + len(rows)  # header, the fp32 reference, one per tried recipe
    cells = {line.split(" | ")[0][2:]: line.strip(" |").split(" | ")[1:] for line in lines[1:]}
    row = cells["rowwise, smoothing 0" + (" (chosen on train)" if chosen is rows[2] or chosen == rows[2] else "")]
    graph = onnx.load(str(rowwise)).graph
    weights = {i.name for i in graph.initializer}
    in_float = sum(n.op_type in ("MatMul", "Gemm") and n.input[1] in weights for n in graph.node)  # the head's
    assert (int(row[0]), int(row[1])) == (in_float, len(graph.node)) == (rows[2]["float_products"], rows[2]["nodes"])
    assert not any(n.op_type == "Attention" for n in graph.node)  # every encoder product int8
    assert row[2] == f"{rows[2]['agreement']:.2f}%" and row[4] == f"{agreement:.2f}%"
    assert all(re.fullmatch(r"[\d.]+x", cell) for cell in row[-2:])  # speed over fused fp32, one round
    assert sum("(chosen on train)" in name for name in cells) == 1


def scored_rows(art, tmp_path, candidates: str) -> list[dict]:
    """``recipe.py --candidates CANDIDATES`` on 30 of 40 made-up train sentences: the rows it wrote."""
    data = tmp_path / "sst2"
    data.mkdir()
    write_split(data, "train", sentences(40, 0))
    table = tmp_path / "recipes.json"
    recipe.main([str(art), "--data", str(data), "--candidates", candidates, "--selection", "30", "--out", str(table)])
    return json.loads(table.read_text())["rows"]


def test_leftover_candidates_reach_the_quantizer(artifact, tmp_path):
    """``--candidates leftover``: the default's recipe and three rowwise rows with each row's rounding leftover in
    a second int8 product; the leftover and the centring reach the graph (twice the int8 products, a second
    LayerNorm per centred output), and the rows are named by what they do."""
    art = artifact("bert", "single", optimize=True, quantize="int8")
    rows = scored_rows(art, tmp_path, "leftover")
    assert [r.get("residual") for r in rows] == [None, "activations", "activations", "activations"]
    assert rows[1]["nodes"] > rows[0]["nodes"] and rows[3]["nodes"] > rows[2]["nodes"]  # leftover chains; centring
    assert recipe.describe(rows[3]).endswith("centred LayerNorm outputs, each row's leftover in a second product")
    built = recipe.Quantizer(art).build(rows[2], tmp_path / "q.onnx")
    ops = [n.op_type for n in onnx.load(str(built)).graph.node]
    fused = [n.op_type for n in onnx.load(str(art / "model_optimized.onnx")).graph.node]
    weights = fused.count("MatMul") + fused.count("Attention")  # an Attention's Q/K/V: one weight
    assert ops.count("MatMulIntegerToFloat") == 2 * ops.count("Sum") == 2 * weights  # two products a weight


def test_smoothed_candidates_hold_the_default_recipe_and_build_each_row(artifact, tmp_path):
    """``--candidates smoothed`` (the list that chose the sentiment default's all-int8 recipe, issue 24): it starts
    from the static default it replaced (4 nodes in float), holds a row with exactly the options the default is
    built with, and every row reaches the quantizer: all-int8 rows keep no encoder product in float, the centred ones
    quantize a second LayerNorm's output, the sequential row is named as such."""
    from onnxpipe.export.default_model import DEFAULT_INT8
    from onnxpipe.export.default_model.candidates import STATIC_DEFAULT

    art = artifact("bert", "single", optimize=True, quantize="int8")
    rows = scored_rows(art, tmp_path, "smoothed")
    assert rows[0]["exclude"] == STATIC_DEFAULT["exclude"] and len(rows) == 6
    settings = ("mode", "rounding", "center", "asymmetric", "sequential", "residual")
    default = {k: getattr(DEFAULT_INT8, k) or None for k in settings}
    same = [r for r in rows if {k: r.get(k) or None for k in settings} == default]
    assert len(same) == 1 and tuple(same[0]["alpha"]) == DEFAULT_INT8.alpha
    assert all(r["float_products"] == rows[1]["float_products"] for r in rows[1:])  # the head only (pooler, classifier)
    q = recipe.Quantizer(art)
    norms = [
        [n.op_type for n in onnx.load(str(q.build(rows[i], tmp_path / f"{i}.onnx"))).graph.node].count(
            "LayerNormalization"
        )
        for i in (2, 3)
    ]
    assert norms[1] > norms[0]  # centring: a second LayerNorm (gamma / s, no beta) where the smoothing was
    assert recipe.describe(rows[4]).endswith("GPTQ moments read sequentially")
    assert recipe.describe(rows[2]).startswith("rowwise, smoothing chosen per activation, gptq rounding")
