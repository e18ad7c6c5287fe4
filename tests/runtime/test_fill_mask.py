"""fill-mask against transformers' own pipeline on the same tiny checkpoints, in the same test."""

from __future__ import annotations

import pytest

import onnxpipe
from tiny_models import ARCHS


def assert_same(ours, theirs, tol=1e-5):
    """Identical structure, tokens and sequences; scores within ``tol``."""
    if isinstance(theirs, dict):
        assert set(ours) == set(theirs)
        assert abs(ours["score"] - theirs["score"]) <= tol
        assert {k: v for k, v in ours.items() if k != "score"} == {k: v for k, v in theirs.items() if k != "score"}
        return
    assert isinstance(ours, list) and len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert_same(a, b, tol)


@pytest.fixture(scope="module")
def pipes(parity):
    return lambda arch: parity("fill-mask", arch, "mlm")


@pytest.mark.parametrize("arch", ARCHS)
def test_matches_transformers(pipes, arch):
    ours, theirs = pipes(arch)
    m = theirs.tokenizer.mask_token
    one = f"This movie was {m}, boring and far too long."
    two = f"The {m} was good but the {m} was bad."
    cases = [
        (one, {}),
        (one, {"top_k": 2}),
        (two, {}),  # several masks: one list per mask, the other mask kept in the sequence
        ([one, f"très {m}, à voir absolument", f"这部电影非常{m}"], {"top_k": 3}),
        ([one], {}),  # transformers unwraps a list of one
        (one, {"targets": ["good", "bad", "film"]}),
        (one, {"targets": "boring", "top_k": 10}),  # top_k capped by the targets
    ]
    for inputs, params in cases:
        assert_same(ours(inputs, **params), theirs(inputs, **params))


def test_refusals(pipes):
    ours, _ = pipes("bert")
    with pytest.raises(ValueError, match=r"no mask token \(\[MASK\]\)"):
        ours("nothing to fill here")
    with pytest.raises(ValueError, match="top_k must be a non-negative int"):
        ours("a [MASK]", top_k=-1)
    with pytest.raises(TypeError, match="inputs\\[1\\] is a int"):
        ours(["a [MASK]", 3])
    with pytest.raises(TypeError, match="targets must be a str or a list of str"):
        ours("a [MASK]", targets=[1])
    assert ours([]) == []


def test_text_classification_artifact_is_refused_for_fill_mask(artifact):
    with pytest.raises(ValueError, match="sequence-classification graph cannot run fill-mask"):
        onnxpipe.pipeline("fill-mask", model=artifact())
