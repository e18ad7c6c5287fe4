"""Requests of one (task, parameters) group tokenized as one call: the batcher's way to give ``encode_batch`` (which
runs in parallel, without the GIL) a whole batch instead of one hop per request."""

from __future__ import annotations

import copy
from bisect import bisect_right
from typing import Any

from ..pipeline import Pipeline, Plan


def featurize_together(pipe: Pipeline[Any, Any, Any], plans: list[Plan[Any]]) -> None:
    """Tokenize plans that share a task and parameters as one call (one ``encode_batch``), then give each plan
    its own features, owners counted from its own first input."""
    if len(plans) == 1:
        pipe.featurize(plans[0])
        return
    merged = copy.copy(plans[0])
    merged.items = [item for plan in plans for item in plan.items]
    merged.features = []
    pipe.featurize(merged)
    starts = [0]
    for plan in plans:
        plan.features = []
        starts.append(starts[-1] + len(plan.items))
    for f in merged.features:
        k = bisect_right(starts, f.owner) - 1
        f.owner -= starts[k]
        plans[k].features.append(f)


def same(a: Any, b: Any) -> bool:
    """Parameters equal (typed, frozen dataclasses: fields compared; an array among them makes == ambiguous,
    and such plans are simply not merged)."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False
