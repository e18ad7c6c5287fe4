"""The task registry: what each task runs and how it is exported, read by the runtime and the exporter alike.

A new encoder task is one module here and one :class:`TaskSpec` in ``SPECS``. Tasks that run the same
graph share a *head*: an artifact exported for one of them loads for the others (a text-classification
NLI model runs zero-shot-classification; a feature-extraction export runs sentence-embeddings), as the
transformers pipelines accept any checkpoint with the right head.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..pipeline import Pipeline
from .feature_extraction import FeatureExtractionPipeline, SentenceEmbeddingsPipeline
from .fill_mask import FillMaskPipeline
from .question_answering import QuestionAnsweringPipeline
from .text_classification import TextClassificationPipeline
from .token_classification import TokenClassificationPipeline
from .zero_shot import ZeroShotClassificationPipeline


@dataclass(frozen=True)
class TaskSpec:
    name: str
    pipeline: type[Pipeline]
    head: str  # the graph the task runs; tasks with the same head share artifacts
    auto_model: str  # the transformers class the exporter loads the checkpoint with
    optimum_task: str  # optimum's ONNX export task
    outputs: tuple[str, ...]  # the graph outputs postprocess reads and export validation compares with PyTorch


SPECS = (
    TaskSpec("text-classification", TextClassificationPipeline, "sequence-classification",
             "AutoModelForSequenceClassification", "text-classification", ("logits",)),
    TaskSpec("zero-shot-classification", ZeroShotClassificationPipeline, "sequence-classification",
             "AutoModelForSequenceClassification", "text-classification", ("logits",)),
    TaskSpec("feature-extraction", FeatureExtractionPipeline, "base", "AutoModel", "feature-extraction",
             ("last_hidden_state",)),
    TaskSpec("sentence-embeddings", SentenceEmbeddingsPipeline, "base", "AutoModel", "feature-extraction",
             ("last_hidden_state",)),
    TaskSpec("fill-mask", FillMaskPipeline, "masked-lm", "AutoModelForMaskedLM", "fill-mask", ("logits",)),
    TaskSpec("token-classification", TokenClassificationPipeline, "token-classification",
             "AutoModelForTokenClassification", "token-classification", ("logits",)),
    TaskSpec("question-answering", QuestionAnsweringPipeline, "question-answering", "AutoModelForQuestionAnswering",
             "question-answering", ("start_logits", "end_logits")),
)
TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in SPECS}
ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}


def canonical_task(task: str) -> str:
    if not isinstance(task, str):
        raise TypeError(f"task must be a str, got {type(task).__name__}")
    name = ALIASES.get(task, task)
    if name not in TASKS:
        known = sorted(TASKS) + sorted(ALIASES)
        raise ValueError(f"unsupported task {task!r}: onnxpipe supports {', '.join(known)}")
    return name


def runs_on(task: str, artifact_task: str) -> bool:
    """Whether ``task`` can run an artifact exported for ``artifact_task`` (the same head)."""
    return TASKS[task].head == TASKS[artifact_task].head
