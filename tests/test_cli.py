"""The onnxpipe command: export, run (arguments and live stdin), explain, errors; in-process and as a process."""

from __future__ import annotations

import dataclasses

import io
import json
import os
import subprocess
import sys
import time

import pytest

import onnxpipe
from onnxpipe.cli import main


def rows_of(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def fake_stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_export_then_run(checkpoint, tmp_path, capsys):
    out = tmp_path / "art"
    assert main(["export", str(checkpoint("electra")), str(out), "--quantize", "int8"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert main(["run", "-m", str(out), "--variant", "fp32", "good film", "bad food"]) == 0
    expected = onnxpipe.pipeline(model=out, variant="fp32")(["good film", "bad food"])
    assert rows_of(capsys.readouterr().out) == [{"text": t, **r} for t, r in zip(["good film", "bad food"], expected)]


def test_run_reads_stdin_crlf_blank_lines_and_top_k(artifact, monkeypatch, capsys):
    fake_stdin(monkeypatch, b"good film\r\n\r\nbad food\n")
    assert main(["run", "--model", str(artifact()), "--top-k", "2"]) == 0
    rows = rows_of(capsys.readouterr().out)
    assert [r["text"] for r in rows] == ["good film", "bad food"]  # \r gone, blank line skipped
    assert rows[0]["labels"] == onnxpipe.pipeline(model=artifact())(["good film"], top_k=2)[0]


def test_a_bad_line_gets_an_error_record_and_the_rest_is_answered(artifact, monkeypatch, capsys):
    fake_stdin(monkeypatch, b"good film\ncaf\xe9 good\nbad food\n")
    assert main(["run", "-m", str(artifact()), "--variant", "fp32"]) == 1
    captured = capsys.readouterr()
    rows = rows_of(captured.out)
    expected = onnxpipe.pipeline(model=artifact(), variant="fp32")(["good film", "bad food"])
    assert rows[0] == {"text": "good film", **expected[0]} and rows[2] == {"text": "bad food", **expected[1]}
    assert rows[1]["line"] == 2 and "not UTF-8" in rows[1]["error"] and "0xe9" in rows[1]["error"]
    assert "line 2" in captured.err


def test_jsonl_input(artifact, monkeypatch, capsys):
    fake_stdin(
        monkeypatch,
        b'"good film"\n{"text": "bad food", "id": 7}\n{"txt": 1}\n[1, 2]\nnot json\n'
        b'{"text": "good film", "text_pair": "bad food"}\n',
    )
    assert main(["run", "-m", str(artifact()), "--jsonl"]) == 1
    rows = rows_of(capsys.readouterr().out)
    pipe = onnxpipe.pipeline(model=artifact())
    expected = pipe(["good film", "bad food"])
    assert rows[:2] == [{"text": "good film", **expected[0]}, {"text": "bad food", **expected[1]}]
    assert [r["line"] for r in rows[2:5]] == [3, 4, 5]
    assert "must be a dict with 'text'" in rows[2]["error"] and "not valid JSON" in rows[4]["error"]
    pair = {"text": "good film", "text_pair": "bad food"}
    assert rows[5] == {**pair, **pipe(pair)}


def test_an_undecodable_argument_is_an_error_record(artifact, capsys):
    bad = os.fsdecode(b"caf\xe9")  # what argv holds for a Latin-1 byte: a lone surrogate
    assert main(["run", "-m", str(artifact()), "good", bad]) == 1
    rows = rows_of(capsys.readouterr().out)
    assert rows[0]["text"] == "good" and rows[1]["line"] == 2 and "not UTF-8" in rows[1]["error"]


def test_explain_shows_the_four_stages(artifact, capsys):
    path = artifact()
    assert main(["explain", "-m", str(path), "--variant", "fp32", "good film"]) == 0
    out = capsys.readouterr().out
    for stage in ("1. load", "2. preprocess", "3. forward", "4. postprocess"):
        assert stage in out
    pipe = onnxpipe.pipeline(model=path, variant="fp32")
    assert str(pipe.encode(["good film"])[0].ids) in out
    assert json.loads(out.strip().splitlines()[-1]) == pipe("good film")


@pytest.mark.parametrize(
    "argv, words",
    [
        (["run", "-m", "/nonexistent/art", "hi"], ["/nonexistent/art", "no such folder"]),
        (["explain", "-m", "/nonexistent/art", "hi"], ["/nonexistent/art", "no such folder"]),
        (["run", "-m", "{tmp}", "hi"], ["{tmp}", "onnxpipe.json is missing"]),
        (["run", "--batch-size", "0", "hi"], ["--batch-size", "positive"]),
        (["run", "--threads", "x", "hi"], ["--threads", "positive"]),
        (["explain", "one", "two"], ["unrecognized arguments: two"]),
        (["export", "a", "b", "--quantize", "int3"], ["--quantize", "int3"]),
        (["run", "--params", "[1]", "hi"], ["--params", "JSON object"]),
        (["run", "--params", "{bad", "hi"], ["--params", "not valid JSON"]),
        (["serve", "--lone-inline", "-1"], ["--lone-inline", "whole number >= 0", "'-1'"]),
    ],
)
def test_usage_errors_name_the_path_or_option(argv, words, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    for w in words:
        assert w.replace("{tmp}", str(tmp_path)) in err


def test_errors_exit_2_with_a_message(capsys, monkeypatch):
    assert main(["export", "only-source"]) == 2
    assert "needs SOURCE and OUTDIR" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "torch", None)  # a runtime-only install
    assert main(["export", "src", "out"]) == 2
    err = capsys.readouterr().err
    assert "export extra (missing: torch)" in err and "download.pytorch.org/whl/cpu" in err
    assert "Traceback" not in err


def test_a_bug_keeps_its_traceback_and_a_mistake_is_one_line(artifact, monkeypatch, capsys):
    """run_guarded answers the user's mistakes (InputError, OnnxPipeError, OSError) with one line and exit 2; a
    bug's own ValueError, TypeError or RuntimeError is not taken for one: it propagates with its traceback."""
    import onnxpipe.cli.run as run

    for bug in (ValueError("a bug"), TypeError("a bug"), RuntimeError("a bug"), KeyError("a bug")):

        def broken(*args, bug=bug, **kwargs):
            raise bug

        monkeypatch.setattr(run, "answer", broken)
        with pytest.raises(type(bug), match="a bug"):
            main(["run", "-m", str(artifact()), "good film"])
    monkeypatch.undo()
    assert main(["run", "-m", str(artifact()), "--variant", "fp16", "good film"]) == 2  # the user's mistake
    err = capsys.readouterr().err
    assert "unknown variant 'fp16'" in err and "Traceback" not in err


def test_an_export_option_the_quantizer_refuses_is_one_line(checkpoint, tmp_path, capsys):
    """The quantizer's refusals of the user's options (here an empty calibration file) are input errors: exit 2
    and one line naming the problem, no traceback."""
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    argv = ["export", str(checkpoint("bert", "single")), str(tmp_path / "out"), "--optimize", "--quantize", "int8"]
    assert main([*argv, "--calibration", str(empty)]) == 2
    err = capsys.readouterr().err
    assert f"{empty} holds no text" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_export_takes_fixed_activation_scales_as_a_flag(checkpoint, tmp_path):
    """``--fixed-scales inf`` reaches the quantizer: every activation takes one calibrated scale, the manifest says
    so in words and by name, and the graph has no per-row ReduceMax left."""
    import onnx

    out = tmp_path / "fixed"
    ckpt = str(checkpoint("bert", "single"))
    assert main(["export", ckpt, str(out), "--optimize", "--quantize", "rowwise", "--fixed-scales", "inf"]) == 0
    q = onnxpipe.load_artifact(out).variants["int8"]["quantization"]
    assert len(q["fixed_scale_activations"]) == q["quantized_activations"] > 0
    assert f"{q['quantized_activations']} of {q['quantized_activations']} with one calibrated scale" in q["activations"]
    assert "ReduceMax" not in {n.op_type for n in onnx.load(str(out / "model_quantized.onnx")).graph.node}


def test_export_takes_the_defaults_rowwise_recipe_as_flags(checkpoint, tmp_path, capsys):
    """The levers both embedded defaults are built with, from the command line: several smoothing strengths (one
    chosen per activation), GPTQ rounding, asymmetric weights, centred LayerNorm outputs, the leftover product, the
    Hadamard rotation and the int8 word table reach the quantizer (the manifest records each, the graph carries two int8 products a weight matmul), and the
    graph is the one ``export(..., quantize=Int8Options(...))`` writes, byte for byte. Options the static mode
    cannot take are refused in one line."""
    import onnx

    from onnxpipe.export import export
    from onnxpipe.export.quantize import Int8Options

    ckpt = str(checkpoint("bert", "single"))
    levers = [
        "--smooth",
        "0,0.5,0.8",
        "--rounding",
        "gptq",
        "--asymmetric",
        "--center",
        "--leftover",
        "--rotate",
        "16",
        "--damp",
        "0.1",
        "--int8-word-table",
    ]
    out = tmp_path / "cli"
    assert main(["export", ckpt, str(out), "--optimize", "--quantize", "rowwise", *levers]) == 0
    q = onnxpipe.load_artifact(out).variants["int8"]["quantization"]
    assert q["smoothing_alpha"] == [0.0, 0.5, 0.8] and q["weight_rounding"] == "gptq" and q["centred_layernorm"]
    assert q["residual"] == "activations" and q["weights"].endswith("asymmetric per output channel (a zero point each)")
    assert q["word_table"].startswith("int8, a scale per row") and q["rotation_block"] == 16
    assert q["gptq_damp"] == 0.1
    ops = [n.op_type for n in onnx.load(str(out / "model_quantized.onnx")).graph.node]
    assert ops.count("MatMulIntegerToFloat") == 2 * q["int8_matmuls"] > 0
    opts = Int8Options(
        mode="rowwise",
        alpha=(0.0, 0.5, 0.8),
        rounding="gptq",
        asymmetric=True,
        center=True,
        word_table=True,
        rotate=16,
        damp=0.1,
    )
    python = export(ckpt, tmp_path / "py", optimize=True, quantize=dataclasses.replace(opts, residual="activations"))
    for name in ("model_quantized.onnx", "model_quantized.onnx.data"):  # the graph, then its weights file
        assert (python / name).read_bytes() == (out / name).read_bytes()
    capsys.readouterr()
    assert main(["export", ckpt, str(tmp_path / "bad"), "--quantize", "int8", "--smooth", "0,0.5"]) == 2
    assert "several smoothing strengths (0.0, 0.5) are for --quantize rowwise" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: exit 2 with its usage line
        main(["export", ckpt, str(tmp_path / "bad"), "--quantize", "rowwise", "--smooth", "1.5"])
    assert "smoothing strengths are between 0 and 1" in capsys.readouterr().err
    for flag, bad, reason in (
        ("--damp", "-1", "GPTQ damping is 0 or more"),
        ("--rotate", "24", "the rotation block is a power of two of at least 2 (or 0)"),
        ("--fixed-scales", "-1", "--fixed-scales is a ratio of errors, 0 or more"),
    ):
        with pytest.raises(SystemExit):  # refused by argparse, before anything is exported
            main(["export", ckpt, str(tmp_path / "bad"), "--quantize", "rowwise", flag, bad])
        assert reason in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"onnxpipe {onnxpipe.__version__}"


def cli_process(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "onnxpipe.cli", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def test_live_stdin_is_answered_line_by_line(artifact):
    """`tail -f log | onnxpipe run`: each line's answer comes before the next line is even written."""
    proc = cli_process("run", "-m", str(artifact()), "--variant", "fp32")
    try:
        expected = onnxpipe.pipeline(model=artifact(), variant="fp32")(["good film", "bad food"])
        for text, exp in zip(["good film", "bad food"], expected):
            proc.stdin.write(text.encode() + b"\n")
            proc.stdin.flush()
            assert json.loads(proc.stdout.readline()) == {"text": text, **exp}  # stdin is still open
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()


def test_closed_stdout_ends_quietly(artifact):
    """`onnxpipe run | head -1`: no 'Broken pipe' message, no traceback, the SIGPIPE status."""
    proc = cli_process("run", "-m", str(artifact()), "--batch-size", "4")
    proc.stdin.write(b"good film\n" * 5000)
    proc.stdin.close()
    assert json.loads(proc.stdout.readline())["text"] == "good film"
    proc.stdout.close()
    deadline = time.time() + 60
    while proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert proc.poll() == 141
    assert proc.stderr.read() == b""


def test_run_and_explain_every_task(artifact, capsys):
    """--task and --params reach the pipeline; results that are not dicts go under the task's key."""
    nli, mlm, base = artifact("bert", "nli"), artifact("bert", "mlm"), artifact("bert", "base")
    params = {"candidate_labels": ["film", "food"], "multi_label": True}
    assert (
        main(["run", "-m", str(nli), "--task", "zero-shot-classification", "--params", json.dumps(params), "good film"])
        == 0
    )
    zs = onnxpipe.pipeline("zero-shot-classification", model=nli)
    assert rows_of(capsys.readouterr().out) == [{"text": "good film", **zs("good film", **params)}]

    assert main(["run", "-m", str(mlm), "--params", '{"top_k": 2}', "a [MASK] film"]) == 0
    fm = onnxpipe.pipeline(model=mlm)
    assert rows_of(capsys.readouterr().out) == [{"text": "a [MASK] film", "predictions": fm("a [MASK] film", top_k=2)}]

    assert main(["run", "-m", str(base), "--task", "sentence-embeddings", "good film"]) == 0
    (row,) = rows_of(capsys.readouterr().out)
    vector = onnxpipe.pipeline("sentence-embeddings", model=base)("good film")
    assert len(row["embedding"]) == 32 and max(abs(a - b) for a, b in zip(row["embedding"], vector)) < 1e-6

    assert (
        main(
            [
                "explain",
                "-m",
                str(nli),
                "--task",
                "zero-shot-classification",
                "--params",
                json.dumps(params),
                "good film",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "2 feature(s)" in out and "'food', '.', '[SEP]']" in out and "logits (2, 3)" in out
    assert json.loads(out.strip().splitlines()[-1]) == zs("good film", **params)
    assert main(["explain", "-m", str(mlm), "a [MASK] film"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == fm("a [MASK] film")


@pytest.mark.parametrize(
    "argv, words",
    [
        (["run", "--task", "summarization", "hi"], ["unsupported task 'summarization'"]),
        (["run", "--task", "fill-mask", "hi [MASK]"], ["no default model for task 'fill-mask'"]),
    ],
)
def test_task_and_params_errors(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err


def test_spans_from_the_command_line(artifact, monkeypatch, capsys):
    """NER and QA through run (JSON lines in and out) and explain (windows, per-token labels, span decisions)."""
    ner, qa = artifact("bert", "ner"), artifact("bert", "qa")
    text = "the food was good but the service was bad " * 4
    params = {"aggregation_strategy": "simple", "stride": 8, "ignore_labels": []}
    assert main(["run", "-m", str(ner), "--params", json.dumps(params), text]) == 0
    assert rows_of(capsys.readouterr().out) == [
        {"text": text, "entities": onnxpipe.pipeline(model=ner)(text, **params)}
    ]
    assert main(["explain", "-m", str(ner), "--params", json.dumps(params), text]) == 0
    out = capsys.readouterr().out
    assert "window 1/" in out and "food/" in out and "grouped by aggregation_strategy='simple'" in out

    example = {"question": "What was bad?", "context": text}
    fake_stdin(monkeypatch, (json.dumps(example) + "\n" + json.dumps({"question": "?"}) + "\n").encode())
    assert main(["run", "-m", str(qa), "--jsonl", "--params", '{"top_k": 2}']) == 1
    rows = rows_of(capsys.readouterr().out)
    answer = onnxpipe.pipeline(model=qa)(example, top_k=2)
    assert rows[0] == {**example, "answers": answer} and "question:..., context:..." in rows[1]["error"]
    assert main(["explain", "-m", str(qa), "--json", json.dumps(example)]) == 0
    out = capsys.readouterr().out
    assert "window 1/" in out and json.loads(out.strip().splitlines()[-1]) == onnxpipe.pipeline(model=qa)(example)


def test_tune_times_every_candidate_and_caches_what_runs(artifact, tmp_path, monkeypatch, capsys):
    """`onnxpipe tune -m ARTIFACT`: a line per batch-invariant variant, the choice and why; the next load reads
    that choice from the cache (no wall time is asserted: which variant wins is this machine's business)."""
    from onnxpipe import tune

    path = artifact("bert", "single", optimize=True, quantize="int8")
    monkeypatch.setenv("ONNXPIPE_CACHE", str(tmp_path))
    assert main(["tune", "-m", str(path), "--threads", "1", "--rounds", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[1:4]] == ["fp32", "optimized", "int8"]
    assert all("batch 1" in line and "batch 8" in line for line in out[1:4])
    chosen = out[-1].split()[1].rstrip(":")
    assert out[-1].startswith(f"runs {chosen}: timed on this machine:") and chosen in ("fp32", "optimized", "int8")
    monkeypatch.delenv(tune.TUNE_ENV)

    def timed_again(*args):
        raise AssertionError("timed again although `onnxpipe tune` cached the choice")

    monkeypatch.setattr(tune, "measure", timed_again)
    assert onnxpipe.pipeline(model=path, threads=1).variant == chosen
