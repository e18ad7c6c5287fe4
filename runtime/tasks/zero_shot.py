"""zero-shot-classification on an NLI model: each candidate label becomes a hypothesis paired with the text.

``pipe(text, candidate_labels=["sports", "politics"])`` → ``{'sequence', 'labels', 'scores'}`` best first;
one dict per text for a list. ``multi_label`` scores each label alone (entailment vs contradiction);
otherwise the entailment logits are softmaxed across labels. The entailment index is the first label
whose name starts with "entail", else the last, as transformers finds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

from ..errors import InputTypeError, InputValueError
from ..inputs import Post, Pre, Truncation, check_texts
from ..arrays import Array, Outputs
from ..artifact import Artifact
from ..pipeline import Feature, Pipeline

DEFAULT_TEMPLATE = "This example is {}."


def parse_labels(labels: Any) -> list[str]:
    if isinstance(labels, str):
        labels = [label.strip() for label in labels.split(",") if label.strip()]
    if not isinstance(labels, (list, tuple)) or not all(isinstance(label, str) for label in labels):
        raise InputTypeError(f"candidate_labels must be a str (comma-separated) or a list of str, got {labels!r}")
    return list(labels)


@dataclass(frozen=True, kw_only=True)
class HypothesesPre(Pre):
    hypotheses: tuple[str, ...]  # the template filled with each candidate label, in the labels' order


@dataclass(frozen=True, kw_only=True)
class LabelsPost(Post):
    labels: tuple[str, ...]
    multi_label: bool  # each label scored alone (entailment vs contradiction), not softmaxed across labels


class ZeroShotResult(TypedDict):
    sequence: str
    labels: list[str]
    scores: list[float]


class ZeroShotClassificationPipeline(Pipeline[str, Array, ZeroShotResult]):
    task = "zero-shot-classification"

    def check_inputs(self, inputs: Any) -> tuple[list[str], str | None]:
        return check_texts(inputs)

    def parse(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        # transformers takes the texts as `sequences=` and the labels as the second positional argument too.
        if not args and "sequences" in kwargs:
            args = (kwargs.pop("sequences"),)
        if len(args) == 2 and "candidate_labels" not in kwargs:
            kwargs["candidate_labels"] = args[1]
            args = args[:1]
        return super().parse(args, kwargs)

    def __init__(self, artifact: Artifact, *args: Any, **kwargs: Any):
        super().__init__(artifact, *args, **kwargs)
        label2id = artifact.manifest.config.label2id
        self.entailment_id = next((int(i) for label, i in label2id.items() if label.lower().startswith("entail")), -1)

    def sanitize_parameters(
        self,
        candidate_labels: Any = None,
        hypothesis_template: str = DEFAULT_TEMPLATE,
        multi_label: bool | None = None,
        multi_class: bool | None = None,
    ) -> tuple[HypothesesPre, LabelsPost]:
        if multi_class is not None:  # transformers' deprecated name for multi_label
            multi_label = multi_class
        # No labels is refused at the call (preprocess), not here: pipeline(...) may be built without them.
        labels = parse_labels(candidate_labels) if candidate_labels is not None else []
        try:  # "{x}" or "{1}" fail in format itself: the same refusal, not a KeyError/IndexError taken for a bug
            unformatted = isinstance(hypothesis_template, str) and hypothesis_template.format("") == hypothesis_template
        except (KeyError, IndexError, ValueError):
            unformatted = True
        if labels and (not isinstance(hypothesis_template, str) or unformatted):
            raise InputValueError(
                f'The provided hypothesis_template "{hypothesis_template}" was not able to be formatted '
                "with the target labels. Make sure the passed template includes formatting syntax "
                "such as {} where the label should go."
            )
        hypotheses = tuple(hypothesis_template.format(label) for label in labels)
        return HypothesesPre(hypotheses=hypotheses), LabelsPost(labels=tuple(labels), multi_label=bool(multi_label))

    def preprocess(self, items: list[str], pre: HypothesesPre) -> list[Feature]:
        hypotheses = pre.hypotheses
        if not hypotheses or any(not text for text in items):  # transformers checks each sequence so
            raise InputValueError("You must include at least one label and at least one sequence.")
        pairs = [(text, h) for text in items for h in hypotheses]
        try:  # only the text is cut, never the hypothesis, as transformers does
            encodings = self.encode(pairs, Truncation(strategy="only_first"))
        except Exception as e:  # the hypothesis alone is past the limit: transformers then stops truncating
            if "too short" not in str(e):
                raise
            encodings = self.encode(pairs)  # and fails in the model; the deliberate difference: cut both
        n = len(hypotheses)
        return [Feature(e, i // n, len(e), context=items[i // n]) for i, e in enumerate(encodings)]

    def postprocess(self, features: list[Feature], outputs: Outputs, post: LabelsPost) -> list[Array]:
        return list(outputs["logits"].astype(np.float32, copy=False))

    def aggregate(self, item: str, values: list[Array], post: LabelsPost) -> ZeroShotResult:
        labels = post.labels
        logits = np.stack(values)[None]  # (1 sequence, labels, classes): transformers' arithmetic, as it does it
        if post.multi_label or len(labels) == 1:
            entailment = self.entailment_id
            contradiction = -1 if entailment == 0 else 0
            pair = logits[..., [contradiction, entailment]]
            scores = (np.exp(pair) / np.exp(pair).sum(-1, keepdims=True))[..., 1]
        else:
            entail = logits[..., self.entailment_id]
            scores = np.exp(entail) / np.exp(entail).sum(-1, keepdims=True)
        top = list(reversed(scores[0].argsort()))
        return {"sequence": item, "labels": [labels[i] for i in top], "scores": scores[0, top].tolist()}
