"""feature-extraction (transformers' output: every token's hidden state) and sentence-embeddings (one
vector per text, pooled and normalised as the exported sentence-transformers model does).

``pipeline("feature-extraction")(text)`` → ``[[[float] * hidden] * tokens]`` (``return_tensors=True``: a
numpy array of shape ``(1, tokens, hidden)``), one per text for a list, as transformers returns them.
``pipeline("sentence-embeddings")(texts)`` → numpy ``(n, dim)`` float32, ``(dim,)`` for one text, as
``SentenceTransformer.encode`` returns them; pooling, normalisation, prompts and the length limit come
from the manifest, which the exporter read from the model's ``modules.json`` and module configs.
``truncate_dim``, ``normalize`` and ``precision`` (int8 / uint8 / binary / ubinary arrays) act as in
``SentenceTransformer.encode`` (:mod:`.embedding_options`); ``long="chunk"`` embeds text past the limit by
overlapping windows pooled into one vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputTypeError, InputValueError, OnnxPipeError
from ..manifest import EmbeddingInfo
from ..inputs import Post, Truncation, TruncatedPre, check_texts, check_truncation
from ..arrays import Array, Outputs
from ..artifact import Artifact
from ..pipeline import Feature, Pipeline
from .embedding_options import Finish, check_long, finish_options, output_shape, weighted_mean

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")


def pool(hidden: np.ndarray, modes: list[str]) -> np.ndarray:
    """One text's token states (unpadded, ``(tokens, dim)``) → its vector, as sentence-transformers'
    Pooling module computes it; several modes are concatenated in the order given."""
    parts = []
    for mode in modes:
        if mode == "cls":
            parts.append(hidden[0])
        elif mode == "max":
            parts.append(hidden.max(axis=0))
        elif mode == "mean":
            parts.append(hidden.sum(axis=0) / max(hidden.shape[0], 1e-9))
        elif mode == "mean_sqrt_len_tokens":
            parts.append(hidden.sum(axis=0) / np.sqrt(max(hidden.shape[0], 1e-9)))
        elif mode == "weightedmean":
            weights = np.arange(1, hidden.shape[0] + 1, dtype=hidden.dtype)[:, None]
            parts.append((hidden * weights).sum(axis=0) / weights.sum())
        elif mode == "lasttoken":
            parts.append(hidden[-1])
        else:
            raise OnnxPipeError(f"unknown pooling mode {mode!r} in the manifest (known: {', '.join(POOLING_MODES)})")
    return np.concatenate(parts).astype(np.float32, copy=False)


def hidden_rows(features: list[Feature], outputs: Outputs) -> list[Array]:
    """Each feature's token states without its padding."""
    hidden = outputs["last_hidden_state"]
    return [hidden[j, : f.length] for j, f in enumerate(features)]


@dataclass(frozen=True, kw_only=True)
class TokensPre(TruncatedPre):
    add_special_tokens: bool = True


@dataclass(frozen=True, kw_only=True)
class TokensPost(Post):
    return_tensors: bool  # numpy arrays, not nested lists


class FeatureExtractionPipeline(Pipeline[str, Any, Any]):  # nested lists, or arrays (return_tensors)
    task = "feature-extraction"
    result_key = "features"

    def check_inputs(self, inputs: Any) -> tuple[list[str], str | None]:
        return check_texts(inputs)

    def sanitize_parameters(
        self,
        truncation: bool | str | None = None,
        tokenize_kwargs: dict[str, Any] | None = None,
        return_tensors: bool | None = None,
    ) -> tuple[TokensPre, TokensPost]:
        tokenize_kwargs = dict(tokenize_kwargs or {})
        if truncation is not None:
            if "truncation" in tokenize_kwargs:
                raise InputValueError(
                    "truncation parameter defined twice (given as keyword argument as well as in tokenize_kwargs)"
                )
            tokenize_kwargs["truncation"] = truncation
        # padding: each text runs unpadded in its result, as transformers tokenizes each text alone
        unknown = set(tokenize_kwargs) - {"truncation", "max_length", "padding", "add_special_tokens"}
        if unknown:
            raise InputValueError(
                f"tokenize_kwargs {sorted(unknown)} are not supported (truncation, max_length, add_special_tokens are)"
            )
        cut = check_truncation(tokenize_kwargs.get("truncation"), tokenize_kwargs.get("max_length"))
        special = tokenize_kwargs.get("add_special_tokens", True)
        if not isinstance(special, bool):
            raise InputTypeError(f"add_special_tokens must be a bool, got {special!r}")
        return TokensPre(truncation=cut, add_special_tokens=special), TokensPost(return_tensors=bool(return_tensors))

    def preprocess(self, items: list[str], pre: TokensPre) -> list[Feature]:
        encodings = self.encode(items, pre.truncation, add_special_tokens=pre.add_special_tokens)
        return [Feature(e, i, len(e)) for i, e in enumerate(encodings)]

    def postprocess(self, features: list[Feature], outputs: Outputs, post: TokensPost) -> list[Any]:
        rows = [row[None] for row in hidden_rows(features, outputs)]  # (1, tokens, hidden), as transformers
        return rows if post.return_tensors else [row.tolist() for row in rows]


