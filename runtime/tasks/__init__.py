"""Task name → pipeline class. A new encoder task is one module here and one line in TASKS."""

from __future__ import annotations

from ..pipeline import Pipeline
from .text_classification import TextClassificationPipeline

TASKS: dict[str, type[Pipeline]] = {
    "text-classification": TextClassificationPipeline,
}
ALIASES = {"sentiment-analysis": "text-classification"}


def canonical_task(task: str) -> str:
    if not isinstance(task, str):
        raise TypeError(f"task must be a str, got {type(task).__name__}")
    name = ALIASES.get(task, task)
    if name not in TASKS:
        known = sorted(TASKS) + sorted(ALIASES)
        raise ValueError(f"unsupported task {task!r}: onnxpipe supports {', '.join(known)}")
    return name
