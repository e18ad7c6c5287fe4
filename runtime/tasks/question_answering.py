"""question-answering (extractive): the answer span in the context, as transformers' pipeline finds it.

``pipe(question="Where do I live?", context="My name is Wolfgang and I live in Berlin")`` →
``{'score', 'start', 'end', 'answer'}``; lists of questions and contexts, ``{"question", "context"}`` dicts
(or objects with ``question_text`` / ``context_text``, as ``SquadExample`` has) → one result each;
``top_k`` answers (a list when more than one); contexts longer than ``max_seq_len`` run as windows
``doc_stride`` tokens apart, and answers found in several windows add up, as there.

The span arithmetic (``select_starts_ends``, ``decode_spans``, word alignment, merging equal answers)
is transformers' own, re-stated over the tokenizers library's encodings because that pipeline needs
torch; its quirks are kept so the answers are the same. Longer than 300 lines for that reason: the argument
handler and the span arithmetic follow transformers' own functions one for one.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, TypedDict
from collections.abc import Iterable

import numpy as np
from tokenizers import Encoding

from ..errors import InputKeyError, InputTypeError, InputValueError
from ..arrays import Array, Outputs
from ..inputs import Post, Pre, Truncation, check_int
from ..artifact import Artifact
from ..pipeline import Feature, Pipeline

NULL_SCORE = 1000000  # transformers' starting "large and positive" no-answer score


def example(item: Any, where: str) -> tuple[str, str]:
    """A (question, context) pair from a dict or a SquadExample-like object, refused with the reason."""
    if isinstance(item, dict):
        for key in ("question", "context"):
            if key not in item:
                raise InputKeyError("You need to provide a dictionary with keys {question:..., context:...}")
            if item[key] is None:
                raise InputValueError(f"`{key}` cannot be None")
            if not isinstance(item[key], str):
                raise InputTypeError(f"{where}[{key!r}] is a {type(item[key]).__name__}, not a str")
            if not item[key]:
                raise InputValueError(f"`{key}` cannot be empty")
        return item["question"], item["context"]
    if isinstance(getattr(item, "question_text", None), str) and isinstance(getattr(item, "context_text", None), str):
        return item.question_text, item.context_text
    raise InputValueError(f"{item!r} argument needs to be of type (SquadExample, dict)")


def parse(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """transformers' QuestionAnsweringArgumentHandler: the call's inputs → examples (a generator is passed on
    as it is, its items read one by one), and the other kwargs."""
    question, context = kwargs.pop("question", None), kwargs.pop("context", None)
    x, data = kwargs.pop("X", None), kwargs.pop("data", None)
    if args:
        if len(args) == 1:
            inputs = args[0]
        elif len(args) == 2 and {type(a) for a in args} == {str}:
            inputs = [{"question": args[0], "context": args[1]}]
        else:
            inputs = list(args)
    elif x is not None or data is not None:  # sklearn / Keras style, deprecated there, still read
        inputs = x if x is not None else data
    elif question is not None and context is not None:
        if isinstance(question, list) and isinstance(context, str):
            inputs = [{"question": q, "context": context} for q in question]
        elif isinstance(question, list) and isinstance(context, list):
            if len(question) != len(context):
                raise InputValueError("Questions and contexts don't have the same lengths")
            inputs = [{"question": q, "context": c} for q, c in zip(question, context)]
        elif isinstance(question, str) and isinstance(context, str):
            inputs = [{"question": question, "context": context}]
        else:
            raise InputValueError("Arguments can't be understood")
    else:
        raise InputValueError("pass question= and context= (or {'question', 'context'} dicts)")
    if isinstance(inputs, types.GeneratorType):
        return inputs, kwargs
    if isinstance(inputs, dict) or hasattr(inputs, "context_text"):
        inputs = [inputs]
    elif isinstance(inputs, Iterable) and not isinstance(inputs, str):
        inputs = list(inputs)
    else:
        raise InputValueError(
            f"Invalid arguments: {type(inputs).__name__} inputs; pass question= and context= "
            "(or {'question', 'context'} dicts)"
        )
    return [example(item, f"inputs[{i}]") for i, item in enumerate(inputs)], kwargs


def select_starts_ends(
    start: Array,
    end: Array,
    p_mask: list[int],
    attention_mask: Array | None,
    min_null_score: float = NULL_SCORE,
    top_k: int = 1,
    handle_impossible_answer: bool = False,
    max_answer_len: int = 15,
) -> tuple[Array, Array, Array, float]:
    """transformers' select_starts_ends: mask, normalise, then decode_spans."""
    undesired_tokens = np.abs(np.array(p_mask) - 1)
    if attention_mask is not None:
        undesired_tokens = undesired_tokens & attention_mask
    undesired_tokens_mask = undesired_tokens == 0.0
    start = np.where(undesired_tokens_mask, -10000.0, start)
    end = np.where(undesired_tokens_mask, -10000.0, end)
    start = np.exp(start - start.max(axis=-1, keepdims=True))
    start = start / start.sum()
    end = np.exp(end - end.max(axis=-1, keepdims=True))
    end = end / end.sum()
    if handle_impossible_answer:
        min_null_score = min(min_null_score, (start[0, 0] * end[0, 0]).item())
    start[0, 0] = end[0, 0] = 0.0
    starts, ends, scores = decode_spans(start, end, top_k, max_answer_len, undesired_tokens)
    return starts, ends, scores, min_null_score


