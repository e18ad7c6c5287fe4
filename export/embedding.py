"""What makes a sentence-transformers model's embedding, read at export into the manifest's ``embedding``.

The runtime pools in numpy from the exported graph's ``last_hidden_state``; this records how: the
Pooling module's modes, whether a Normalize module follows, the prompts, and the model's
``max_seq_length`` (which may be shorter than the position limit), the Matryoshka sizes the export was told,
and int8/uint8 ranges from a calibration corpus. sentence-transformers itself reads
the folder (``modules.json`` and each module's config, in every format it has used), so the manifest
says what ``SentenceTransformer(...).encode`` does, not what a hand-written parser guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from onnxpipe.errors import OnnxPipeError

# The modules the runtime reproduces; any other (Dense, LayerNorm, a router, ...) is refused by name.
RUNTIME_MODULES = ("Transformer", "Pooling", "Normalize")


def is_sentence_transformers(source: str | Path, revision: str | None) -> bool:
    local = Path(source).expanduser()
    if local.is_dir():
        return (local / "modules.json").is_file()
    try:
        from huggingface_hub import file_exists

        return file_exists(str(source), "modules.json", revision=revision)
    except Exception:  # offline or no such repo: the config load before this already said so
        return False


def sentence_transformers_config(
    source: str | Path,
    revision: str | None,
    max_length: int,
    matryoshka_dims: Sequence[int] = (),
    sparse: bool = False,
) -> dict:
    """The manifest's ``embedding`` entry. A checkpoint that is not a sentence-transformers model gets mean
    pooling without normalisation (the usual default), and the entry says that it was not read from a model.
    ``matryoshka_dims``: the sizes the model was trained to be cut to (no config field says so).
    ``sparse``: a SPLADE model's (:func:`splade_config`).

    A little over 60 lines: one reading of each sentence-transformers module file, in the order the folder lists them."""
    plain = not is_sentence_transformers(source, revision)
    if sparse:
        if matryoshka_dims:
            raise OnnxPipeError("--matryoshka-dims is for dense sentence embeddings, not sparse ones")
        return splade_config(source, revision, max_length, plain)
    entry = {
        "pooling": ["mean"],
        "normalize": False,
        "prompts": {},
        "default_prompt_name": None,
        "include_prompt": True,
        "max_seq_length": max_length,
        "dimension": None,
        "from": "default (no modules.json: not a sentence-transformers model)",
    }
    if plain and not matryoshka_dims:  # no int8 ranges then (precision int8 takes the caller's): not worth the time
        from transformers import AutoConfig

        # mean pooling keeps the hidden width: recorded so that truncate_dim is checked before a run
        hidden = getattr(AutoConfig.from_pretrained(str(source), revision=revision), "hidden_size", None)
        return {**entry, "dimension": int(hidden) if hidden else None}
    from sentence_transformers import SentenceTransformer

    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    # A plain checkpoint is wrapped as the entry above says (Transformer → mean Pooling), as sentence-transformers does.
    model = SentenceTransformer(str(source), device="cpu", revision=revision)
    if plain:
        model.max_seq_length = max_length
        return {**entry, "dimension": int(embedding_dimension(model)), **embedding_options(model, matryoshka_dims)}
    kinds = [type(m).__name__ for m in model]
    extra = [k for k in kinds if k not in RUNTIME_MODULES]
    if extra or kinds[:2] != ["Transformer", "Pooling"]:
        raise OnnxPipeError(
            f"{source} is a sentence-transformers model with modules {kinds}; onnxpipe reproduces "
            f"Transformer → Pooling [→ Normalize] only (not {', '.join(extra) or 'this order'})"
        )
    pooling = model[1]
    modes = [pooling.pooling_mode] if isinstance(pooling.pooling_mode, str) else list(pooling.pooling_mode)
    limit = min(int(model.max_seq_length or max_length), max_length)
    model.max_seq_length = limit  # the calibration runs cut where the runtime cuts
    return {
        "pooling": modes,
        "normalize": "Normalize" in kinds,
        "prompts": dict(model.prompts or {}),
        "default_prompt_name": model.default_prompt_name,
        "include_prompt": bool(pooling.include_prompt),
        "max_seq_length": limit,
        "dimension": int(embedding_dimension(model)),
        "from": "modules.json",
        **embedding_options(model, matryoshka_dims),
    }


def splade_config(source: str | Path, revision: str | None, max_length: int, plain: bool) -> dict:
    """A SPLADE model's entry: its SpladePooling's strategy and activation as one pooling mode
    (``splade-max-relu``), read by sentence-transformers' SparseEncoder; a plain MLM checkpoint gets SPLADE's
    max and ReLU, as ``SparseEncoder`` builds on one."""
    entry: dict = {"prompts": {}, "default_prompt_name": None, "include_prompt": True, "dimension": None}
    if plain:
        return {
            **entry,
            "pooling": ["splade-max-relu"],
            "normalize": False,
            "max_seq_length": max_length,
            "from": "default (no modules.json: SPLADE max pooling, ReLU)",
        }
    from sentence_transformers import SparseEncoder

    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    model = SparseEncoder(str(source), device="cpu", revision=revision)
    kinds = [type(m).__name__ for m in model]
    fill_mask = getattr(model[0], "transformer_task", "fill-mask") == "fill-mask"
    if kinds[1:] != ["SpladePooling"] or kinds[0] not in ("Transformer", "MLMTransformer") or not fill_mask:
        raise OnnxPipeError(
            f"{source} is a sentence-transformers model with modules {kinds}; onnxpipe's sparse-embeddings "
            "reproduces a fill-mask Transformer (or MLMTransformer) → SpladePooling only"
        )
    pooling = model[1]
    return {
        **entry,
        "pooling": [f"splade-{pooling.pooling_strategy}-{pooling.activation_function}"],
        "normalize": False,
        "max_seq_length": min(int(model.max_seq_length or max_length), max_length),
        "from": "modules.json",
    }


def embedding_options(model, matryoshka_dims: Sequence[int]) -> dict:
    """The Matryoshka sizes (checked) and the int8/uint8 ranges of each vector form, computed once on the
    bundled calibration corpus as ``quantize_embeddings(calibration_embeddings=...)`` computes them, so that
    no request's ranges depend on its own batch. Keys: ``unit:<dims>`` (unit vectors at the full size and
    at each Matryoshka size, truncated then normalised) and ``raw:<dims>`` (pooled, not normalised)."""
    from sentence_transformers import SentenceTransformer

    from .quantize import read_texts

    dimension = int(embedding_dimension(model))
    dims = sorted({int(d) for d in matryoshka_dims}, reverse=True)
    bad = [d for d in dims if not 1 <= d <= dimension]
    if bad:
        raise OnnxPipeError(f"matryoshka dims {bad} are outside this model's 1..{dimension} dimensions")
    texts, _, name = read_texts(None)
    # The pooled vectors before any Normalize module: every form below is computed from them.
    prefix = SentenceTransformer(modules=[model[0], model[1]], device="cpu")
    raw = prefix.encode(texts, convert_to_numpy=True).astype(np.float32)
    ranges = {f"raw:{dimension}": raw}
    for d in [dimension, *dims]:
        cut = raw[:, :d]
        ranges[f"unit:{d}"] = cut / np.maximum(np.linalg.norm(cut, axis=1, keepdims=True), 1e-12)
    return {
        "matryoshka_dims": dims,
        "int8_ranges": {k: np.vstack((v.min(axis=0), v.max(axis=0))).tolist() for k, v in ranges.items()},
        "calibration": f"{name} ({len(texts)} texts)",
    }


def embedding_dimension(model) -> int:
    # sentence-transformers 5.x renamed get_sentence_embedding_dimension (the old name warns).
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return get()
