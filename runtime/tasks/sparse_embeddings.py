"""sparse-embeddings: one SPLADE vector per text, as sentence-transformers' ``SparseEncoder.encode`` computes it.

A masked-LM head's logits → ``log(1 + ReLU(logits))`` (``log1p_relu``: ``log1p`` once more) over the text's
tokens (padding left out, as the attention mask does), pooled by max (or sum) into one weight per vocabulary
entry. ``pipeline("sparse-embeddings")(text)`` → ``{"indices": int32 array, "values": float32 array}``, the
non-zero weights in vocabulary order (``top_k``: only the largest k, as ``max_active_dims``); a list of them
for a list. The pooling comes from the manifest, which the exporter read from the folder's ``SpladePooling``
(a plain MLM checkpoint gets SPLADE's max and ReLU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

from ..arrays import Array, Outputs
from ..artifact import Artifact
from ..errors import OnnxPipeError
from ..inputs import Post, TruncatedPre, check_int, check_texts, check_truncation
from ..manifest import EmbeddingInfo
from ..pipeline import Feature, Pipeline

DEFAULT_POOLING = "splade-max-relu"


class SparseVector(TypedDict):
    """One text's SPLADE vector: the vocabulary ids with a non-zero weight, ascending, and their weights."""

    indices: Array
    values: Array


def splade(logits: Array, strategy: str, activation: str) -> Array:
    """One text's token logits (unpadded, ``(tokens, vocab)``) → its vocabulary weights, as SpladePooling."""
    weights = np.log1p(np.maximum(logits.astype(np.float32), 0))
    if activation == "log1p_relu":
        weights = np.log1p(weights)
    out: Array = weights.max(axis=0) if strategy == "max" else weights.sum(axis=0)
    return out


def sparse(dense: Array, top_k: int | None) -> SparseVector:
    indices = np.flatnonzero(dense > 0)
    if top_k is not None and len(indices) > top_k:  # the k largest weights, kept in vocabulary order
        indices = np.sort(indices[np.argsort(-dense[indices], kind="stable")[:top_k]])
    return SparseVector(indices=indices.astype(np.int32), values=dense[indices].astype(np.float32))


def as_pairs(vector: SparseVector) -> list[dict[str, Any]]:
    """``{indices, values}`` as ``[{"index", "value"}]``, one a non-zero weight: TEI's ``/embed_sparse`` shape, and
    ``score``'s column (float32 weights stay exact through Python floats)."""
    return [{"index": int(i), "value": float(v)} for i, v in zip(vector["indices"], vector["values"])]


@dataclass(frozen=True, kw_only=True)
class SparsePost(Post):
    top_k: int | None  # the largest k weights only (sentence-transformers' max_active_dims); None: all


class SparseEmbeddingsPipeline(Pipeline[str, SparseVector, SparseVector]):
    task = "sparse-embeddings"
    result_key = "embedding"

    def __init__(self, artifact: Artifact, *args: Any, **kwargs: Any):
        self.config = artifact.manifest.embedding or EmbeddingInfo(pooling=[DEFAULT_POOLING])
        mode = self.config.pooling[0] if self.config.pooling else DEFAULT_POOLING
        parts = mode.split("-", 2)
        if len(parts) != 3 or parts[0] != "splade" or parts[1] not in ("max", "sum"):
            raise OnnxPipeError(
                f"{artifact.path}: pooling {mode!r} is not SPLADE's; export the model with --task sparse-embeddings"
            )
        self.strategy, self.activation = parts[1], parts[2]
        super().__init__(artifact, *args, **kwargs)

    @property
    def token_limit(self) -> int:
        return min(self.config.max_seq_length or self.encoder.max_length, self.encoder.max_length)

    def check_inputs(self, inputs: Any) -> tuple[list[str], str | None]:
        return check_texts(inputs)

    def sanitize_parameters(
        self, top_k: int | None = None, max_length: int | None = None, truncation: bool | str | None = None
    ) -> tuple[TruncatedPre, SparsePost]:
        k = check_int(top_k, "top_k", none=True)
        limit = max_length if max_length is not None else self.config.max_seq_length
        return TruncatedPre(truncation=check_truncation(truncation, limit)), SparsePost(top_k=k)

    def postprocess(self, features: list[Feature], outputs: Outputs, post: SparsePost) -> list[SparseVector]:
        logits = outputs["logits"]
        return [
            sparse(splade(logits[j, : f.length], self.strategy, self.activation), post.top_k)
            for j, f in enumerate(features)
        ]