def decode_spans(
    start: Array, end: Array, topk: int, max_answer_len: int, undesired_tokens: Array
) -> tuple[Array, Array, Array]:
    """transformers' decode_spans: the top-k (start, end) pairs by start × end probability, no longer than
    max_answer_len, both ends on allowed tokens."""
    if start.ndim == 1:
        start = start[None]
    if end.ndim == 1:
        end = end[None]
    outer = np.matmul(np.expand_dims(start, -1), np.expand_dims(end, 1))
    candidates = np.tril(np.triu(outer), max_answer_len - 1)
    scores_flat = candidates.flatten()
    idx_sort: Any
    if topk == 1:
        idx_sort = [np.argmax(scores_flat)]
    elif len(scores_flat) < topk:
        idx_sort = np.argsort(-scores_flat)
    else:
        idx = np.argpartition(-scores_flat, topk)[0:topk]
        idx_sort = idx[np.argsort(-scores_flat[idx])]
    starts, ends = np.unravel_index(idx_sort, candidates.shape)[1:]
    # (transformers' own test, kept as it is: nonzero() gives (rows, columns), so token 0 always passes)
    desired_spans = np.isin(starts, undesired_tokens.nonzero()) & np.isin(ends, undesired_tokens.nonzero())
    starts, ends = starts[desired_spans], ends[desired_spans]
    return starts, ends, candidates[0, starts, ends]


class Answer(TypedDict):
    score: float
    start: int
    end: int
    answer: str


Spans = tuple[float, list[tuple[float, int, int]]]  # one window's no-answer score and its (score, start, end) spans


@dataclass(frozen=True, kw_only=True)
class WindowsPre(Pre):
    max_seq_len: int  # tokens per window (question, context part and special tokens)
    doc_stride: int  # tokens of context two windows share


@dataclass(frozen=True, kw_only=True)
class SpansPost(Post):
    top_k: int
    max_answer_len: int  # in tokens
    handle_impossible_answer: bool  # the empty answer competes, with the no-answer score
    align_to_words: bool  # spans widened to whole words


