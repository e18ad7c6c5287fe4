"""`onnxpipe score` for every task, on every engine: a 2,000-row file scored row for row as `pipeline(...)`
answers in-process (vectors bit-identical, other floats within 1e-6), with the columns the registry names."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import onnxpipe
from onnxpipe.cli import main

# task → (score options, the call's parameters, the input column(s) the call reads)
CASES = {
    "text-classification": (["--pair-column", "pair"], {}, ("text", "pair")),
    "zero-shot-classification": ([], {"candidate_labels": ["film", "food", "music"]}, ("text",)),
    "feature-extraction": ([], {}, ("text",)),
    "sentence-embeddings": ([], {}, ("text",)),
    "fill-mask": (["--column", "masked"], {"top_k": 3}, ("masked",)),
    "token-classification": ([], {"aggregation_strategy": "simple", "stride": 8}, ("text",)),
    "question-answering": (["--question-column", "question"], {"top_k": 2}, ("question", "text")),
    "sparse-embeddings": ([], {"top_k": 16}, ("text",)),
}
VECTORS = {"feature-extraction": "features", "sentence-embeddings": "embedding"}


def call_inputs(task: str, table: pa.Table) -> list:
    columns = [table.column(c).to_pylist() for c in CASES[task][2]]
    if task == "text-classification":
        return [{"text": t, "text_pair": p} for t, p in zip(*columns)]
    if task == "question-answering":
        return [{"question": q, "context": c} for q, c in zip(*columns)]
    return columns[0]


def as_columns(task: str, result) -> dict:
    """`pipeline(...)`'s answer for one input as the columns score writes."""
    if task == "text-classification":
        return {"label": result["label"], "score": result["score"]}
    if task == "zero-shot-classification":
        return {"labels": result["labels"], "scores": result["scores"]}
    if task == "feature-extraction":
        return {"features": np.asarray(result[0], dtype=np.float32)}
    if task == "sentence-embeddings":
        return {"embedding": result}
    if task == "fill-mask":  # one column type per run: a list of proposals per mask
        return {"predictions": result if result and isinstance(result[0], list) else [result]}
    if task == "token-classification":
        return {"entities": result}
    if task == "sparse-embeddings":  # TEI's /embed_sparse shape: one {index, value} a non-zero weight
        return {"sparse": [{"index": int(i), "value": float(v)} for i, v in zip(result["indices"], result["values"])]}
    return {"answers": [result] if isinstance(result, dict) else result}  # one answer found: a dict


def assert_close(got, want, where: str) -> None:
    if isinstance(want, dict):
        assert set(got) == set(want), where
        for k in want:
            assert_close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert abs(got - want) <= 1e-6, where
    else:
        assert got == want, where


@pytest.fixture(scope="session")
def scored_input(corpus, tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "in.parquet"
    pq.write_table(corpus, path)
    return path


@pytest.fixture(scope="session")
def expected(corpus, task_artifact):
    """Each task's answers from `pipeline(...)` in-process, computed once per session."""
    cache: dict[str, list[dict]] = {}

    def get(task: str) -> list[dict]:
        if task not in cache:
            pipe = onnxpipe.pipeline(task, model=task_artifact(task))
            answers = pipe(call_inputs(task, corpus), **CASES[task][1])
            cache[task] = [as_columns(task, a) for a in answers]
        return cache[task]

    return get


def score(task: str, art, src, dst, engine: str, *extra: str) -> int:
    options, params, _ = CASES[task]
    argv = ["score", str(src), str(dst), "-m", str(art), "--task", task, "--no-progress", *options, *extra]
    return main([*argv, "--engine", engine, *(["--params", json.dumps(params)] if params else [])])


def check(task: str, table: pa.Table, corpus: pa.Table, expected: list[dict]) -> None:
    assert table.column("id").to_pylist() == corpus.column("id").to_pylist()  # every row once, in order
    assert table.column("error").null_count == table.num_rows
    vector = VECTORS.get(task)
    if vector is not None:
        got = table.column(vector).combine_chunks()
        inner = got.type if task == "sentence-embeddings" else got.type.value_type
        assert pa.types.is_fixed_size_list(inner) and inner.value_type == pa.float32()
        for i, row in enumerate(got.to_pylist()):  # float32 → Python float → float32 is exact
            assert np.array_equal(np.asarray(row, dtype=np.float32), expected[i][vector]), f"row {i}"
        return
    rows = table.select(list(expected[0])).to_pylist()
    for i, (got_row, want) in enumerate(zip(rows, expected)):
        assert_close(got_row, want, f"row {i}")


@pytest.mark.parametrize("task", list(CASES))
def test_local_score_equals_the_pipeline(task, corpus, scored_input, task_artifact, expected, tmp_path):
    assert score(task, task_artifact(task), scored_input, tmp_path / "out.parquet", "local") == 0
    check(task, pq.read_table(tmp_path / "out.parquet"), corpus, expected(task))


@pytest.mark.parametrize("task", list(CASES))  # every task: ~2.5 s each, mostly the actors' start
def test_ray_map_pipeline_equals_the_pipeline(task, corpus, task_artifact, expected, ray_session):
    """Ray Data's map_pipeline (the step of --engine ray, whose CLI path test_score.py runs) on each task."""
    from onnxpipe.scale.ray import map_pipeline
    from onnxpipe.scale.results import Inputs

    ray_session.data.DataContext.get_current().execution_options.preserve_order = True
    column = {"question-answering": Inputs("text", question="question"), "text-classification": Inputs("text", "pair")}
    inputs = column.get(task, CASES[task][2][0])
    ds = map_pipeline(
        ray_session.data.from_arrow(corpus), task_artifact(task), task, inputs, rows_per_call=500, **CASES[task][1]
    )
    check(task, pa.concat_tables(ds.iter_batches(batch_format="pyarrow", batch_size=None)), corpus, expected(task))


@pytest.mark.parametrize("task", list(CASES))
def test_spark_score_equals_the_pipeline(task, corpus, scored_input, task_artifact, expected, tmp_path, spark_session):
    assert score(task, task_artifact(task), scored_input, tmp_path / "out.parquet", "spark") == 0
    check(task, pq.read_table(tmp_path / "out.parquet"), corpus, expected(task))
