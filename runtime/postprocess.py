"""Logits → scores → ``{'label', 'score'}`` dicts, as transformers' text-classification pipeline does."""

from __future__ import annotations

from typing import TypedDict

import numpy as np

from .arrays import Array

FUNCTIONS = ("softmax", "sigmoid", "none")


def softmax(x: Array) -> Array:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    out: Array = e / e.sum(axis=-1, keepdims=True)
    return out


def sigmoid(x: Array) -> Array:
    out: Array = 1.0 / (1.0 + np.exp(-x))
    return out


def default_function(problem_type: str | None, num_labels: int) -> str:
    """The score function transformers picks from the config (regression, multi-label, single-label)."""
    if problem_type == "regression":
        return "none"
    if problem_type == "multi_label_classification" or num_labels == 1:
        return "sigmoid"
    return "softmax"


def apply(function: str, logits: Array) -> Array:
    logits = logits.astype(np.float32, copy=False)
    if function == "softmax":
        return softmax(logits)
    if function == "sigmoid":
        return sigmoid(logits)
    return logits


class LabelScore(TypedDict):
    """One label's score: text-classification's result (or each entry of it, for several labels)."""

    label: str
    score: float


def label_scores(
    scores: Array, id2label: dict[int, str], top_k: int | None, legacy: bool
) -> LabelScore | list[LabelScore]:
    """One input's result, as transformers shapes it: legacy with top_k 1, the best label as a dict;
    legacy with every label (return_all_scores), all of them in label order; else ranked, cut to top_k."""
    if legacy and top_k == 1:
        best = int(scores.argmax())
        return LabelScore(label=id2label[best], score=float(scores[best]))
    labelled = [LabelScore(label=id2label[i], score=float(s)) for i, s in enumerate(scores)]
    if legacy:
        return labelled
    ranked = sorted(labelled, key=lambda d: d["score"], reverse=True)
    return ranked if top_k is None else ranked[:top_k]
