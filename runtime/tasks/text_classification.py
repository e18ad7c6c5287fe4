"""Text classification (sentiment analysis): the transformers pipeline's call shapes and outputs."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import postprocess as post
from ..pipeline import Pipeline

_UNSET = object()


class TextClassificationPipeline(Pipeline):
    """``pipe(text)`` → ``[{'label', 'score'}]``; ``pipe(texts)`` → one dict per text;
    ``top_k=None`` → every label, best first; ``function_to_apply`` overrides the config's choice."""

    task = "text-classification"

    def sanitize_parameters(self, top_k: Any = _UNSET, function_to_apply: str | None = None) -> dict[str, Any]:
        legacy = top_k is _UNSET
        if not legacy and top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
        if function_to_apply is None:
            function = post.default_function(self.artifact.problem_type, self.artifact.num_labels)
        elif isinstance(function_to_apply, str) and function_to_apply.lower() in post.FUNCTIONS:
            function = function_to_apply.lower()
        else:
            raise ValueError(f"function_to_apply must be one of {post.FUNCTIONS}, got {function_to_apply!r}")
        return {"function": function, "top_k": None if legacy else top_k, "legacy": legacy}

    def postprocess(self, outputs: dict[str, np.ndarray], function: str, top_k: int | None,
                    legacy: bool) -> list[Any]:
        scores = post.apply(function, outputs["logits"])
        return [post.label_scores(row, self.artifact.id2label, top_k, legacy) for row in scores]

    def finish(self, results: list[Any], single: bool, params: dict[str, Any]) -> Any:
        # transformers wraps a single text's best label in a list, but returns top_k lists bare.
        if single:
            return results if "top_k" not in params else results[0]
        return results
