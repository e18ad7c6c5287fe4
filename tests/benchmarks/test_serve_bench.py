"""The serve benchmarks' own parts: the bare-ASGI floor answers what the pipeline answers (a real uvicorn process),
and the in-process batch-size groups hold every sentence once."""

from __future__ import annotations

import httpx

import onnxpipe


def test_the_bare_floor_app_answers_what_the_pipeline_answers(artifact):
    from onnxpipe.bench.serve_load import start

    model = artifact("bert", "single", quantize="int8")
    proc, url = start(model, True, None, bare="text-classification")
    try:
        texts = ["a fine film", "dull, far too long, and the ending is worse"]
        got = [httpx.post(f"{url}/predict", json={"inputs": t}, timeout=30).json() for t in texts]
    finally:
        proc.kill()
        proc.wait()
    pipe = onnxpipe.pipeline(model=model)
    assert got == [pipe(t) for t in texts]


def test_batch_size_groups_hold_every_sentence_once():
    from onnxpipe.bench.serve_batches import groups

    texts = [f"sentence {i}" for i in range(37)]
    got = groups(texts, 8, seed=8)
    assert [len(g) for g in got] == [8, 8, 8, 8, 5]
    assert sorted(t for g in got for t in g) == sorted(texts) and got != groups(texts, 8, seed=9)
