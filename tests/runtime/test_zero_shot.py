"""zero-shot-classification against transformers' own pipeline on tiny NLI checkpoints, in the same test."""

from __future__ import annotations

import pytest
from tiny_models import ARCHS


def assert_same(ours, theirs, tol=1e-5):
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b, tol)
        return
    assert ours["sequence"] == theirs["sequence"] and ours["labels"] == theirs["labels"]
    assert ours["scores"] == pytest.approx(theirs["scores"], abs=tol)


@pytest.fixture(scope="module")
def pipes(parity):
    return lambda arch: parity("zero-shot-classification", arch, "nli")


@pytest.mark.parametrize("arch", ARCHS)
def test_matches_transformers(pipes, arch):
    ours, theirs = pipes(arch)
    text = "This movie was terrible, boring and far too long."
    labels = ["film", "food", "politics", "joy"]
    cases = [
        ((text, labels), {}),
        ((text,), {"candidate_labels": "film, food ,politics"}),  # a comma-separated string
        ((text, labels), {"multi_label": True}),
        ((text, ["film"]), {}),  # one label: entailment vs contradiction, as multi_label
        (([text, "très émouvant, à voir absolument", "这部电影非常好看"], labels), {}),
        ((text, labels), {"hypothesis_template": "The topic is {}"}),
        (("the food was good but the service was bad " * 20, labels), {}),  # only the text is truncated
    ]
    for args, params in cases:
        assert_same(ours(*args, **params), theirs(*args, **params))


def test_entailment_index_comes_from_the_label_names(pipes):
    ours, _ = pipes("bert")
    assert ours.entailment_id == 2


def test_refusals(pipes):
    ours, _ = pipes("bert")
    with pytest.raises(ValueError, match="at least one label"):
        ours("a text")
    with pytest.raises(ValueError, match="at least one label"):
        ours("a text", candidate_labels=" , ")
    with pytest.raises(ValueError, match="was not able to be formatted"):
        ours("a text", ["a"], hypothesis_template="no slot")
    with pytest.raises(TypeError, match="candidate_labels must be"):
        ours("a text", candidate_labels=[1, 2])
    with pytest.raises(ValueError, match="Unable to understand extra arguments"):
        ours("a text", ["a"], ["b"])
    assert ours([], ["a"]) == []
