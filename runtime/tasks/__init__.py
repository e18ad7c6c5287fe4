"""The task registry: what each task runs and how it is exported, read by the runtime and the exporter alike.

A new encoder task is one module here and one :class:`TaskSpec` in ``SPECS`` (and, for a new graph kind, one
:class:`HeadSpec`): the runtime, the exporter, ``score``, the default models and the benchmark read it. Tasks that run the same
graph share a *head*: an artifact exported for one of them loads for the others (a text-classification
NLI model runs zero-shot-classification; a feature-extraction export runs sentence-embeddings), as the
transformers pipelines accept any checkpoint with the right head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from ..errors import InputTypeError, InputValueError
from ..pipeline import Pipeline
from .feature_extraction import FeatureExtractionPipeline, SentenceEmbeddingsPipeline
from .fill_mask import FillMaskPipeline
from .question_answering import QuestionAnsweringPipeline
from .sentence_similarity import SentenceSimilarityPipeline
from . import sentence_similarity
from .sparse_embeddings import SparseEmbeddingsPipeline
from . import score_columns as columns
from .text_classification import TextClassificationPipeline
from .token_classification import TokenClassificationPipeline
from .zero_shot import ZeroShotClassificationPipeline


# The kinds of inputs a head is checked on at export (export/validate.samples) and a scored row gives a call
# (scale/results.Inputs): the code that reads them knows these, so a spec naming another is refused here.
SAMPLE_KINDS = ("texts", "texts+pairs", "questions", "texts+masks")
SCORE_INPUTS = ("text", "text+pair", "question+context")
# The task an entry point runs when it is given neither a task nor a model (its embedded default model).
DEFAULT_TASK = "text-classification"


@dataclass(frozen=True)
class HeadSpec:
    """A graph kind: how the exporter loads, exports and checks it. Tasks that run the same head share artifacts."""

    name: str
    auto_model: str  # the transformers class the exporter loads the checkpoint with
    optimum_task: str  # optimum's ONNX export task
    outputs: tuple[str, ...]  # the graph outputs postprocess reads and export validation compares with PyTorch
    samples: str  # export validation's inputs: "texts", "texts+pairs", "questions" or "texts+masks"
    budget_metric: str | None = None  # what an int8 accuracy budget (--max-drop) measures; None: no budget
    needs_mask_token: bool = False
    sentence_transformers: bool = False  # reads pooling and prompts from a sentence-transformers folder
    reads_one_row: bool = False  # the head reads one position of the last layer: the export cuts the rest
    sparse: bool = False  # sentence-transformers' SparseEncoder: SpladePooling over the vocabulary

    def __post_init__(self) -> None:
        if self.samples not in SAMPLE_KINDS:
            raise ValueError(f"head {self.name!r}: samples {self.samples!r} is not one of {SAMPLE_KINDS}")


@dataclass(frozen=True)
class TaskSpec:
    """A task: the pipeline that runs it, its head, and what the entry points do with it."""

    name: str
    pipeline: type[Pipeline[Any, Any, Any]]
    head: HeadSpec
    default_model: str | None = None  # the embedded default built on first use (onnxpipe.default)
    # the columns `onnxpipe score` writes for a call's parameters (score_columns.py), and what a row gives
    # the call: "text", "text+pair" (an optional second text) or "question+context"
    score_columns: Callable[[dict[str, Any]], tuple[columns.ScoreColumn, ...]] | None = None
    score_inputs: str = "text"
    bench: str | None = None  # the benchmark module whose contenders run this task

    def __post_init__(self) -> None:
        if self.score_inputs not in SCORE_INPUTS:
            raise ValueError(f"task {self.name!r}: score_inputs {self.score_inputs!r} is not one of {SCORE_INPUTS}")

    @property
    def auto_model(self) -> str:
        return self.head.auto_model

    @property
    def optimum_task(self) -> str:
        return self.head.optimum_task

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.head.outputs


CLASSIFIER = HeadSpec(
    "sequence-classification",
    "AutoModelForSequenceClassification",
    "text-classification",
    ("logits",),
    "texts+pairs",
    budget_metric="agreement",
    reads_one_row=True,  # the pooler / features[:, 0]: export/last_row.py checks it in the graph before cutting
)
BASE = HeadSpec(
    "base",
    "AutoModel",
    "feature-extraction",
    ("last_hidden_state",),
    "texts",
    budget_metric="cosine",
    sentence_transformers=True,
)
MASKED_LM = HeadSpec(
    "masked-lm", "AutoModelForMaskedLM", "fill-mask", ("logits",), "texts+masks", needs_mask_token=True
)
# SPLADE: the masked-LM logits, pooled at runtime; its own head, since the export reads the SpladePooling module
SPARSE = HeadSpec(
    "sparse-masked-lm",
    "AutoModelForMaskedLM",
    "fill-mask",
    ("logits",),
    "texts",
    sentence_transformers=True,
    sparse=True,
)
TOKENS = HeadSpec(
    "token-classification", "AutoModelForTokenClassification", "token-classification", ("logits",), "texts"
)
SPANS = HeadSpec(
    "question-answering",
    "AutoModelForQuestionAnswering",
    "question-answering",
    ("start_logits", "end_logits"),
    "questions",
)

SPECS = (
    TaskSpec(
        "text-classification",
        TextClassificationPipeline,
        CLASSIFIER,
        default_model="minilm-sst2",
        score_columns=columns.text_classification,
        score_inputs="text+pair",
        bench="onnxpipe.bench.contenders",
    ),
    TaskSpec(
        "zero-shot-classification",
        ZeroShotClassificationPipeline,
        CLASSIFIER,
        score_columns=columns.zero_shot_classification,
    ),
    TaskSpec(
        "feature-extraction",
        FeatureExtractionPipeline,
        BASE,
        default_model="all-minilm-l6-v2",
        score_columns=columns.feature_extraction,
    ),
    TaskSpec(
        "sentence-embeddings",
        SentenceEmbeddingsPipeline,
        BASE,
        default_model="all-minilm-l6-v2",
        score_columns=columns.sentence_embeddings,
        bench="onnxpipe.bench.embeddings",
    ),
    TaskSpec(
        "sentence-similarity",
        SentenceSimilarityPipeline,
        BASE,
        default_model="all-minilm-l6-v2",
        score_columns=sentence_similarity.score_columns,
        score_inputs="text+pair",
    ),
    TaskSpec("fill-mask", FillMaskPipeline, MASKED_LM, score_columns=columns.fill_mask),
    TaskSpec(
        "token-classification",
        TokenClassificationPipeline,
        TOKENS,
        score_columns=columns.token_classification,
        bench="onnxpipe.bench.spans",
    ),
    TaskSpec(
        "question-answering",
        QuestionAnsweringPipeline,
        SPANS,
        score_columns=columns.question_answering,
        score_inputs="question+context",
        bench="onnxpipe.bench.spans",
    ),
    TaskSpec("sparse-embeddings", SparseEmbeddingsPipeline, SPARSE, score_columns=columns.sparse_embeddings),
)
TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in SPECS}
ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}


def canonical_task(task: str) -> str:
    if not isinstance(task, str):
        raise InputTypeError(f"task must be a str, got {type(task).__name__}")
    name = ALIASES.get(task, task)
    if name not in TASKS:
        known = sorted(TASKS) + sorted(ALIASES)
        raise InputValueError(f"unsupported task {task!r}: onnxpipe supports {', '.join(known)}")
    return name


def runs_on(task: str, artifact_task: str) -> bool:
    """Whether ``task`` can run an artifact exported for ``artifact_task`` (the same head)."""
    return TASKS[task].head == TASKS[artifact_task].head
