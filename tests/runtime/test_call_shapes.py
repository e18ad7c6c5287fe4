"""Call shapes from transformers' own pipeline tests and sources, each run through transformers and onnxpipe on
the same tiny checkpoint, in the same test: the same answer (labels, tokens, spans, words exactly; scores and
vectors within 1e-5), or both refuse the call. WordPiece (BERT) and byte-level BPE (RoBERTa).

Deliberate differences are not in the table; the README lists them (overlong text is truncated instead of
failing in the model; an unknown keyword is refused where transformers' question answering ignores it).
"""

from __future__ import annotations

import numpy as np
import pytest

ARCHS = ["bert", "roberta"]
Q = "Where do I live?"
CONTEXT = "My name is Wolfgang and I live in Berlin. The food was good but the service was bad."
OTHER = "Ce film était très émouvant, à voir absolument 🔥 — Größte Überraschung des Jahres!"
LONG = " ".join(["A beautiful, moving film with a great cast in Paris and Berlin."] * 12)
WORDS = ["My", "name", "is", "Wolfgang", "and", "I", "live", "in", "Berlin"]


def plain(value):
    """Results as plain values: tensors and arrays as nested lists, generators drained."""
    if hasattr(value, "detach"):
        value = value.detach().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if hasattr(value, "__next__"):
        return [plain(v) for v in value]
    return value


def assert_same(ours, theirs, where: str, tol: float = 1e-5):
    if isinstance(theirs, float) or isinstance(ours, float):
        assert abs(ours - theirs) <= tol * max(1.0, abs(theirs)), f"{where}: {ours} vs {theirs}"
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), f"{where}: {ours!r:.300} vs {theirs!r:.300}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same(a, b, f"{where}[{i}]", tol)
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and set(ours) == set(theirs), f"{where}: {ours!r:.300} vs {theirs!r:.300}"
        for k in theirs:
            assert_same(ours[k], theirs[k], f"{where}.{k}", tol)
    else:
        assert ours == theirs, f"{where}: {ours!r} vs {theirs!r}"


def run(pipe, args, kwargs):
    try:
        return "ok", plain(pipe(*args, **kwargs))
    except Exception as e:
        return "refused", f"{type(e).__name__}: {e}"
    except BaseException as e:  # transformers lets the tokenizers library's Rust panics through
        if type(e).__name__ != "PanicException" or not hasattr(pipe, "model"):
            raise  # onnxpipe refuses with a ValueError, never a panic
        return "refused", f"{type(e).__name__}: {e}"


def check(ours, theirs, calls):
    for args, kwargs in calls:
        where = f"pipe(*{args!r:.80}, **{kwargs!r})"
        (a_kind, a), (b_kind, b) = run(ours, args, kwargs), run(theirs, args, kwargs)
        assert a_kind == b_kind, f"{where}: onnxpipe {a_kind} ({a!r:.200}), transformers {b_kind} ({b!r:.200})"
        if a_kind == "ok":
            assert_same(a, b, where)


def fill_mask_calls(m: str) -> list:
    one, two = f"My name is {m}", f"The largest city in France is {m}"
    return [
        ((one,), {}),
        (([one, two],), {}),
        (([one],), {}),
        ((one,), {"top_k": 2}),
        ((one,), {"top_k": 0}),
        ((f"This is {m} {m}",), {}),
        ((f"This is {m} {m}",), {"top_k": 2}),
        (([f"a {m} b", f"{m} c {m}"],), {}),
        ((one,), {"targets": ["film", "food"]}),
        ((one,), {"targets": "film"}),
        ((one,), {"targets": []}),
        ((one,), {"targets": ["film", "food"], "top_k": 5}),
        ((one,), {"top_k": -1}),
        ((f"{m} " + LONG,), {"tokenizer_kwargs": {"truncation": True}}),
        ((one,), {"tokenizer_kwargs": {"truncation": True, "max_length": 6}}),
        (("no mask here",), {}),
        (([one, "no mask"],), {}),
        ((), {"inputs": one}),
    ]


