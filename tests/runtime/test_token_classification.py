"""token-classification (ner) against transformers' own pipeline on tiny checkpoints, in the same test:
every aggregation strategy, accented / CJK / emoji text, words given pre-split, and text several
windows long run with ``stride``."""

from __future__ import annotations

import numpy as np
import pytest

import onnxpipe
from tiny_models import ARCHS

TEXTS = [
    "We are very happy to show you the Transformers library.",
    "Ce film était très émouvant, à voir absolument 🔥🔥 — Größte Überraschung!",
    "这部电影非常好看。映画はとても面白かった。",
    "the food was good but the service was bad",
]
LONG = " ".join(["A beautiful, moving film with a great cast in Paris and Berlin."] * 12)  # ~5 windows of 64


def assert_same(ours, theirs, tol=1e-5):
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), (ours, theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b, tol)
        return
    assert set(ours) == set(theirs)
    assert abs(ours["score"] - float(theirs["score"])) <= tol
    assert {k: v for k, v in ours.items() if k != "score"} == {k: v for k, v in theirs.items() if k != "score"}


@pytest.fixture(scope="module")
def pipes(parity):
    return lambda arch: parity("ner", arch, "ner")


@pytest.mark.parametrize("arch", ARCHS)
def test_matches_transformers(pipes, arch):
    ours, theirs = pipes(arch)
    for strategy in ("none", "simple", "first", "average", "max"):
        params = {"aggregation_strategy": strategy, "ignore_labels": []}
        assert_same(ours(TEXTS, **params), theirs(TEXTS, **params))
        assert_same(ours(TEXTS[1], **params), theirs(TEXTS[1], **params))
    assert_same(ours(TEXTS), theirs(TEXTS))  # defaults: "none", "O" ignored
    words = TEXTS[0].split()
    for params in ({"is_split_into_words": True}, {"is_split_into_words": True, "aggregation_strategy": "first"}):
        assert_same(ours(words, **params), theirs(words, **params))
        assert_same(ours([words, TEXTS[3].split()], **params), theirs([words, TEXTS[3].split()], **params))


@pytest.mark.parametrize("arch", ["bert", "roberta", "xlm-roberta"])
def test_long_text_runs_in_windows_as_transformers_does(pipes, arch):
    ours, theirs = pipes(arch)
    features = ours.preprocess([LONG], ours.sanitize_parameters(stride=16, aggregation_strategy="simple")[0])
    assert len(features) >= 4  # several windows, not one truncated text
    for strategy in ("simple", "first", "max", "average"):
        params = {"aggregation_strategy": strategy, "stride": 16, "ignore_labels": []}
        result = ours(LONG, **params)
        assert_same(result, theirs(LONG, **params))
        assert max(e["end"] for e in result) > len(LONG) - 10  # the end of the text is labelled too


def test_without_stride_long_text_is_truncated(pipes):
    ours, theirs = pipes("bert")
    result = ours(LONG, ignore_labels=[])
    assert_same(result, theirs(LONG, ignore_labels=[]))
    assert len(result) == ours.artifact.max_length - 2


def test_refusals(pipes):
    ours, _ = pipes("bert")
    with pytest.raises(ValueError, match="aggregation_strategy must be one of"):
        ours("a", aggregation_strategy="longest")
    with pytest.raises(ValueError, match='`aggregation_strategy="none"`'):
        ours("a", stride=4, aggregation_strategy="none")  # named; the default strategy with stride runs, as there
    with pytest.raises(ValueError, match="stride` must be less than the model's limit of 64"):
        ours("a", stride=64, aggregation_strategy="simple")
    with pytest.raises(TypeError, match="inputs\\[1\\] is a int"):
        ours(["a", 1])
    with pytest.raises(ValueError, match="At least one input is required"):
        ours([])


def test_int8_agrees_on_most_tokens(artifact):
    path = artifact("bert", "ner", quantize="int8")
    fp32 = onnxpipe.pipeline("ner", model=path, variant="fp32")
    int8 = onnxpipe.pipeline("ner", model=path, variant="int8")
    a = [e["entity"] for t in fp32(TEXTS, ignore_labels=[]) for e in t]
    b = [e["entity"] for t in int8(TEXTS, ignore_labels=[]) for e in t]
    assert len(a) == len(b) and np.mean(np.array(a) == np.array(b)) >= 0.8
