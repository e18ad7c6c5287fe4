"""score's edges per task and engine: vector formats, the embedded default, parameters refused up front,
bad rows and bugs, a Spark run interrupted and run again, the artifact shipped to Spark's workers."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import onnxpipe
from onnxpipe.cli import main
from onnxpipe.scale.score import score_local

TEXTS = ["good film", "bad food", "a beautiful, moving film", "never again", "très émouvant 这部 🔥"]


def run(*argv: str) -> int:
    return main(["score", *map(str, argv), "--no-progress"])


def test_embeddings_as_json_lines_and_not_csv(task_artifact, tmp_path, capsys):
    art = task_artifact("sentence-embeddings")
    pq.write_table(pa.table({"text": TEXTS}), tmp_path / "in.parquet")
    assert run(tmp_path / "in.parquet", tmp_path / "out.jsonl", "-m", art, "--task", "sentence-embeddings") == 0
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    want = onnxpipe.pipeline("sentence-embeddings", model=art)(TEXTS)
    assert np.array_equal(np.array([r["embedding"] for r in rows], dtype=np.float32), want)  # a list of floats each
    assert run(tmp_path / "in.parquet", tmp_path / "out.csv", "-m", art, "--task", "sentence-embeddings") == 2
    err = capsys.readouterr().err
    assert "sentence-embeddings writes embedding as lists, which CSV cannot hold" in err
    assert "Parquet" in err and "JSON lines" in err and not (tmp_path / "out.csv").exists()


def test_embeddings_on_the_embedded_default(embeddings_default, corpus, tmp_path):
    texts = corpus.column("text").to_pylist()[:100]
    pq.write_table(pa.table({"text": texts}), tmp_path / "in.parquet")
    # no -m: --task names the embedded default
    assert run(tmp_path / "in.parquet", tmp_path / "out.parquet", "--task", "sentence-embeddings") == 0
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 384)
    want = onnxpipe.pipeline("sentence-embeddings")(texts)
    assert np.array_equal(np.stack(table.column("embedding").to_numpy(zero_copy_only=False)), want)


@pytest.mark.parametrize(
    "task, options, message",
    [
        ("zero-shot-classification", [], 'needs its labels for every row: --params \'{"candidate_labels"'),
        ("fill-mask", ["--pair-column", "text"], "--pair-column: fill-mask takes no text pairs"),
        ("sentence-embeddings", ["--question-column", "text"], "--question-column: sentence-embeddings takes no"),
        ("question-answering", [], "question-answering needs its questions: --question-column COLUMN"),
        ("question-answering", ["--question-column", "q", "--params", '{"question": "who?"}'], "both given"),
        ("token-classification", ["--params", '{"aggregation_strategy": "most"}'], "aggregation_strategy must be"),
    ],
)
def test_what_cannot_run_is_refused_before_any_row(task, options, message, task_artifact, tmp_path, capsys):
    pq.write_table(pa.table({"text": TEXTS, "q": TEXTS}), tmp_path / "in.parquet")
    assert (
        run(tmp_path / "in.parquet", tmp_path / "out.parquet", "-m", task_artifact(task), "--task", task, *options) == 2
    )
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.parquet").exists() and not list(tmp_path.glob(".*parts*"))


def test_one_question_for_every_row_and_a_bad_row_of_its_own(task_artifact, tmp_path, capsys):
    art = task_artifact("question-answering")
    contexts = ["the film was good", None, "the food was bad"]
    pq.write_table(pa.table({"doc": contexts}), tmp_path / "in.parquet")
    params = '{"question": "what was good?"}'
    assert (
        run(tmp_path / "in.parquet", tmp_path / "out.parquet", "-m", art, "--context-column", "doc", "--params", params)
        == 1
    )
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    want = onnxpipe.pipeline(model=art)([{"question": "what was good?", "context": c} for c in contexts[::2]])
    for row, answer in zip([rows[0], rows[2]], want):
        assert {k: row[k] for k in answer} == pytest.approx(answer, abs=1e-6) and row["error"] is None
    assert rows[1]["error"] == "row 2: no text in column 'doc'" and rows[1]["answer"] is None


def test_a_text_the_task_refuses_is_an_error_row(task_artifact, tmp_path, capsys):
    pq.write_table(
        pa.table({"text": ["a [MASK] film", "no mask here", "the [MASK] was [MASK]"]}), tmp_path / "in.parquet"
    )
    assert run(tmp_path / "in.parquet", tmp_path / "out.parquet", "-m", task_artifact("fill-mask")) == 1
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [len(r["predictions"] or []) for r in rows] == [1, 0, 2]  # a list per mask; none for the error
    assert rows[1]["error"].startswith("row 2: ") and "mask token" in rows[1]["error"]


def test_a_bug_stops_the_run_and_keeps_the_committed_chunks(task_artifact, tmp_path, monkeypatch):
    pipe = onnxpipe.pipeline(model=task_artifact("text-classification"))
    pq.write_table(pa.table({"text": [f"{TEXTS[i % 5]} {i}" for i in range(50)]}), tmp_path / "in.parquet")
    real, calls = pipe.results, []

    def results(inputs, **params):
        calls.append(len(inputs))
        if len(calls) == 3:
            raise RuntimeError("a bug")
        return real(inputs, **params)

    monkeypatch.setattr(pipe, "results", results)
    with pytest.raises(RuntimeError, match="a bug"):  # not an input error: not an error row
        score_local(tmp_path / "in.parquet", tmp_path / "out.parquet", pipe, chunk_rows=10, progress=False)
    assert len(list((tmp_path / ".out.parquet.onnxpipe-parts").glob("part-*.parquet"))) == 2
    monkeypatch.setattr(pipe, "results", real)
    summary = score_local(tmp_path / "in.parquet", tmp_path / "out.parquet", pipe, chunk_rows=10, progress=False)
    assert summary.resumed_chunks == 2 and pq.read_table(tmp_path / "out.parquet").num_rows == 50


def test_spark_run_interrupted_then_run_again_has_every_row_once(
    task_artifact, corpus, tmp_path, monkeypatch, spark_session
):
    import onnxpipe.scale.spark as spark

    art = task_artifact("sentence-embeddings")
    table = corpus.select(["id", "text"]).slice(0, 600)
    pq.write_table(table, tmp_path / "in.parquet")
    real, calls = spark.map_pipeline, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a kill between two commits
        return real(*args, **kwargs)

    monkeypatch.setattr(spark, "map_pipeline", interrupted)
    args = (tmp_path / "in.parquet", tmp_path / "out.parquet", "-m", art, "--task", "sentence-embeddings")
    assert run(*args, "--engine", "spark", "--chunk-rows", "200") == 130
    monkeypatch.setattr(spark, "map_pipeline", real)
    assert run(*args, "--engine", "spark", "--chunk-rows", "200") == 0
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column("id").to_pylist() == table.column("id").to_pylist()
    want = onnxpipe.pipeline("sentence-embeddings", model=art)(table.column("text").to_pylist())
    assert np.array_equal(np.stack(out.column("embedding").to_numpy(zero_copy_only=False)), want)


def test_spark_ships_the_artifact_to_workers(task_artifact, spark_session):
    from onnxpipe.scale.spark import map_pipeline

    art = task_artifact("text-classification")
    df = spark_session.createDataFrame(pa.table({"text": TEXTS}))
    rows = map_pipeline(df, art, ship=True, top_k=2).toArrow().to_pylist()  # SparkFiles, not the path
    want = onnxpipe.pipeline(model=art)(TEXTS, top_k=2)
    for row, labels in zip(rows, want):
        assert [x["label"] for x in row["labels"]] == [x["label"] for x in labels]
        assert [x["score"] for x in row["labels"]] == pytest.approx([x["score"] for x in labels], abs=1e-6)
