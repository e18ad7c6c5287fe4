"""onnxpipe: Hugging Face ``pipeline()`` results from ONNX models on a lean CPU runtime.

    >>> from onnxpipe import pipeline
    >>> classifier = pipeline("sentiment-analysis", model="artifacts/my-model")
    >>> classifier("We are very happy to show you the 🤗 Transformers library.")
    [{'label': 'POSITIVE', 'score': 0.99...}]

The runtime needs onnxruntime, tokenizers and numpy; it never imports torch or transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, overload

from .artifact import Artifact, load_artifact
from .errors import InputError, InputKeyError, InputTypeError, InputValueError, OnnxPipeError
from .pipeline import Pipeline
from .session import Engine
from .tasks import TASKS, canonical_task, runs_on

__version__ = "0.1.0"
__all__ = [
    "TASKS",
    "Artifact",
    "InputError",
    "InputKeyError",
    "InputTypeError",
    "InputValueError",
    "OnnxPipeError",
    "Pipeline",
    "__version__",
    "load_artifact",
    "pipeline",
]


# -- generated from the task registry by `python tests/test_registry.py --fix`: edit runtime/tasks, not this --
from .tasks.feature_extraction import FeatureExtractionPipeline, SentenceEmbeddingsPipeline
from .tasks.fill_mask import FillMaskPipeline
from .tasks.question_answering import QuestionAnsweringPipeline
from .tasks.sentence_similarity import SentenceSimilarityPipeline
from .tasks.sparse_embeddings import SparseEmbeddingsPipeline
from .tasks.text_classification import TextClassificationPipeline
from .tasks.token_classification import TokenClassificationPipeline
from .tasks.zero_shot import ZeroShotClassificationPipeline


@overload
def pipeline(
    task: Literal["text-classification", "sentiment-analysis"],
    model: str | Path | None = None,
    variant: str | None = None,
    *,
    threads: int | None = None,
    batch_size: int | None = None,
    verify: bool = True,
    engine: Engine | None = None,
    **defaults: Any,
) -> TextClassificationPipeline: ...


@overload
def pipeline(
    task: Literal["zero-shot-classification"],
    model: str | Path | None = None,
    variant: str | None = None,
    *,
    threads: int | None = None,
    batch_size: int | None = None,
    verify: bool = True,
    engine: Engine | None = None,
    **defaults: Any,
) -> ZeroShotClassificationPipeline: ...


@overload
def pipeline(
    task: Literal["feature-extraction"],
    model: str | Path | None = None,
    variant: str | None = None,
    *,
    threads: int | None = None,
    batch_size: int | None = None,
    verify: bool = True,
    engine: Engine | None = None,
    **defaults: Any,
) -> FeatureExtractionPipeline: ...


@overload
def pipeline(
    task: Literal["sentence-embeddings"],
    model: str | Path | None = None,
    variant: str | None = None,
    *,
    threads: int | None = None,
    batch_size: int | None = None,
    verify: bool = True,
    engine: Engine | None = None,
    **defaults: Any,
) -> SentenceEmbeddingsPipeline: ...


@overload
def pipeline(
    task: Literal["sentence-similarity"],
    model: str | Path | None = None,
    variant: str | None = None,
    *,
    threads: int | None = None,
    batch_size: int | None = None,
    verify: bool = True,
    engine: Engine | None = None,
    **defaults: Any,
) -> SentenceSimilarityPipeline: ...


@overload
def pipeline(
    task: Literal["fill-mask"],
    model: str | Path | None = None,
    variant: str | None = None,
    *,
    threads: int | None = None,
    batch_size: int | None = None,
    verify: bool = True,
    engine: Engine | None = None,
    **defaults: Any,
) -> FillMaskPipeline: ...


@overload
def pipeline(
    task: Literal["token-classification", "ner"],
    model: str | Path | None = None,
    variant: str | None = None,
    *,
    threads: int | None = None,
    batch_size: int | None = None,
    verify: bool = True,
    engine: Engine | None = None,
    **defaults: Any,
) -> TokenClassificationPipeline: ...


@overload
def pipeline(
    task: Literal["question-answering"],
    model: str | Path | None = None,
    variant: str | None = None,
    *,
    threads: int | None = None,
    batch_size: int | None = None,
    verify: bool = True,
    engine: Engine | None = None,
    **defaults: Any,
) -> QuestionAnsweringPipeline: ...


@overload
def pipeline(
    task: Literal["sparse-embeddings"],
    model: str | Path | None = None,
    variant: str | None = None,
    *,
    threads: int | None = None,
    batch_size: int | None = None,
    verify: bool = True,
    engine: Engine | None = None,
    **defaults: Any,
) -> SparseEmbeddingsPipeline: ...


# -- end of the generated overloads --


@overload
def pipeline(
    task: str | None = None,
    model: str | Path | None = None,
    variant: str | None = None,
    *,
    threads: int | None = None,
    batch_size: int | None = None,
    verify: bool = True,
    engine: Engine | None = None,
    **defaults: Any,
) -> Pipeline[Any, Any, Any]: ...


def pipeline(
    task: str | None = None,
    model: str | Path | None = None,
    variant: str | None = None,
    *,
    threads: int | None = None,
    batch_size: int | None = None,
    verify: bool = True,
    engine: Engine | None = None,
    **defaults: Any,
) -> Pipeline[Any, Any, Any]:
    """Load an exported artifact as a pipeline for ``task``.

    task: a task of the registry (``onnxpipe.TASKS``) or an alias (``onnxpipe.tasks.ALIASES``); None takes the
        artifact's own task. A task runs any artifact exported for a task with the same head
        (text-classification ↔ zero-shot-classification, feature-extraction ↔ sentence-embeddings).
    model: an artifact folder written by ``onnxpipe export``; None builds or reuses the task's
        embedded default model.
    variant: "fp32", "optimized" or "int8" (whichever the artifact holds); None takes its default.
    threads: intra-op threads; None uses every core this process may run on. A list that makes several graph
        runs runs them this many at a time, one thread each (the session's streams).
    batch_size: how many texts go through the graph at once when a list is passed (None: 32, or 1 for a
        model whose tokenizer has no pad token).
    verify: check the files used against the manifest's sha256 before loading.
    engine: something with ``input_names`` and ``run(feed) -> {output: array}`` to run the graph instead
        of onnxruntime (the benchmark hands in OpenVINO and CTranslate2 this way).
    defaults: call parameters (``top_k=None``, ``function_to_apply``, ...) for every call, as
        transformers' ``pipeline(task, model, **kwargs)`` takes them; a call's own override them.
    """
    if model is None:
        if task is None:
            raise InputValueError("pass a task, a model, or both: e.g. pipeline('sentiment-analysis')")
        from .default import ensure_default

        model = ensure_default(canonical_task(task))
    artifact = load_artifact(model)
    name = canonical_task(task if task is not None else artifact.task)
    if artifact.task not in TASKS:
        raise OnnxPipeError(
            f"{artifact.path} was exported for task {artifact.task!r}, which this onnxpipe does not "
            f"run (it runs {', '.join(TASKS)}); upgrade onnxpipe or export for another task"
        )
    if not runs_on(name, artifact.task):
        raise InputValueError(
            f"task {task!r} does not match the artifact's task {artifact.task!r} ({artifact.path}): "
            f"its {TASKS[artifact.task].head.name} graph cannot run {name}"
        )
    return TASKS[name].pipeline(
        artifact, variant=variant, threads=threads, batch_size=batch_size, verify=verify, engine=engine, **defaults
    )
