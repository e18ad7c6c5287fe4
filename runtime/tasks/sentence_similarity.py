"""sentence-similarity: the cosine of a source sentence's embedding with each other sentence's, as Hugging
Face's task of that name answers it (``InferenceClient.sentence_similarity``, TEI's ``/similarity``).

``pipeline("sentence-similarity")({"source_sentence": s, "sentences": [a, b]})`` → ``[cos(s, a), cos(s, b)]``
(floats), a list of such answers for a list of such dicts. The vectors are sentence-embeddings' own (pooling,
prompts, length limit and ``long="chunk"`` from :class:`SentenceEmbeddingsPipeline`), normalised, so a
cosine is their dot product: ``sentence_transformers.util.cos_sim`` of ``encode``'s vectors. A
``{"text", "text_pair"}`` dict is one source and one sentence (the row ``onnxpipe score --pair-column``
gives): ``[cos(text, text_pair)]``. It runs on the graph sentence-embeddings runs (the registry's head).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..arrays import Array, Outputs
from ..errors import InputTypeError
from ..pipeline import Feature
from .embedding_options import Finish
from .score_columns import ScoreColumn
from .feature_extraction import EmbeddingPre, SentenceEmbeddingsPipeline, Window, hidden_rows, pool

Item = tuple[str, list[str]]  # (source sentence, the sentences it is compared with)
Part = tuple[int, Window]  # a feature's place in its item (0: the source) and its pooled window


def _item(value: Any, where: str) -> Item:
    if not isinstance(value, dict):
        raise InputTypeError(
            f'{where} is a {type(value).__name__}: sentence-similarity takes {{"source_sentence": str, '
            '"sentences": [str]} (or {"text", "text_pair"}: one source, one sentence)'
        )
    if set(value) == {"text", "text_pair"}:
        value = {"source_sentence": value["text"], "sentences": [value["text_pair"]]}
    if set(value) != {"source_sentence", "sentences"}:
        raise InputTypeError(
            f"{where} has keys {sorted(value)}: sentence-similarity takes source_sentence and sentences"
        )
    source, sentences = value["source_sentence"], value["sentences"]
    if not isinstance(source, str):
        raise InputTypeError(f"{where}['source_sentence'] is a {type(source).__name__}, not a str")
    if not isinstance(sentences, (list, tuple)):
        raise InputTypeError(f"{where}['sentences'] is a {type(sentences).__name__}, not a list of str")
    for j, s in enumerate(sentences):
        if not isinstance(s, str):
            raise InputTypeError(f"{where}['sentences'][{j}] is a {type(s).__name__}, not a str")
    return source, list(sentences)


def score_columns(params: dict[str, Any]) -> tuple[ScoreColumn, ...]:
    # a scored row is one source and one sentence (--pair-column): a list of one cosine
    return (ScoreColumn("similarities", ("list", "float64"), "all"),)


class SentenceSimilarityPipeline(SentenceEmbeddingsPipeline):
    task = "sentence-similarity"
    result_key = "similarities"

    def check_inputs(self, inputs: Any) -> tuple[list[Item], str | None]:  # type: ignore[override]
        if isinstance(inputs, dict):
            return [_item(inputs, "inputs")], "dict"
        if not isinstance(inputs, (list, tuple)):
            raise InputTypeError(
                f'inputs must be a {{"source_sentence", "sentences"}} dict or a list of them, got {type(inputs).__name__}'
            )
        return [_item(v, f"inputs[{i}]") for i, v in enumerate(inputs)], None

    def sanitize_parameters(  # type: ignore[override]
        self,
        prompt_name: str | None = None,
        prompt: str | None = None,
        max_length: int | None = None,
        truncation: bool | str | None = None,
        truncate_dim: int | None = None,
        long: str | None = None,
        stride: int | None = None,
    ) -> tuple[EmbeddingPre, Finish]:
        # unit vectors, float32: a cosine is then their dot product (precision would quantize it away)
        return super().sanitize_parameters(
            normalize=True,
            prompt_name=prompt_name,
            prompt=prompt,
            max_length=max_length,
            truncation=truncation,
            truncate_dim=truncate_dim,
            long=long,
            stride=stride,
        )

    def preprocess(self, items: list[Item], pre: EmbeddingPre) -> list[Feature]:  # type: ignore[override]
        # Every sentence of every item embedded as sentence-embeddings embeds a list of texts, then each
        # feature given back to its item, with its place in the item beside the window's weight.
        places = [(i, k) for i, (_, sentences) in enumerate(items) for k in range(len(sentences) + 1)]
        texts = [t for source, sentences in items for t in (source, *sentences)]
        features = super().preprocess(texts, pre)
        return [Feature(f.encoding, places[f.owner][0], f.length, (places[f.owner][1], f.context)) for f in features]

    def postprocess(self, features: list[Feature], outputs: Outputs, finish: Finish) -> list[Part]:  # type: ignore[override]
        rows = hidden_rows(features, outputs)
        return [(f.context[0], (pool(row, self.config.pooling), f.context[1] or 1)) for row, f in zip(rows, features)]

    def aggregate(self, item: Item, values: list[Part], finish: Finish) -> list[float]:  # type: ignore[override]
        windows: list[list[Window]] = [[] for _ in range(len(item[1]) + 1)]
        for place, window in values:
            windows[place].append(window)
        source, *others = (SentenceEmbeddingsPipeline.aggregate(self, "", w, finish) for w in windows)
        return [cosine(source, v) for v in others]

    def explain_lines(self, features: list[Feature], outputs: Outputs, finish: Finish) -> list[str]:
        return []

    def finish(self, results: list[Any], single: str | None, params: dict[str, Any]) -> Any:
        return results[0] if single else results


def cosine(a: Array, b: Array) -> float:
    """``util.cos_sim`` of two vectors (unit already here; the norms guard a zero vector as torch's eps does)."""
    norms = max(float(np.linalg.norm(a)) * float(np.linalg.norm(b)), 1e-8)
    return float(np.dot(a.astype(np.float64), b.astype(np.float64)) / norms)
