"""What a contender is and what its loader returns, shared by the contenders of every task and by the peers.

A contender is data (name, group, the packages it needs, a loader, a cold-start script), not a class of its own.
Every loader returns a :class:`Runner`: the user-facing single-text call (timed for latency) and a batch
predictor returning probabilities in label-id order (for throughput and accuracy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onnxpipe.artifact import graph_size


@dataclass
class Spec:
    artifact: Path
    checkpoint: Path
    id2label: dict[int, str]
    max_length: int
    threads: int
    best_variant: str
    calibration: list[str] | None  # SST-2 train sentences (NNCF, CTranslate2's thread split); None when no train
    task: str = "text-classification"
    choice: dict[str, Any] | None = None  # onnxpipe.tune's choice of best_variant on this machine, and why


@dataclass
class Runner:
    call_one: Callable[[str], Any]
    predict: Callable[[list[str], int], np.ndarray]
    size_bytes: int | None
    note: str = ""


@dataclass(frozen=True)
class Contender:
    name: str
    group: str
    packages: tuple[str, ...]
    load: Callable[[Spec], Runner]
    cold_start: str | None = None  # a script's body; {artifact}, {checkpoint}, {threads} filled in


def probs(results: list[list[dict]], id2label: dict[int, str]) -> np.ndarray:
    """``pipe(texts, top_k=None)``'s ranked label lists as one row of probabilities per text, in label-id order."""
    label2id = {v: k for k, v in id2label.items()}
    out = np.zeros((len(results), len(id2label)), dtype=np.float64)
    for i, ranked in enumerate(results):
        for d in ranked:
            out[i, label2id[d["label"]]] = d["score"]
    return out


def dir_size(path: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in path.glob(pattern))


def onnxpipe_runner(pipe: Any, spec: Spec, size: int | None = None) -> Runner:
    """``pipe(text)`` timed for latency and ``pipe(texts, batch_size=...)`` for throughput: as users call it."""
    return Runner(
        call_one=lambda t: pipe(t),
        predict=lambda texts, bs: probs(pipe(texts, top_k=None, batch_size=bs), spec.id2label),
        size_bytes=graph_size(pipe.model_path) if size is None else size,
        note=pipe.variant,
    )
