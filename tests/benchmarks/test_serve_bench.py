"""The serve benchmarks' own parts: the bare-ASGI floor answers what the pipeline answers and the http floor one fixed answer (real uvicorn processes),
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


def test_the_http_floor_app_answers_one_fixed_answer_whatever_is_sent(artifact):
    """serve_speed's `http` contender: HTTP's round trip with an answer of the real size, never a graph run."""
    from onnxpipe.bench.serve_load import start

    model = artifact("bert", "single", quantize="int8")
    proc, url = start(model, True, None, bare="text-classification", constant=True)
    try:
        got = [httpx.post(f"{url}/predict", json={"inputs": t}, timeout=30).json() for t in ("a fine film", "dull")]
    finally:
        proc.kill()
        proc.wait()
    fixed = onnxpipe.pipeline(model=model)("A gripping, beautifully shot film.")
    assert got == [fixed, fixed] and fixed != onnxpipe.pipeline(model=model)("dull")


def test_batch_size_groups_hold_every_sentence_once():
    from onnxpipe.bench.serve_batches import groups

    texts = [f"sentence {i}" for i in range(37)]
    got = groups(texts, 8, seed=8)
    assert [len(g) for g in got] == [8, 8, 8, 8, 5]
    assert sorted(t for g in got for t in g) == sorted(texts) and got != groups(texts, 8, seed=9)


def test_packed_rows_fit_every_sentence_within_the_longest():
    """First-fit decreasing into rows no longer than the group's longest sentence: the row count worked out by
    hand for small groups, and a larger one holds every token in fewer rows than sentences."""
    from onnxpipe.bench.serve_batches import packed_rows

    assert packed_rows([50, 10, 20, 30, 40, 25, 25]) == (4, 50)  # 50 | 40+10 | 30+20 | 25+25
    assert packed_rows([7]) == (1, 7)
    assert packed_rows([9, 9, 9]) == (3, 9)
    lengths = [12, 33, 5, 48, 17, 22, 9, 30, 41, 6, 14, 27]
    rows, width = packed_rows(lengths)
    assert width <= max(lengths) and rows * width >= sum(lengths) and rows < len(lengths)
