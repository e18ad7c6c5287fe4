"""onnxpipe score: round trips in three formats, bad rows, kill-and-resume (30,000 embeddings), and Ray equal
to local."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import onnxpipe
from onnxpipe.cli import main
from onnxpipe.scale.score import score_local

TEXTS = [
    "good film",
    "bad food",
    "a beautiful, moving film",
    "never again",
    "très émouvant 这部 🔥",
    "a",
    "the food was good but the service was bad " * 20,
]


@pytest.fixture(scope="module")
def art(artifact):
    return artifact("bert", "single")


@pytest.fixture(scope="module")
def expected(art):
    return onnxpipe.pipeline(model=art)(TEXTS)


def write(path, table: pa.Table):
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    elif path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in table.to_pylist()), encoding="utf-8")


def read(path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".csv":
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True)).to_pylist()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    "src, dst", [("jsonl", "jsonl"), ("csv", "csv"), ("parquet", "parquet"), ("csv", "parquet"), ("parquet", "jsonl")]
)
def test_round_trip_keeps_columns_and_order(art, expected, tmp_path, src, dst):
    table = pa.table({"id": [f"r{i}" for i in range(len(TEXTS))], "text": TEXTS})
    write(tmp_path / f"in.{src}", table)
    pipe = onnxpipe.pipeline(model=art)
    summary = score_local(tmp_path / f"in.{src}", tmp_path / f"out.{dst}", pipe, chunk_rows=3, progress=False)
    assert summary.rows == len(TEXTS) and summary.errors == 0
    rows = read(tmp_path / f"out.{dst}")
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(len(TEXTS))]  # every row, in input order
    assert [r["text"] for r in rows] == TEXTS
    assert [r["label"] for r in rows] == [e["label"] for e in expected]
    assert max(abs(r["score"] - e["score"]) for r, e in zip(rows, expected)) <= 1e-6
    assert all(r["error"] is None for r in rows)
    assert not list(tmp_path.glob(".*parts*"))  # the work folder is gone


def test_bad_rows_are_reported_and_the_rest_scored(art, expected, tmp_path, capsys):
    lines = [
        json.dumps({"text": "good film"}).encode(),
        b"{not json",
        json.dumps(["a", "list"]).encode(),
        json.dumps({"other": 1}).encode(),
        json.dumps({"text": 5}).encode(),
        b'{"text": "caf\xe9"}',
        json.dumps({"text": "bad food"}).encode(),
    ]
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    assert (
        main(["score", str(tmp_path / "in.jsonl"), str(tmp_path / "out.jsonl"), "-m", str(art), "--no-progress"]) == 1
    )
    out, err = capsys.readouterr()
    assert json.loads(out)["rows"] == 7 and json.loads(out)["errors"] == 5
    rows = read(tmp_path / "out.jsonl")
    assert [r["label"] for r in rows] == [expected[0]["label"], None, None, None, None, None, expected[1]["label"]]
    errors = [r["error"] for r in rows]
    assert errors[0] is None and errors[6] is None
    assert errors[1].startswith("row 2: not valid JSON") and errors[2].startswith("row 3: a JSON list")
    assert errors[3] == "row 4: no text in column 'text'" and errors[4] == "row 5: column 'text' holds a int, not text"
    assert errors[5].startswith("row 6: not UTF-8 text (byte 0xe9")
    assert rows[4]["text"] == "5"  # an error row keeps its input, as its JSON text
    for n in (2, 3, 4, 5, 6):
        assert f"row {n}:" in err


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_empty_or_blank_text_is_an_error_row_that_keeps_its_input(art, expected, tmp_path, fmt):
    table = pa.table({"text": ["good film", "", "   \t ", "bad food"]})
    write(tmp_path / f"in.{fmt}", table)
    summary = score_local(
        tmp_path / f"in.{fmt}",
        tmp_path / f"out.{fmt}",
        onnxpipe.pipeline(model=art),
        progress=False,
        warn=lambda m: None,
    )
    rows = read(tmp_path / f"out.{fmt}")
    assert summary.errors == 2 and [r["text"] for r in rows] == ["good film", "", "   \t ", "bad food"]
    assert [r["label"] for r in rows] == [expected[0]["label"], None, None, expected[1]["label"]]
    assert rows[1]["error"] == "row 2: column 'text' is empty: no text to score"
    assert rows[2]["error"] == "row 3: column 'text' is only white space: no text to score"


def test_csv_cell_that_is_not_utf8_is_one_bad_row(art, tmp_path):
    (tmp_path / "in.csv").write_bytes(b"text,id\ngood film,1\ncaf\xe9 bad,2\nbad food,3\n")
    summary = score_local(
        tmp_path / "in.csv", tmp_path / "out.csv", onnxpipe.pipeline(model=art), progress=False, warn=lambda m: None
    )
    rows = read(tmp_path / "out.csv")
    assert summary.errors == 1 and [r["id"] for r in rows] == [1, 2, 3]
    assert rows[1]["error"].startswith("row 2: column 'text' is not UTF-8") and rows[1]["label"] is None
    assert rows[1]["text"] == "caf\ufffd bad"  # kept, the undecodable byte replaced
    assert rows[0]["label"] is not None and rows[2]["label"] is not None


def test_errors_name_the_problem(art, tmp_path):
    pipe = onnxpipe.pipeline(model=art)
    with pytest.raises(FileNotFoundError, match="no such input file"):
        score_local(tmp_path / "missing.csv", tmp_path / "out.csv", pipe)
    (tmp_path / "in.txt").write_text("x")
    with pytest.raises(ValueError, match="unknown file type '.txt'"):
        score_local(tmp_path / "in.txt", tmp_path / "out.csv", pipe)
    write(tmp_path / "in.csv", pa.table({"text": ["a"], "label": ["gold"]}))
    with pytest.raises(ValueError, match="already has column.*label.*--prefix"):
        score_local(tmp_path / "in.csv", tmp_path / "out.csv", pipe, progress=False)
    score_local(tmp_path / "in.csv", tmp_path / "out.csv", pipe, prefix="pred_", progress=False)
    assert set(read(tmp_path / "out.csv")[0]) == {"text", "label", "pred_label", "pred_score", "pred_error"}


# `onnxpipe score` as a child process that, once its third output chunk is committed, marks a file and waits.
PAUSE_AFTER_THIRD_CHUNK = """
import sys, time
import onnxpipe.scale.score as score
from onnxpipe.cli import main

