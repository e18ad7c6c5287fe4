"""Accuracy budget for int8: keep the fastest recipe whose drop against fp32 stays within ``max_drop``.

The drop is measured on the user's labelled data (accuracy points lost against the fp32 graph) or, for
unlabelled text, as the share of inputs whose label differs from the fp32 graph's (points). For sentence
embeddings it is one minus the mean cosine to the fp32 graph's vectors, in points (0.5 = cosine 0.995). When the
full recipe misses the budget, nodes are kept in float, most sensitive first, until it holds; sensitivity
is measured, not guessed: the drop with each node alone quantized (keeping one node in float at a
time says little when the others' errors compound). If even that fails, there is no
int8 variant and the caller falls back to fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import numpy as np


@dataclass(frozen=True)
class Score:
    agreement: float  # % of inputs with the fp32 graph's label
    accuracy: float | None  # % correct, when labels are given
    mean_sq_gap: float  # mean squared score gap to fp32: ranks nodes when the drop ties
    drop: float  # points: accuracy lost (labelled) or disagreement (unlabelled)

    def figures(self) -> dict:
        return {
            "agreement": round(self.agreement, 3),
            "accuracy": None if self.accuracy is None else round(self.accuracy, 3),
            "drop": round(self.drop, 3),
        }


def scorer(reference: np.ndarray, labels: list[int] | None) -> Callable[[np.ndarray], Score]:
    """Compare candidate scores (n, classes) with the fp32 graph's on the same inputs."""
    ref_pred = reference.argmax(-1)
    ref_acc = None if labels is None else float(np.mean(ref_pred == np.asarray(labels))) * 100

    def score(candidate: np.ndarray) -> Score:
        pred = candidate.argmax(-1)
        agreement = float(np.mean(pred == ref_pred)) * 100
        accuracy = None if labels is None else float(np.mean(pred == np.asarray(labels))) * 100
        drop = 100 - agreement if ref_acc is None or accuracy is None else max(ref_acc - accuracy, 0.0)
        return Score(agreement, accuracy, float(np.mean((candidate - reference) ** 2)), drop)

    return score


def cosine_scorer(reference: np.ndarray) -> Callable[[np.ndarray], Score]:
    """Compare candidate sentence vectors (n, dim) with the fp32 graph's: agreement is the mean cosine in %."""

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)

    ref = unit(reference)

    def score(candidate: np.ndarray) -> Score:
        cosine = np.sum(unit(candidate) * ref, axis=1)
        mean = float(cosine.mean())
        return Score(mean * 100, None, float(np.mean((1 - cosine) ** 2)), (1 - mean) * 100)

    return score


def fit(
    build: Callable[[list[str]], Path],
    evaluate: Callable[[Path], Score],
    nodes: list[str],
    max_drop: float,
    log: Callable[[str], None],
) -> tuple[Path, Score, list[str]] | None:
    """Build with no node excluded; while the drop exceeds ``max_drop``, exclude the next most
    sensitive node. Returns (graph, score, excluded) or None when no int8 graph holds the budget."""
    path = build([])  # each build overwrites the last: the graph returned is the one built last
    score = evaluate(path)
    log(f"int8 with every node quantized: drop {score.drop:.2f} points (budget {max_drop:g})")
    if score.drop <= max_drop:
        return path, score, []
    damage = {}
    for node in nodes:  # each node quantized alone: its own damage, not masked by the others'
        s = evaluate(build([n for n in nodes if n != node]))
        damage[node] = (s.drop, s.mean_sq_gap)
    order = sorted(nodes, key=lambda n: damage[n], reverse=True)
    excluded: list[str] = []
    for node in order[:-1]:  # all of them in float is the fp32 graph: no int8 variant then
        excluded.append(node)
        path = build(excluded)
        score = evaluate(path)
        log(f"  {len(excluded)} node(s) kept in float (last: {node}): drop {score.drop:.2f} points")
        if score.drop <= max_drop:
            return path, score, excluded
    return None