Window = tuple[Array, int]  # one window's pooled vector and its count of non-special tokens


@dataclass(frozen=True, kw_only=True)
class EmbeddingPre(TruncatedPre):
    prompt: str = ""  # put before each text (sentence-transformers' prompt)
    long: str = "truncate"  # or "chunk": text past the window runs as overlapping windows, pooled into one
    stride: int = 0  # the windows' overlap in tokens, for long="chunk"


class SentenceEmbeddingsPipeline(Pipeline[str, Window, Array]):
    task = "sentence-embeddings"
    result_key = "embedding"

    def check_inputs(self, inputs: Any) -> tuple[list[str], str | None]:
        return check_texts(inputs)

    def __init__(self, artifact: Artifact, *args: Any, **kwargs: Any):
        self.config = artifact.manifest.embedding or EmbeddingInfo()
        super().__init__(artifact, *args, **kwargs)

    @property
    def token_limit(self) -> int:  # sentence-transformers cuts at max_seq_length (256 for all-MiniLM-L6-v2)
        return min(self.config.max_seq_length or self.encoder.max_length, self.encoder.max_length)

    @property
    def dimension(self) -> int | None:
        return self.config.dimension

    def sanitize_parameters(
        self,
        normalize: bool | None = None,
        prompt_name: str | None = None,
        prompt: str | None = None,
        max_length: int | None = None,
        truncation: bool | str | None = None,
        truncate_dim: int | None = None,
        precision: str | None = None,
        ranges: Any = None,
        long: str | None = None,
        stride: int | None = None,
    ) -> tuple[EmbeddingPre, Finish]:
        prompts = self.config.prompts
        if prompt is None:
            prompt_name = prompt_name if prompt_name is not None else self.config.default_prompt_name
            if prompt_name is not None and prompt_name not in prompts:
                raise InputValueError(
                    f"prompt_name {prompt_name!r} is not one of this model's prompts "
                    f"{sorted(prompts) or '(it has none)'}"
                )
            prompt = prompts.get(prompt_name, "") if prompt_name else ""
        elif not isinstance(prompt, str):
            raise InputTypeError(f"prompt must be a str, got {type(prompt).__name__}")
        if prompt and not self.config.include_prompt:
            raise InputValueError(
                "this model pools without its prompt tokens (include_prompt false), which onnxpipe "
                "does not reproduce yet; pass the text without a prompt"
            )
        finish = finish_options(self.config, normalize, truncate_dim, precision, ranges)
        # sentence-transformers truncates at the model's max_seq_length, which may be below the position limit.
        limit = max_length if max_length is not None else self.config.max_seq_length
        cut = check_truncation(truncation, limit)
        window = min(limit or self.encoder.max_length, self.encoder.max_length)
        overlap = check_long(long, stride, window)
        if overlap is None:
            return EmbeddingPre(truncation=cut, prompt=prompt), finish
        # every window at the length a text is cut at, however truncation was asked
        return EmbeddingPre(truncation=Truncation(window), prompt=prompt, long="chunk", stride=overlap), finish

    def preprocess(self, items: list[str], pre: EmbeddingPre) -> list[Feature]:
        texts = [pre.prompt + t for t in items] if pre.prompt else items
        if pre.long != "chunk":
            return super().preprocess(texts, pre)
        features = []
        for i, e in enumerate(self.encode(texts, pre.truncation, stride=pre.stride)):
            # The prompt, if any, is part of the text: in the first window only.
            for w in [e, *e.overflowing]:
                features.append(Feature(w, i, len(w), context=w.special_tokens_mask.count(0)))
        return features

    def postprocess(self, features: list[Feature], outputs: Outputs, finish: Finish) -> list[Window]:
        # Pooled, not normalised: a long document's windows are averaged first (aggregate finishes each input).
        rows = hidden_rows(features, outputs)
        return [(pool(row, self.config.pooling), f.context or 1) for row, f in zip(rows, features)]

    def aggregate(self, item: str, values: list[Window], finish: Finish) -> Array:
        return finish.apply(weighted_mean([v for v, _ in values], [w for _, w in values]))

    def explain_lines(self, features: list[Feature], outputs: Outputs, finish: Finish) -> list[str]:
        if len(features) < 2:
            return []
        return [
            f"window {j + 1}/{len(features)}: characters {min(a for a, b in offsets)}–{max(b for a, b in offsets)}, "
            f"weight {f.context} (tokens besides the special ones)"
            for j, f in enumerate(features)
            for offsets in [
                [o for o, m in zip(f.encoding.offsets, f.encoding.special_tokens_mask) if not m] or [(0, 0)]
            ]
        ] + ["the input's vector: the windows' mean weighted so, before normalisation"]

    def describe_postprocess(self, finish: Finish) -> str:
        return finish.describe()

    def finish(self, results: list[Any], single: str | None, params: dict[str, Any]) -> Any:
        if single:
            return results[0]
        if not results:
            call = {**self.defaults, **params}
            width, dtype = output_shape(self.dimension, call.get("truncate_dim"), call.get("precision"))
            return np.zeros((0, width), dtype=dtype)
        return np.stack(results)
