"""Check an exported graph against PyTorch on fixed sample inputs (pairs too, where the head takes them)
before the artifact is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from onnxpipe.batching import RUN_OVERHEAD
from onnxpipe.executor import Feature, Work, execute
from onnxpipe.pipeline import DEFAULT_BATCH_SIZE
from onnxpipe.postprocess import sigmoid, softmax
from onnxpipe.session import Session
from onnxpipe.tokenize import TextEncoder

# Short, long, emoji, accented, CJK, empty, and one far past any position limit (truncated).
SAMPLES = (
    "We are very happy to show you the 🤗 Transformers library.",
    "Terrible.",
    "A gripping, beautifully shot film whose quiet final act lingers long after the credits; the cast is "
    "uniformly strong, though the middle stretch drags and a subplot about the brother goes nowhere. "
    "Still, it is the rare drama that trusts its audience, and I would happily watch it again.",
    "The food was 🔥🔥🔥 but the service 😡😡 ... never again 👎",
    "Ce film était très émouvant, à voir absolument. Größte Überraschung des Jahres — ¡qué maravilla!",
    "这部电影非常好看。映画はとても面白かった。이 영화 정말 좋아요.",
    "",
    "an endless, repetitive story " * 400,
)

# Pairs, for the heads that take them (cross-encoders, NLI models): both sides cut, one of them long.
PAIRS = (
    ("A man is eating food.", "Someone is having a meal."),
    ("How do I reset my password?", "Open settings, choose security, then reset. " * 60),
)

# fp32 graphs: the largest gap to PyTorch, relative to the largest |output| when that is above 1 (float32's
# error grows with the values: a QA head with logits in the thousands is 1e-3 "away" and exactly as right).
FP32_MAX_GAP = 1e-4
BATCH_MAX_GAP = 1e-4  # a variant whose scores move more than this with the batch is never the default


def masked(tokenizer) -> list:
    """The texts, and two with the tokenizer's mask token (one with two masks) where it has one."""
    m = tokenizer.mask_token
    return (
        [*SAMPLES, f"Paris is the {m} of France.", f"The {m} was {m} and the service was bad 😡."] if m else [*SAMPLES]
    )


# HeadSpec.samples → the inputs; one entry per kind of the registry (onnxpipe.tasks.SAMPLE_KINDS, tested).
SAMPLE_SETS: dict[str, Callable[..., list]] = {
    "texts": lambda tokenizer: [*SAMPLES],
    "texts+pairs": lambda tokenizer: [*SAMPLES, *PAIRS],
    # (question, context): contexts of every kind, one past the limit
    "questions": lambda tokenizer: [*PAIRS, *(("What is this about?", text) for text in SAMPLES if text)],
    "texts+masks": masked,
}


def samples(kind: str, tokenizer) -> list:
    """The inputs every variant of a graph is checked on, by its head's kind of samples (``HeadSpec.samples``)."""
    if kind not in SAMPLE_SETS:
        raise ValueError(f"no validation samples of kind {kind!r} (there are {', '.join(SAMPLE_SETS)})")
    return SAMPLE_SETS[kind](tokenizer)


def torch_outputs(
    model, tokenizer, items: list, max_length: int, names: tuple[str, ...]
) -> tuple[dict[str, list[np.ndarray]], list]:
    """PyTorch's outputs ``names``, one input at a time (no padding), plus the transformers tokenizer's ids."""
    import inspect

    accepted = set(inspect.signature(model.forward).parameters)  # DistilBERT takes no token_type_ids
    rows: dict[str, list[np.ndarray]] = {n: [] for n in names}
    ids = []
    with torch.no_grad():
        for item in items:
            text, pair = item if isinstance(item, tuple) else (item, None)
            enc = tokenizer(text, pair or None, truncation=True, max_length=max_length, return_tensors="pt")
            out = model(**{k: v for k, v in enc.items() if k in accepted})
            for n in names:
                rows[n].append(getattr(out, n)[0].float().numpy())
            ids.append(enc["input_ids"][0].tolist())
    return rows, ids


# 2-D outputs with one value per token (not per label): the span heads' start / end logits.
PER_TOKEN = {"start_logits", "end_logits"}