real, committed = score.write_atomic, []
def write_atomic(path, write):
    real(path, write)
    if path.name.startswith("part-") and path.suffix == ".parquet":
        committed.append(path)
        if len(committed) == 3:
            open(sys.argv[1], "w").close()
            time.sleep(600)
score.write_atomic = write_atomic
sys.exit(main(sys.argv[2:]))
"""


def test_killed_embeddings_run_resumes_with_every_row_exactly_once(task_artifact, tmp_path):
    art, n = task_artifact("sentence-embeddings"), 30_000
    texts = [f"{TEXTS[i % 5]} number {i}" for i in range(n)]
    write(tmp_path / "in.parquet", pa.table({"id": list(range(n)), "text": texts}))
    args = [str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet"), "-m", str(art)]
    args += ["--task", "sentence-embeddings", "--chunk-rows", "1000", "--no-progress"]
    cmd = [sys.executable, "-m", "onnxpipe.cli", "score", *args]
    parts = tmp_path / ".out.parquet.onnxpipe-parts"
    # The first run waits, right after its third chunk is committed, until the test kills it there: the kill
    # lands at that chunk boundary whatever the machine's speed (the test waits for a file, not a time).
    flag = tmp_path / "third-chunk-committed"
    proc = subprocess.Popen([sys.executable, "-c", PAUSE_AFTER_THIRD_CHUNK, str(flag), "score", *args])
    for _ in range(6000):
        if flag.exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert flag.exists(), f"the scoring run ended ({proc.poll()}) or hung before its third chunk"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = len(list(parts.glob("part-*.parquet")))
    assert committed == 3 and not (tmp_path / "out.parquet").exists()
    # The same command again: it finishes the job.
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["rows"] == n and summary["resumed_chunks"] >= committed
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column("id").to_pylist() == list(range(n))  # every row once, in order
    sample = list(range(0, n, 97))
    want = onnxpipe.pipeline("sentence-embeddings", model=art)([texts[i] for i in sample])
    got = np.stack(out.column("embedding").combine_chunks().take(sample).to_numpy(zero_copy_only=False))
    assert np.array_equal(got, want)
    assert not parts.exists()


def test_resume_refuses_a_different_job(art, tmp_path):
    write(tmp_path / "in.csv", pa.table({"text": TEXTS}))
    pipe = onnxpipe.pipeline(model=art)
    from onnxpipe.scale.score import open_parts

    open_parts(
        tmp_path / "in.csv",
        tmp_path / "out.csv",
        {
            "model": str(art),
            "variant": pipe.variant,
            "task": pipe.task,
            "column": "text",
            "prefix": "",
            "chunk_rows": 999,
        },
    )
    with pytest.raises(ValueError, match="unfinished run with other settings \\(chunk_rows differ\\)"):
        score_local(tmp_path / "in.csv", tmp_path / "out.csv", pipe, model_id=str(art), progress=False)


def test_ray_engine_equals_local(art, tmp_path, ray_session):
    table = pa.table({"id": [str(i) for i in range(60)], "text": [f"{TEXTS[i % 7]} {i}" for i in range(60)]})
    write(tmp_path / "in.csv", table)
    stale = tmp_path / ".ray.parquet.ray-parts"  # what a killed run leaves: not in the output of the next one
    stale.mkdir()
    write(stale / "part-000099.parquet", pa.table({"id": ["x"]}))
    assert (
        main(["score", str(tmp_path / "in.csv"), str(tmp_path / "local.parquet"), "-m", str(art), "--no-progress"]) == 0
    )
    assert (
        main(
            [
                "score",
                str(tmp_path / "in.csv"),
                str(tmp_path / "ray.parquet"),
                "-m",
                str(art),
                "--engine",
                "ray",
                "--threads",
                "2",
                "--batch-size",
                "4",
                "--chunk-rows",
                "16",
                "--no-progress",
            ]
        )
        == 0
    )
    local, on_ray = read(tmp_path / "local.parquet"), read(tmp_path / "ray.parquet")
    assert [r["id"] for r in on_ray] == [r["id"] for r in local] and not stale.exists()  # every row once
    assert [r["label"] for r in on_ray] == [r["label"] for r in local]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(on_ray, local)) <= 1e-6


def test_without_the_score_extra_the_cli_names_it(art, tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m.startswith("onnxpipe.scale")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as in a runtime-only install
    assert main(["score", str(tmp_path / "in.csv"), str(tmp_path / "out.csv"), "-m", str(art)]) == 2
    err = capsys.readouterr().err
    assert "needs the score extra (missing: pyarrow)" in err and "pip install '.[score]'" in err
