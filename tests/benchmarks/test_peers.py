"""The peers as their users run them: OpenVINO's throughput through an AsyncInferQueue under the THROUGHPUT hint,
CTranslate2 with its inter/intra thread split chosen on train sentences; both give the answers of their own
engine run one graph run at a time, in input order (no timing asserted)."""

from __future__ import annotations

import numpy as np
import pytest

from onnxpipe.bench import harness, peers
from onnxpipe.bench.runner import probs

TEXTS = ["good film", "bad film", "a beautiful, moving film that i would see again", "far too long", "great"] * 3
TRAIN = ["the film is a long and moving look at one family and its quiet grief"] * 20


@pytest.fixture(scope="module")
def spec(artifact, tmp_path_factory):
    path = artifact("bert", "single", optimize=True, quantize="int8")
    return harness.resolve_spec(path, tmp_path_factory.mktemp("peers"), threads=2, calibration=TRAIN)


def test_thread_splits_multiply_to_the_budget():
    assert peers.thread_splits(2) == [(1, 2), (2, 1)]
    assert peers.thread_splits(4) == [(1, 4), (2, 2), (4, 1)]
    assert peers.split_texts(["too short", *TRAIN]) == TRAIN


def test_openvino_throughput_queue_gives_the_latency_engines_answers(spec):
    pytest.importorskip("openvino")
    runner = peers.load_openvino(spec, quantize=False)
    assert "THROUGHPUT hint" in runner.note and "AsyncInferQueue" in runner.note and "LATENCY hint" in runner.note
    one_by_one = np.array([probs([runner.call_one(t)], spec.id2label)[0] for t in TEXTS])  # top-1 score only
    for batch_size in (1, 4):
        got = runner.predict(TEXTS, batch_size)
        assert got.shape == (len(TEXTS), len(spec.id2label))
        np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-6)
        top = got.argmax(1)
        assert list(top) == list(one_by_one.argmax(1))
        np.testing.assert_allclose(got[np.arange(len(TEXTS)), top], one_by_one.max(1), atol=1e-5)


def test_ctranslate2_split_is_chosen_on_train_and_keeps_input_order(spec):
    pytest.importorskip("ctranslate2")
    runner = peers.load_ctranslate2(spec)
    assert f"chosen on {len(TRAIN)} SST-2 train sentences" in runner.note
    assert "inter 1 x intra 2" in runner.note and "inter 2 x intra 1" in runner.note  # both splits measured
    one_by_one = np.array([probs([runner.call_one(t)], spec.id2label)[0] for t in TEXTS])
    got = runner.predict(TEXTS, 4)
    top = got.argmax(1)
    assert list(top) == list(one_by_one.argmax(1))
    np.testing.assert_allclose(got[np.arange(len(TEXTS)), top], one_by_one.max(1), atol=1e-4)