def raw_rows(names: tuple[str, ...]) -> Callable[[list[Feature], dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """The executor's postprocess for validation: each feature's own outputs, token-level ones unpadded."""

    def rows(features: list[Feature], outputs: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        return [
            {n: outputs[n][r, : f.length] if outputs[n].ndim == 3 or n in PER_TOKEN else outputs[n][r] for n in names}
            for r, f in enumerate(features)
        ]

    return rows


def onnx_outputs(
    session: Session, encoder: TextEncoder, items: list, names: tuple[str, ...], padded: bool = False
) -> tuple[dict[str, list[np.ndarray]], list]:
    """The runtime's own path: tokenizer.json encodings run by the runtime's executor, in the graph runs a call
    of the pipeline makes; ``padded``: all in one graph run, short inputs padded to the longest on purpose (the
    batch-invariance check). One run per input without a pad token."""
    encodings = encoder.encode(items)
    ids = [list(e.ids) for e in encodings]  # before the executor pads them in place
    features = [Feature(e, i, len(e)) for i, e in enumerate(encodings)]
    size = (max(1, len(items)) if padded else DEFAULT_BATCH_SIZE) if encoder.pad_id is not None else 1
    work = [Work(features, raw_rows(names))]
    values = execute(session, encoder, work, size, overhead=float("inf") if padded else RUN_OVERHEAD)[0]
    return {n: [v[n] for v in values] for n in names}, ids


def graph_logits(
    onnx_path: Path, encoder: TextEncoder, texts: list[str], batch_size: int = 32, pooling: list[str] | None = None
) -> np.ndarray:
    """Classifier logits for many texts (or, given ``pooling``, their pooled sentence vectors), run by the
    runtime's executor with its batching policy."""
    from onnxpipe.tasks.feature_extraction import pool

    def post(features: list[Feature], outputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        if pooling is None:
            return list(outputs["logits"])
        return [pool(outputs["last_hidden_state"][r, : f.length], pooling) for r, f in enumerate(features)]

    encodings = encoder.encode(texts)
    features = [Feature(e, i, len(e)) for i, e in enumerate(encodings)]
    size = batch_size if encoder.pad_id is not None else 1
    return np.stack(execute(Session(onnx_path), encoder, [Work(features, post)], size)[0])


def batch_invariance(session: Session, encoder: TextEncoder, items: list, names: tuple[str, ...]) -> dict:
    """Each input alone vs all of them in one padded batch: the largest score gap and the flipped predictions
    (hidden states: the gap between unit-length token vectors, nothing to flip). Without a pad token inputs
    always run alone: nothing to compare."""
    if encoder.pad_id is None:
        return {"max_score_gap": 0.0, "label_flips": 0, "note": "no pad token: every input runs alone"}
    alone = [onnx_outputs(session, encoder, [item], names)[0] for item in items]
    together = onnx_outputs(session, encoder, items, names, padded=True)[0]
    gap, flips = 0.0, 0
    for n in names:
        for i, b in enumerate(together[n]):
            a = alone[i][n][0]
            gap = max(gap, float(np.max(np.abs(scores(a, n) - scores(b, n)))))
            if n != "last_hidden_state":
                flips += int(np.sum(predicted(a) != predicted(b)))
    return {"max_score_gap": gap, "label_flips": flips}


def scores(values: np.ndarray, output: str = "logits") -> np.ndarray:
    """What a batch-invariance gap is stated in: probabilities (softmax over labels or, for span heads, over
    tokens; sigmoid for one logit), or unit-length vectors for hidden states."""
    if output == "last_hidden_state":
        return values / np.maximum(np.linalg.norm(values, axis=-1, keepdims=True), 1e-12)
    return sigmoid(values) if values.shape[-1] == 1 else softmax(values)


def predicted(logits: np.ndarray) -> np.ndarray:
    """What each row predicts: the label (or token, for span heads) with the largest logit, or the sign of one."""
    return logits.argmax(-1) if logits.shape[-1] > 1 else logits[..., 0] > 0


def compare(reference: dict[str, list[np.ndarray]], candidate: dict[str, list[np.ndarray]]) -> dict:
    """Largest gap over every output, and agreement on predictions (labels, tokens, span ends) or, for
    hidden states, the lowest token cosine."""
    names = list(reference)
    gap = max(float(np.max(np.abs(r - c))) for n in names for r, c in zip(reference[n], candidate[n]))
    scale = max([1.0] + [float(np.max(np.abs(r))) for n in names for r in reference[n]])
    figures = {
        "outputs": names,
        "max_gap": gap,
        "scale": scale,
        "relative_gap": gap / scale,
        "samples": len(reference[names[0]]),
    }
    if names == ["last_hidden_state"]:
        figures["min_cosine"] = min(
            float(np.min(np.sum(scores(r, n) * scores(c, n), axis=-1)))
            for n in names
            for r, c in zip(reference[n], candidate[n])
        )
    else:
        hits = [np.atleast_1d(predicted(r) == predicted(c)) for n in names for r, c in zip(reference[n], candidate[n])]
        figures["agreement"] = float(np.mean(np.concatenate(hits)))
    if "start_logits" in names:  # QA: the decoded best spans, not only their ends' logits
        spans = [
            best_span(rs, re) == best_span(cs, ce)
            for rs, re, cs, ce in zip(
                reference["start_logits"], reference["end_logits"], candidate["start_logits"], candidate["end_logits"]
            )
        ]
        figures["span_agreement"] = float(np.mean(spans))
    return figures


def best_span(start: np.ndarray, end: np.ndarray, max_answer_len: int = 15) -> tuple[int, int]:
    """The (start, end) token pair the QA pipeline would rank first, every token allowed."""
    from onnxpipe.tasks.question_answering import select_starts_ends

    n = start.shape[-1]
    starts, ends, _, _ = select_starts_ends(
        start[None], end[None], [0] * n, np.ones((1, n), dtype=np.int64), max_answer_len=max_answer_len
    )
    return (int(starts[0]), int(ends[0])) if len(starts) else (-1, -1)