class QuestionAnsweringPipeline(Pipeline[tuple[str, str], Spans, Answer | list[Answer]]):
    task = "question-answering"
    result_key = "answers"  # with top_k > 1; one answer is a dict, merged into the row

    def __init__(self, artifact: Artifact, *args: Any, **kwargs: Any):
        super().__init__(artifact, *args, **kwargs)
        cls = artifact.manifest.tokenizer.cls_token
        self.cls_id = self.encoder.tokenizer.token_to_id(cls) if cls else None
        # transformers puts the question first when the tokenizer pads on the right (nearly every one).
        self.question_first = artifact.manifest.tokenizer.padding_side == "right"

    def parse(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        return parse(args, kwargs)

    def finish(self, results: list[Any], single: str | None, params: dict[str, Any]) -> Any:
        return results[0] if len(results) == 1 else results  # a list of one example answers as one, as there

    @staticmethod
    def check_inputs(inputs: Any) -> tuple[list[tuple[str, str]], str | None]:
        """Examples as :func:`parse` gives them ((question, context) pairs), or what it takes: one
        {"question", "context"} dict, or a list of them."""
        if isinstance(inputs, list) and all(isinstance(x, tuple) for x in inputs):
            return inputs, None
        examples, _ = parse((inputs,), {})
        return examples, "dict" if isinstance(inputs, dict) else None

    def sanitize_parameters(
        self,
        padding: Any = None,
        topk: int | None = None,
        top_k: int | None = None,
        doc_stride: int | None = None,
        max_answer_len: int | None = None,
        max_seq_len: int | None = None,
        max_question_len: int | None = None,
        handle_impossible_answer: bool | None = None,
        align_to_words: bool | None = None,
    ) -> tuple[WindowsPre, SpansPost]:
        # padding and max_question_len are read only by transformers' slow-tokenizer path: accepted, unused.
        top_k = top_k if top_k is not None else topk if topk is not None else 1
        # transformers' own check and words for these two (inputs.check_int's for the counts it does not check)
        for name, value in (("top_k", top_k), ("max_answer_len", max_answer_len)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InputValueError(f"{name} parameter should be >= 1 (got {value!r})")
        limit = self.encoder.max_length
        seq = min(limit, 384) if max_seq_len is None else max_seq_len
        check_int(max_seq_len, "max_seq_len", none=True)
        stride = min(seq // 2, 128) if doc_stride is None else doc_stride
        check_int(doc_stride, "doc_stride", 0, none=True)
        if stride > seq:
            raise InputValueError(f"`doc_stride` ({stride}) is larger than `max_seq_len` ({seq})")
        post = SpansPost(
            top_k=top_k,
            max_answer_len=15 if max_answer_len is None else max_answer_len,
            handle_impossible_answer=bool(handle_impossible_answer),
            align_to_words=True if align_to_words is None else bool(align_to_words),
        )
        return WindowsPre(max_seq_len=min(seq, limit), doc_stride=stride), post

    def preprocess(self, items: list[tuple[str, str]], pre: WindowsPre) -> list[Feature]:
        pairs = items if self.question_first else [(c, q) for q, c in items]
        cut = Truncation(pre.max_seq_len, "only_second" if self.question_first else "only_first")
        try:
            encodings = self.encode(pairs, cut, stride=pre.doc_stride)
        except Exception as e:  # tokenizers: the question alone leaves no room for the context
            if "too short" not in str(e) and "not long enough" not in str(e):
                raise
            raise InputValueError(
                f"a question is too long to leave room for its context in max_seq_len={pre.max_seq_len} "
                "tokens: shorten it or raise max_seq_len"
            ) from None
        return [
            Feature(w, i, len(w), context=items[i][1]) for i, e in enumerate(encodings) for w in (e, *e.overflowing)
        ]

    def postprocess(self, features: list[Feature], outputs: Outputs, post: SpansPost) -> list[Any]:
        top_k, max_answer_len, align_to_words = post.top_k, post.max_answer_len, post.align_to_words
        values = []
        context_index = 1 if self.question_first else 0
        for j, f in enumerate(features):
            e, n = f.encoding, f.length
            p_mask = [sid != context_index for sid in e.sequence_ids[:n]]
            if self.cls_id is not None:
                p_mask = [0 if token == self.cls_id else m for token, m in zip(e.ids[:n], p_mask)]
            start, end = outputs["start_logits"][j : j + 1, :n], outputs["end_logits"][j : j + 1, :n]
            pre_top_k = top_k * 2 + 10 if align_to_words else top_k  # alignment may merge candidates
            starts, ends, scores, null = select_starts_ends(
                start,
                end,
                [int(m) for m in p_mask],
                np.ones((1, n), dtype=np.int64),
                NULL_SCORE,
                pre_top_k,
                post.handle_impossible_answer,
                max_answer_len,
            )
            spans = [
                (score.item(), *self.indices(e, int(s), int(t), context_index, align_to_words))
                for s, t, score in zip(starts, ends, scores)
            ]
            values.append((null, spans))
        return values

    def explain_lines(self, features: list[Feature], outputs: Outputs, post: SpansPost) -> list[str]:
        """Each window's best spans before answers found in several windows are added up."""
        lines = []
        for j, (f, (_, spans)) in enumerate(zip(features, self.postprocess(features, outputs, post))):
            best = ", ".join(f"{f.context[s:e]!r} {score:.4f}" for score, s, e in spans[:3]) or "no span"
            lines.append(f"window {j + 1}/{len(features)} ({f.length} tokens): {best}")
        return lines

    @staticmethod
    def indices(enc: Encoding, s: int, e: int, sequence_index: int, align_to_words: bool) -> tuple[int, int]:
        """Token span → character span in the context: whole words when aligning (transformers' get_indices)."""
        if align_to_words:
            try:
                start_word, end_word = enc.token_to_word(s), enc.token_to_word(e)
                return (
                    enc.word_to_chars(start_word, sequence_index=sequence_index)[0],
                    enc.word_to_chars(end_word, sequence_index=sequence_index)[1],
                )
            except Exception:  # some tokenizers have no words (None): offsets then, as transformers does
                pass
        return enc.offsets[s][0], enc.offsets[e][1]

    def aggregate(self, item: tuple[str, str], values: list[Spans], post: SpansPost) -> Answer | list[Answer]:
        context = item[1]
        answers: list[Answer] = []
        for _, spans in values:  # windows in order; an answer found again adds its score, as there
            for score, start, end in spans:
                text = context[start:end]
                same = next((a for a in answers if a["answer"].lower() == text.lower()), None)
                if same:
                    same["score"] += score
                else:
                    answers.append(Answer(score=score, start=start, end=end, answer=text))
        if post.handle_impossible_answer:
            answers.append(Answer(score=min([NULL_SCORE, *(null for null, _ in values)]), start=0, end=0, answer=""))
        answers = sorted(answers, key=lambda a: a["score"], reverse=True)[: post.top_k]
        return answers[0] if len(answers) == 1 else answers
