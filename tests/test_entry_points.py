"""Every door gives the same answer: the Python call, POST /v1/pipeline, `onnxpipe run --jsonl` and `score`,
each task's calls from one table. A call's answer over HTTP is the Python call's JSON; a line of `run --jsonl`
and a row of `score` are the per-input result (``results()``), which is what they print."""

from __future__ import annotations

import io
import json

import pytest
from fastapi.testclient import TestClient

import onnxpipe
from onnxpipe.cli import main
from onnxpipe.explain import jsonable
from onnxpipe.serve.app import Settings, create_app

CONTEXT = "My name is Wolfgang and I live in Berlin. The food was good but the service was bad."
WORDS = ["My", "name", "is", "Wolfgang", "and", "I", "live", "in", "Berlin"]
QA = {"question": "Where do I live?", "context": CONTEXT}

# task → (arch head, [(one input, parameters)])
TABLE = {
    "text-classification": (
        "single",
        [
            ("good film", {}),
            ("bad food", {"top_k": None}),
            ({"text": "good film", "text_pair": "bad food"}, {"top_k": 2}),
            (CONTEXT, {"function_to_apply": "none", "top_k": 1}),
        ],
    ),
    "token-classification": (
        "ner",
        [
            (CONTEXT, {}),
            (CONTEXT, {"aggregation_strategy": "simple", "ignore_labels": []}),
            (WORDS, {"is_split_into_words": True, "ignore_labels": []}),
            (CONTEXT * 4, {"stride": 8, "aggregation_strategy": "first"}),
        ],
    ),
    "question-answering": ("qa", [(QA, {}), (QA, {"top_k": 2}), (QA, {"handle_impossible_answer": True})]),
    "fill-mask": (
        "mlm",
        [
            ("The [MASK] was good.", {}),
            ("The [MASK] was [MASK].", {"top_k": 2}),
            ("The [MASK] was good.", {"targets": ["film", "food"]}),
        ],
    ),
    "zero-shot-classification": (
        "nli",
        [
            (CONTEXT, {"candidate_labels": ["film", "food"]}),
            (CONTEXT, {"candidate_labels": "film, city", "multi_label": True}),
        ],
    ),
    "feature-extraction": (
        "base",
        [("good film", {}), ("good film", {"tokenize_kwargs": {"max_length": 3, "truncation": True}})],
    ),
}


@pytest.fixture(scope="module")
def client(artifact):
    models = {task: artifact("bert", head) for task, (head, _) in TABLE.items()}
    with TestClient(create_app(models, Settings())) as c:
        while c.get("/health").status_code != 200:
            pass
        yield c


@pytest.mark.parametrize("task", list(TABLE))
def test_python_http_and_run_give_the_same_json(task, artifact, client, monkeypatch, capsys):
    head, calls = TABLE[task]
    pipe = onnxpipe.pipeline(task, model=artifact("bert", head))
    for inputs, params in calls:
        r = client.post("/v1/pipeline", json={"inputs": inputs, "parameters": params, "model": task, "task": task})
        assert r.status_code == 200 and r.json() == jsonable(pipe(inputs, **params)), (inputs, params)
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(json.dumps(inputs).encode() + b"\n")))
        argv = ["run", "-m", str(artifact("bert", head)), "--task", task, "--jsonl", "--params", json.dumps(params)]
        assert main(argv) == 0, capsys.readouterr().err
        row = json.loads(capsys.readouterr().out)
        expected = jsonable(pipe.results([inputs], **params)[0])
        given = (
            inputs if isinstance(inputs, dict) else {"inputs": inputs} if isinstance(inputs, list) else {"text": inputs}
        )
        assert row == ({**given, **expected} if isinstance(expected, dict) else {**given, pipe.result_key: expected})


def test_score_rows_are_the_pipeline_results(artifact, tmp_path):
    from onnxpipe.scale.score import score_local

    pipe = onnxpipe.pipeline(model=artifact("bert", "single"))
    texts = ["good film", CONTEXT, "bad food " * 50]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    score_local(tmp_path / "in.jsonl", tmp_path / "out.jsonl", pipe, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [{"label": r["label"], "score": r["score"]} for r in rows] == pipe.results(texts)
