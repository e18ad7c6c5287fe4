"""python -m onnxpipe.bench.graphs: each graph timed in a process of its own, one table row per graph."""

from __future__ import annotations

import re

import pytest

from onnxpipe.bench import graphs


def test_one_row_per_graph_with_ranges(artifact, tmp_path, capsys):
    art = artifact("bert", "single", optimize=True, quantize="int8")
    (tmp_path / "dev.tsv").write_text("label\tsentence\n1\ta good film\n0\tfar too long and boring\n", encoding="utf-8")
    assert (
        graphs.main(
            [
                "--data",
                str(tmp_path),
                "--rounds",
                "2",
                "--calls",
                "5",
                "--threads",
                "1",
                f"fp32={art / 'model.onnx'}",
                f"int8={art / 'model_quantized.onnx'}",
            ]
        )
        == 0
    )
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "graph" not in line]
    assert [row.split(" | ")[0] for row in rows] == ["| fp32", "| int8"]
    for row in rows:  # min–max over the two rounds, in ms and sentences/s
        low, high = map(float, re.search(r"\| ([\d.]+)–([\d.]+) \|", row).groups())
        assert 0 < low <= high
    import onnx

    for row, file in zip(rows, ("model.onnx", "model_quantized.onnx")):  # node counts as onnx counts them
        model = onnx.load(str(art / file))
        nodes, in_float = map(int, row.strip(" |").split(" | ")[-2:])
        assert nodes == len(model.graph.node)
        assert (in_float > 0) == (file == "model.onnx")


def test_bad_graph_argument_names_the_problem(tmp_path, capsys):
    with pytest.raises(SystemExit):
        graphs.main(["--data", str(tmp_path), f"x={tmp_path / 'missing.onnx'}"])
    assert "NAME=FILE" in capsys.readouterr().err
