"""What sentence-embeddings does to a pooled vector after the graph, as sentence-transformers does it: Matryoshka
truncation (``truncate_dim``), normalisation, output precision (``quantize_embeddings``), and the weighted mean
that pools a long document's windows into one vector.

The order is sentence-transformers' ``encode``: the model's own modules (its ``Normalize``, when it has one) →
``truncate_dim`` → ``normalize_embeddings`` → ``quantize_embeddings``. So a normalising model truncated without
``normalize=True`` gives the first ``k`` values of its unit vector (not unit length), as sentence-transformers
does; ``normalize=True`` normalises the truncated vector again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputTypeError, InputValueError
from ..arrays import Array
from ..inputs import Post, check_int
from ..manifest import EmbeddingInfo

PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")
LONG_MODES = ("truncate", "chunk")
DTYPES = {"float32": np.float32, "int8": np.int8, "uint8": np.uint8, "binary": np.int8, "ubinary": np.uint8}


def quantize(vectors: Array, precision: str, ranges: Array | None) -> Array:
    """``sentence_transformers.quantization.quantize_embeddings`` with the ranges given, line for line so that the
    bits agree. Written out because the runtime never imports sentence-transformers (it pulls torch); the
    batch-derived ranges it falls back on are never used here (a text's vector would depend on its batch)."""
    if precision == "float32":
        return vectors.astype(np.float32)
    if precision.endswith("int8"):
        assert ranges is not None  # resolved by check_precision
        starts = ranges[0, :]
        steps = (ranges[1, :] - ranges[0, :]) / 255
        steps = np.where(steps == 0, 1, steps)
        q_vals = np.clip(np.floor((vectors - starts) / steps), 0, 255)
        return q_vals.astype(np.uint8) if precision == "uint8" else (q_vals - 128).astype(np.int8)
    packed = np.packbits(vectors > 0, axis=-1).reshape(vectors.shape[0], -1)
    return (packed - 128).astype(np.int8) if precision == "binary" else packed


@dataclass(frozen=True, kw_only=True)
class Finish(Post):
    """How one call turns pooled vectors into its answer (sentence-embeddings' postprocess parameters)."""

    model_normalize: bool  # the model's own Normalize module runs (unless normalize=False)
    truncate_dim: int | None
    normalize_after: bool  # normalize=True: normalise (again) after truncation, as normalize_embeddings
    precision: str
    ranges: Array | None  # (2, dim) for int8 / uint8

    def apply(self, vector: Array) -> Array:
        if self.model_normalize:
            vector = unit(vector)
        if self.truncate_dim is not None:
            if self.truncate_dim > vector.shape[0]:
                raise InputValueError(
                    f"truncate_dim={self.truncate_dim} is more than the model's {vector.shape[0]} dimensions"
                )
            vector = vector[: self.truncate_dim]
        if self.normalize_after:
            vector = unit(vector)
        if self.ranges is not None and self.ranges.shape[1] != vector.shape[0]:
            raise InputValueError(f"ranges has shape {self.ranges.shape}; the vectors need (2, {vector.shape[0]})")
        out: Array = quantize(vector[None], self.precision, self.ranges)[0]
        return out

    def describe(self) -> str:
        ranges = "" if self.ranges is None else f", ranges {self.ranges.shape}"
        return (
            f"model's normalize={self.model_normalize}, truncate_dim={self.truncate_dim}, "
            f"normalize after truncation={self.normalize_after}, precision={self.precision!r}{ranges}"
        )


def unit(vector: Array) -> Array:
    out: Array = vector / max(float(np.linalg.norm(vector)), 1e-12)  # torch.nn.functional.normalize's epsilon
    return out


def finish_options(
    config: EmbeddingInfo,
    normalize: bool | None,
    truncate_dim: int | None,
    precision: str | None,
    ranges: Any,
) -> Finish:
    """A call's parameters checked and resolved against the manifest (int8 ranges from it unless given)."""
    if normalize is not None and not isinstance(normalize, (bool, np.bool_)):
        raise InputTypeError(f"normalize must be a bool, got {normalize!r}")
    full = config.dimension
    k: int | None = check_int(truncate_dim, "truncate_dim", none=True)
    if k is not None and full is not None and k > full:
        raise InputValueError(f"truncate_dim must be between 1 and {full}, got {k}")
    precision = "float32" if precision is None else precision
    if precision not in PRECISIONS:
        raise InputValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    model_normalize = config.normalize and normalize is not False
    dim = k if k is not None else full
    # Normalising after truncation changes nothing at the full size when the model normalised already.
    normalize_after = normalize is True and (not model_normalize or (k is not None and k != full))
    resolved = None
    if ranges is not None:
        if not precision.endswith("int8"):
            raise InputValueError(f"ranges are for precision 'int8' or 'uint8', not {precision!r}")
        try:
            resolved = np.asarray(ranges)
        except ValueError:  # ragged lists: numpy's own refusal, taken for a bug unless named here
            raise InputValueError(
                "ranges must be numbers of shape (2, dimensions): [mins, maxs], got ragged lists"
            ) from None
        if resolved.dtype.kind not in "iuf" or resolved.ndim != 2 or resolved.shape[0] != 2:
            raise InputValueError(
                f"ranges must be numbers of shape (2, dimensions): [mins, maxs], got {resolved.shape}"
            )
        if not np.all(np.isfinite(resolved)):
            raise InputValueError("ranges must be finite numbers")
        if dim is not None and resolved.shape[1] != dim:
            raise InputValueError(f"ranges has shape {resolved.shape}; the vectors need (2, {dim})")
    elif precision.endswith("int8"):
        resolved = recorded_ranges(config, dim, model_normalize or normalize_after, normalize_after)
    return Finish(
        model_normalize=model_normalize,
        truncate_dim=k,
        normalize_after=normalize_after,
        precision=precision,
        ranges=resolved,
    )


def recorded_ranges(config: EmbeddingInfo, dim: int | None, unit_length: bool, renormalized: bool) -> Array:
    """The int8 ranges the export computed on its calibration corpus for vectors of this form: unit vectors at
    the full size or a Matryoshka size, or a full-size form (raw or unit) truncated."""
    table = config.int8_ranges
    full = config.dimension
    if renormalized or dim == full:
        key = f"{'unit' if unit_length else 'raw'}:{dim}"
        found = table.get(key)
    else:  # the first dims of the full-size vectors (not normalised again): the first columns of their ranges
        key = f"{'unit' if unit_length else 'raw'}:{full}"
        found = table.get(key)
        found = None if found is None else [row[:dim] for row in found]
    if found is None:
        sizes = sorted({int(k.split(":")[1]) for k in table if k.startswith("unit:")}, reverse=True)
        known = f"it has them for unit vectors of {sizes} dimensions and raw ones" if table else "it records none"
        raise InputValueError(
            f"precision int8/uint8 needs ranges, and this artifact has none for "
            f"{'unit' if unit_length else 'unnormalised'} {dim}-dimensional vectors ({known}): pass "
            "ranges=[mins, maxs] (never taken from the request's own vectors), or export with "
            "--matryoshka-dims listing that size"
        )
    return np.asarray(found, dtype=np.float32)


def check_long(long: str | None, stride: Any, window: int) -> int | None:
    """``long`` and ``stride`` → the windows' overlap in tokens, or None to truncate: "chunk" splits text past
    ``window`` tokens into windows overlapping by ``stride`` tokens (default an eighth of the window)."""
    long = "truncate" if long is None else long
    if long not in LONG_MODES:
        raise InputValueError(f"long must be one of {', '.join(LONG_MODES)}, got {long!r}")
    if long == "truncate":
        if stride is not None:
            raise InputValueError("stride is for long='chunk' (overlapping windows); the text is truncated otherwise")
        return None
    overlap = window // 8 if stride is None else check_int(stride, "stride", 0)
    if overlap >= window // 2:
        raise InputValueError(f"stride must be less than half the {window}-token window, got {overlap}")
    return overlap


def weighted_mean(vectors: list[Array], weights: list[int]) -> Array:
    """A long document's vector from its windows' (before any normalisation): their mean, each weighted by its
    count of non-special tokens (a token in an overlap counts in each window that holds it)."""
    if len(vectors) == 1:
        return vectors[0]  # the same bits as a text that fits
    w = np.asarray(weights, dtype=np.float64)
    mean = (np.stack(vectors).astype(np.float64) * w[:, None]).sum(axis=0) / max(w.sum(), 1.0)
    out: Array = mean.astype(np.float32)
    return out


def output_shape(dimension: int | None, truncate_dim: int | None, precision: str | None) -> tuple[int, Any]:
    """(width, dtype) of a call's vectors: what an empty call's (0, width) array is."""
    dim = truncate_dim or dimension or 0
    precision = precision or "float32"
    width = (dim + 7) // 8 if precision in ("binary", "ubinary") else dim
    return width, DTYPES.get(precision, np.float32)
