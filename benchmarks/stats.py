"""The figures the benchmark reports, as pure functions of measured arrays (tested without timing)."""

from __future__ import annotations

import numpy as np


def latency_summary(seconds: list[float] | np.ndarray) -> dict[str, float]:
    """p50 / p90 / p99 / mean in milliseconds (numpy's linear-interpolation percentiles)."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise ValueError("no latency samples")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(ms.mean()),
        "n": int(ms.size),
    }


def throughput(n_items: int, seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("elapsed time must be positive")
    return n_items / seconds


def quoted(passes: list[float]) -> float:
    """The figure quoted for timed passes taken in turns with other contenders: their median."""
    if not passes:
        raise ValueError("no passes")
    return float(np.median(passes))


def accuracy(probs: np.ndarray, labels: list[int] | np.ndarray) -> float:
    return float(np.mean(np.asarray(probs).argmax(-1) == np.asarray(labels)))


def agreement(probs: np.ndarray, reference: np.ndarray) -> float:
    """Share of inputs whose predicted label equals the reference's."""
    return float(np.mean(np.asarray(probs).argmax(-1) == np.asarray(reference).argmax(-1)))


def max_gap(values: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(values, dtype=np.float64) - np.asarray(reference, dtype=np.float64))))


def ratio(ours: float | None, base: float | None) -> float | None:
    """ours / base, or None when either is missing or base is zero."""
    if ours is None or base is None or base == 0:
        return None
    return ours / base


def paired_ratios(base: list[float], ours: list[float], higher_is_better: bool = False) -> dict[str, float] | None:
    """Speed ratios of measurements taken in turns (block i of one contender right after block i of the
    other): their median and range. The range is the run's noise: a difference inside it is not one."""
    if not base or not ours:
        return None
    pairs = [(o / b if higher_is_better else b / o) for b, o in zip(base, ours) if b > 0 and o > 0]
    if not pairs:
        return None
    return {"median": float(np.median(pairs)), "min": float(min(pairs)), "max": float(max(pairs)), "n": len(pairs)}