ZERO_SHOT_CALLS = [
    (("Who are you voting for in 2020?", ["politics"]), {}),
    (("Who are you voting for in 2020?",), {"candidate_labels": ["politics", "public health"]}),
    (("Who are you voting for in 2020?",), {"candidate_labels": "politics, public health"}),
    (("Who are you voting for in 2020?",), {"candidate_labels": ["politics", "public health"], "multi_label": True}),
    (("Who are you voting for in 2020?",), {"candidate_labels": ["politics", "film"], "multi_class": True}),
    (("Who are you voting for in 2020?",), {"candidate_labels": "politics", "hypothesis_template": "About {}"}),
    ((["Who are you voting for in 2020?", OTHER],), {"candidate_labels": ["politics", "film", "food"]}),
    ((), {"sequences": "Who are you voting for in 2020?", "candidate_labels": ["politics", "food"]}),
    ((LONG,), {"candidate_labels": ["film", "city"]}),
    (("",), {"candidate_labels": ["politics"]}),
    ((["a", ""],), {"candidate_labels": ["politics"]}),
    (("Who are you?",), {"candidate_labels": []}),
    (("Who are you?",), {"candidate_labels": ""}),
    (("Who are you?",), {"candidate_labels": ["politics"], "hypothesis_template": "Not formatting template"}),
    (("Who are you?", ["a"], ["b"]), {}),
]

NER_CALLS = [
    ((CONTEXT,), {}),
    (([CONTEXT, OTHER],), {}),
    ((CONTEXT,), {"ignore_labels": []}),
    *(
        ((CONTEXT,), {"aggregation_strategy": s, "ignore_labels": []})
        for s in ("none", "simple", "first", "average", "max")
    ),
    ((CONTEXT,), {"grouped_entities": True, "ignore_labels": []}),
    ((CONTEXT,), {"grouped_entities": True, "ignore_subwords": True, "ignore_labels": []}),
    ((WORDS,), {"is_split_into_words": True, "ignore_labels": []}),
    (([WORDS, WORDS[:4]],), {"is_split_into_words": True, "aggregation_strategy": "simple", "ignore_labels": []}),
    ((LONG,), {"stride": 8, "aggregation_strategy": "simple", "ignore_labels": []}),
    ((LONG,), {"stride": 8, "ignore_labels": []}),  # stride with the default strategy: allowed there
    ((LONG,), {"stride": 8, "aggregation_strategy": "none"}),  # named "none": refused there
    (([],), {}),
    ((CONTEXT,), {"aggregation_strategy": "nosuch"}),
]

QA_CALLS = [
    ((), {"question": Q, "context": CONTEXT}),
    ((Q, CONTEXT), {}),
    (({"question": Q, "context": CONTEXT},), {}),
    (([{"question": Q, "context": CONTEXT}, {"question": "What was bad?", "context": OTHER}],), {}),
    (([{"question": Q, "context": CONTEXT}],), {}),
    ((), {"question": [Q, "What was bad?"], "context": CONTEXT}),
    ((), {"question": [Q, "What was bad?"], "context": [CONTEXT, OTHER]}),
    ((), {"X": {"question": Q, "context": CONTEXT}}),
    ((), {"X": [{"question": Q, "context": CONTEXT}] * 2}),
    ((), {"data": {"question": Q, "context": CONTEXT}}),
    ((), {"question": Q, "context": CONTEXT, "top_k": 3}),
    ((), {"question": Q, "context": CONTEXT, "topk": 2}),
    ((), {"question": Q, "context": CONTEXT, "handle_impossible_answer": True}),
    ((), {"question": Q, "context": CONTEXT, "max_answer_len": 2}),
    ((), {"question": Q, "context": CONTEXT, "align_to_words": False}),
    ((), {"question": Q, "context": LONG, "max_seq_len": 24, "doc_stride": 8}),
    ((), {"question": Q, "context": LONG, "top_k": 2}),
    ((), {"question": [Q, Q], "context": [CONTEXT]}),
    ((), {"question": None, "context": CONTEXT}),
    (({"question": "", "context": CONTEXT},), {}),
    (({"question": Q},), {}),
    (({"question": Q, "context": None},), {}),
    ((), {"question": Q, "context": CONTEXT, "top_k": 0}),
    ((), {"question": Q, "context": CONTEXT, "max_seq_len": 24, "doc_stride": 30}),
]

FEATURE_CALLS = [
    ((CONTEXT,), {}),
    (([CONTEXT, OTHER],), {}),
    ((CONTEXT,), {"return_tensors": True}),
    ((LONG * 3,), {"truncation": True}),
    ((CONTEXT,), {"tokenize_kwargs": {"add_special_tokens": False}}),
    ((CONTEXT,), {"tokenize_kwargs": {"truncation": True, "max_length": 6}}),
    ((CONTEXT,), {"truncation": True, "tokenize_kwargs": {"truncation": True}}),
    (([CONTEXT],), {"return_tensors": True}),
]


