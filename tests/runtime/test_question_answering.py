"""question-answering against transformers' own pipeline on tiny checkpoints, in the same test: every input
shape, top_k, impossible answers, word alignment, and contexts several windows long."""

from __future__ import annotations

import pytest
from tiny_models import ARCHS as ALL_ARCHS


# ModernBERT has no question-answering export in optimum-onnx 0.1.0 (test_exporter checks the refusal)
ARCHS = [a for a in ALL_ARCHS if a != "modernbert"]
CONTEXT = "My name is Wolfgang and I live in Berlin. The food was good but the service was bad."
ACCENTED = "Ce film était très émouvant, à voir absolument 🔥🔥 — Größte Überraschung des Jahres!"
CJK = "这部电影非常好看。映画はとても面白かった。"
LONG = " ".join(["A beautiful, moving film with a great cast in Paris and Berlin."] * 12)  # several windows


def assert_same(ours, theirs, tol=1e-5):
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), (ours, theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b, tol)
        return
    assert (ours["start"], ours["end"], ours["answer"]) == (theirs["start"], theirs["end"], theirs["answer"])
    assert abs(ours["score"] - theirs["score"]) <= tol * max(1.0, abs(theirs["score"]))


@pytest.fixture(scope="module")
def pipes(parity):
    return lambda arch: parity("question-answering", arch, "qa")


@pytest.mark.parametrize("arch", ARCHS)
def test_matches_transformers(pipes, arch):
    ours, theirs = pipes(arch)
    q = "Where do I live?"
    calls = [
        ((), {"question": q, "context": CONTEXT}),
        ((q, CONTEXT), {}),
        (({"question": q, "context": CONTEXT},), {}),
        (([{"question": q, "context": CONTEXT}, {"question": "What was bad?", "context": ACCENTED}],), {}),
        ((), {"question": [q, "What?"], "context": CJK}),
        ((), {"question": [q, "Who?"], "context": [CONTEXT, ACCENTED]}),
        ((), {"question": q, "context": CONTEXT, "top_k": 3}),
        ((), {"question": q, "context": CONTEXT, "handle_impossible_answer": True, "top_k": 2}),
        ((), {"question": q, "context": CONTEXT, "align_to_words": False, "max_answer_len": 3}),
        ((), {"question": q, "context": CJK, "top_k": 2}),
        ((), {"question": q, "context": LONG, "top_k": 3}),  # windows at the default doc_stride
        ((), {"question": q, "context": LONG, "doc_stride": 8, "max_seq_len": 40, "top_k": 2}),
    ]
    for args, kwargs in calls:
        assert_same(ours(*args, **kwargs), theirs(*args, **kwargs))


def test_long_context_is_read_in_windows(pipes):
    ours, _ = pipes("bert")
    pre, _ = ours.sanitize_parameters()
    features = ours.preprocess([("Where?", LONG)], pre)
    assert len(features) >= 4
    assert all(f.length <= 64 for f in features)


def test_squad_example_like_objects_and_refusals(pipes):
    ours, theirs = pipes("bert")

    class Example:  # what transformers' SquadExample carries
        question_text, context_text = "Where do I live?", CONTEXT

    assert_same(ours(Example()), theirs(question="Where do I live?", context=CONTEXT))
    with pytest.raises(ValueError, match="`context` cannot be empty"):
        ours(question="Where?", context="")
    with pytest.raises(KeyError, match="question:..., context:..."):
        ours({"question": "Where?"})
    with pytest.raises(ValueError, match="don't have the same lengths"):
        ours(question=["a", "b"], context=["c"])
    with pytest.raises(ValueError, match="top_k parameter should be >= 1"):
        ours(question="a", context="b", top_k=0)
    with pytest.raises(ValueError, match=r"`doc_stride` \(50\) is larger than `max_seq_len` \(40\)"):
        ours(question="a", context="b", doc_stride=50, max_seq_len=40)
