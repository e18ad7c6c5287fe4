"""The onnxpipe command, run in-process: export, run (args and stdin), explain, errors."""

from __future__ import annotations

import io
import json

import pytest

import onnxpipe
from onnxpipe.cli import main


def test_export_then_run(checkpoint, tmp_path, capsys):
    out = tmp_path / "art"
    assert main(["export", str(checkpoint("electra")), str(out), "--quantize", "int8"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert main(["run", str(out), "--variant", "fp32", "good film", "bad food"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = onnxpipe.pipeline(model=out, variant="fp32")(["good film", "bad food"])
    assert rows == [{"text": t, **r} for t, r in zip(["good film", "bad food"], expected)]


def test_run_reads_stdin_and_top_k(artifact, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("good film\n\nbad food\n"))
    assert main(["run", str(artifact()), "--top-k", "2"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["good film", "bad food"]  # blank lines skipped
    assert all(len(r["labels"]) == 2 for r in rows)


def test_run_streams_stdin_in_chunks(artifact, monkeypatch, capsys):
    import onnxpipe.cli as cli

    monkeypatch.setattr(cli, "RUN_CHUNK", 2)
    texts = [f"text number {i}" for i in range(5)]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(texts) + "\n"))
    assert main(["run", str(artifact()), "--variant", "fp32"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = onnxpipe.pipeline(model=artifact(), variant="fp32")(texts)
    assert rows == [{"text": t, **r} for t, r in zip(texts, expected)]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n\n"))
    assert main(["run", str(artifact())]) == 2
    assert "no text given" in capsys.readouterr().err


def test_explain_shows_the_four_stages(artifact, capsys):
    path = artifact()
    assert main(["explain", str(path), "--variant", "fp32", "good film"]) == 0
    out = capsys.readouterr().out
    for stage in ("1. load", "2. preprocess", "3. forward", "4. postprocess"):
        assert stage in out
    pipe = onnxpipe.pipeline(model=path, variant="fp32")
    assert str(pipe.preprocess(["good film"])[0].ids) in out
    assert json.loads(out.strip().splitlines()[-1]) == pipe("good film")


def test_errors_exit_2_with_a_message(artifact, tmp_path, capsys):
    assert main(["run", str(tmp_path), "text"]) == 2  # a folder, but no manifest
    assert "onnxpipe.json is missing" in capsys.readouterr().err
    assert main(["explain", str(artifact()), "one", "two"]) == 2
    assert "exactly one text" in capsys.readouterr().err
    assert main(["export", "only-source"]) == 2
    assert "needs SOURCE and OUTDIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "a", "b", "--quantize", "int3"])
