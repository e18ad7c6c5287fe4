"""Text classification (sentiment analysis, cross-encoders): the transformers pipeline's call shapes and outputs.

``pipe(text)`` → ``[{'label', 'score'}]``; ``pipe(texts)`` → one dict per text; ``pipe({"text", "text_pair"})``
→ one dict; ``top_k=None`` → every label, best first; ``top_k=k`` → the k best (``0`` → none);
``return_all_scores`` (legacy) → every label in label order; ``function_to_apply`` overrides the config's
choice; ``truncation`` / ``max_length`` as the transformers tokenizer takes them. Parameters given to
``pipeline(...)`` apply to every call, which may override them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .. import postprocess as post
from ..errors import InputTypeError, InputValueError
from ..inputs import Post, TruncatedPre, check_int, check_truncation
from ..arrays import Outputs
from ..pipeline import Feature, Pipeline
from ..postprocess import LabelScore

_UNSET = object()


TextInput = str | tuple[str, str]  # a text, or (text, text_pair)
LabelResult = LabelScore | list[LabelScore]  # the best label, or several (top_k, return_all_scores)


@dataclass(frozen=True, kw_only=True)
class LabelsPost(Post):
    """Which scores a text gets: ``function`` over the logits, then the ``top_k`` best (None: all) ranked, or
    (``legacy``, transformers' older shapes) every label in label order / the best alone."""

    function: str
    top_k: int | None
    legacy: bool


class TextClassificationPipeline(Pipeline[TextInput, LabelResult, LabelResult]):
    task = "text-classification"
    result_key = "labels"

    def sanitize_parameters(
        self,
        top_k: Any = _UNSET,
        function_to_apply: str | None = None,
        return_all_scores: bool | None = None,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        padding: Any = None,
    ) -> tuple[TruncatedPre, LabelsPost]:
        # transformers' rules: top_k given (an int or None) → a ranked list; else return_all_scores
        # (the call's, or the config's) → every label unranked, or the best as a dict.
        if return_all_scores is None:
            return_all_scores = self.artifact.manifest.config.return_all_scores
        if top_k is not _UNSET:
            check_int(top_k, "top_k", 0, none=True)
            k, legacy = top_k, False
        elif return_all_scores:
            k, legacy = None, True
        else:
            k, legacy = 1, True
        if function_to_apply is None:
            function = post.default_function(self.artifact.problem_type, self.artifact.num_labels)
        elif isinstance(function_to_apply, str) and function_to_apply.lower() in post.FUNCTIONS:
            function = function_to_apply.lower()
        else:
            raise InputValueError(f"function_to_apply must be one of {post.FUNCTIONS}, got {function_to_apply!r}")
        pre = TruncatedPre(truncation=check_truncation(truncation, max_length))
        return pre, LabelsPost(function=function, top_k=k, legacy=legacy)

    def postprocess(self, features: list[Feature], outputs: Outputs, params: LabelsPost) -> list[Any]:
        scores = post.apply(params.function, outputs["logits"])
        return [post.label_scores(row, self.artifact.id2label, params.top_k, params.legacy) for row in scores]

    def explain_lines(self, features: list[Feature], outputs: Outputs, params: LabelsPost) -> list[str]:
        ranked = self.postprocess(features, outputs, replace(params, top_k=None, legacy=False))[0]
        return [", ".join(f"{d['label']} {d['score']:.4f}" for d in ranked), f"label  {ranked[0]['label']}"]

    def rerank(
        self,
        query: str,
        documents: list[str],
        top_k: int | None = None,
        label: str | None = None,
        return_text: bool = False,
        batch_size: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rank ``documents`` by the cross-encoder's score for (query, document): ``[{"index", "score"}]``,
        best first, as rerank APIs return them. The score is the one-logit model's (sigmoid by default), or
        ``label``'s probability; with several labels and no ``label``, the last label's (the "relevant"
        or "entailment" end of most pair classifiers)."""
        if not isinstance(query, str):
            raise InputTypeError(f"query must be a str, got {type(query).__name__}")
        if not isinstance(documents, (list, tuple)):
            raise InputTypeError(f"documents must be a list of str, got {type(documents).__name__}")
        check_int(top_k, "top_k", 0, none=True)
        names = list(self.artifact.id2label.values())
        label = label if label is not None else self.relevant_label
        if label not in names:
            raise InputValueError(f"label {label!r} is not one of this model's labels {names}")
        results = self([{"text": query, "text_pair": d} for d in documents], top_k=None, batch_size=batch_size)
        ranked = rank(results, label, documents if return_text else None)
        return ranked if top_k is None else ranked[:top_k]

    @property
    def relevant_label(self) -> str:
        """The label rerank scores by default: the last (the "relevant" or "entailment" end of most pair models)."""
        return self.artifact.id2label[max(self.artifact.id2label)]

    def finish(self, results: list[Any], single: str | None, params: dict[str, Any]) -> Any:
        # transformers wraps a single *text*'s result in a list unless the call itself named top_k
        # (even when pipeline(...) did: its quirk, kept so that code switches with one import).
        if single == "str":
            return results if "top_k" not in params else results[0]
        return results[0] if single else results


def rank(results: list[Any], label: str, texts: list[str] | None = None) -> list[dict[str, Any]]:
    """Pair results (every label's score, as ``top_k=None`` gives them) → ``[{"index", "score"(, "text")}]`` by
    ``label``'s score, best first: rerank's answer in Python and over HTTP."""
    ranked = sorted(
        ({"index": i, "score": next(d["score"] for d in r if d["label"] == label)} for i, r in enumerate(results)),
        key=lambda d: d["score"],
        reverse=True,
    )
    return ranked if texts is None else [{**d, "text": texts[d["index"]]} for d in ranked]