@pytest.mark.parametrize("arch", ARCHS)
def test_fill_mask(parity, arch):
    ours, theirs = parity("fill-mask", arch, "mlm")
    check(ours, theirs, fill_mask_calls(theirs.tokenizer.mask_token))


@pytest.mark.parametrize("arch", ARCHS)
def test_zero_shot(parity, arch):
    check(*parity("zero-shot-classification", arch, "nli"), ZERO_SHOT_CALLS)


@pytest.mark.parametrize("arch", ARCHS)
def test_token_classification(parity, arch):
    check(*parity("token-classification", arch, "ner"), NER_CALLS)


@pytest.mark.parametrize("arch", ARCHS)
def test_question_answering(parity, arch):
    ours, theirs = parity("question-answering", arch, "qa")
    check(ours, theirs, QA_CALLS)
    examples = [{"question": Q, "context": CONTEXT}, {"question": "What was bad?", "context": OTHER}]
    ours_out, theirs_out = ours(x for x in examples), theirs(x for x in examples)  # generators: iterators back
    assert hasattr(ours_out, "__next__") and hasattr(theirs_out, "__next__")
    assert_same(plain(ours_out), plain(theirs_out), "generator")


@pytest.mark.parametrize("arch", ARCHS)
def test_feature_extraction(parity, arch):
    check(*parity("feature-extraction", arch, "base"), FEATURE_CALLS)


def test_the_four_documented_differences(parity, checkpoint):
    """The README's last call-shape differences, each shown against transformers in the same test: what
    transformers does, and what onnxpipe does instead (byte-level BPE, where all four apply)."""
    from transformers import RobertaTokenizerFast, SquadExample, TokenClassificationPipeline

    # feature-extraction, batch_size > 1: transformers pads each item to its batch's longest (its answer depends
    # on its neighbours); onnxpipe gives each text its own tokens, transformers' answer at batch_size=1.
    ours, theirs = parity("feature-extraction", "roberta", "base")
    texts = ["good film", CONTEXT]
    padded = plain(theirs(texts, batch_size=2))
    alone = [plain(theirs(t)) for t in texts]
    assert len(padded[0][0]) == len(alone[1][0]) > len(alone[0][0])  # the short text's rows at the long one's length
    assert_same(plain(ours(texts, batch_size=2)), alone, "feature-extraction batch_size=2")

    # token classification's offset_mapping: transformers reads it (meant for slow tokenizers); onnxpipe refuses it
    # by name, since tokenizer.json gives offsets and the fast path computes the same ones.
    ours, theirs = parity("token-classification", "roberta", "ner")
    offsets = theirs.tokenizer(CONTEXT, return_offsets_mapping=True)["offset_mapping"]
    assert_same(plain(theirs(CONTEXT, offset_mapping=offsets)), plain(theirs(CONTEXT)), "offset_mapping")
    with pytest.raises(ValueError, match="offset_mapping is for slow tokenizers"):
        ours(CONTEXT, offset_mapping=offsets)

    # Pre-split words on a byte-level BPE tokenizer without add_prefix_space: transformers' RobertaTokenizerFast
    # refuses them; onnxpipe encodes each word as tokenizer.json says (no leading space).
    folder = str(checkpoint("roberta", "ner"))
    roberta = TokenClassificationPipeline(model=theirs.model, tokenizer=RobertaTokenizerFast.from_pretrained(folder))
    with pytest.raises(AssertionError, match="add_prefix_space=True"):  # (an assert in transformers' tokenizer)
        roberta(WORDS, is_split_into_words=True)
    words = ours.encoder.tokenizer.encode(WORDS, is_pretokenized=True)
    expected = [t for t, special in zip(words.tokens, words.special_tokens_mask) if not special]
    (got,) = ours(WORDS, is_split_into_words=True, ignore_labels=[])  # one input of words: a list of one, as there
    assert [e["word"] for e in got] == expected and not any(t.startswith("Ġ") for t in expected)

    # A bare SquadExample: transformers' argument handler takes it only inside a list; onnxpipe takes it as one
    # example, as it takes a dict, and answers as transformers does for that list.
    ours, theirs = parity("question-answering", "roberta", "qa")
    example = SquadExample(None, Q, CONTEXT, None, None, None)
    with pytest.raises(ValueError, match="Invalid arguments"):
        theirs(example)
    assert_same(plain(ours(example)), plain(theirs([example])), "SquadExample")
