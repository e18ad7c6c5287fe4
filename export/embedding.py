"""What makes a sentence-transformers model's embedding, read at export into the manifest's ``embedding``.

The runtime pools in numpy from the exported graph's ``last_hidden_state``; this records how: the
Pooling module's modes, whether a Normalize module follows, the prompts, and the model's
``max_seq_length`` (which may be shorter than the position limit). sentence-transformers itself reads
the folder (``modules.json`` and each module's config, in every format it has used), so the manifest
says what ``SentenceTransformer(...).encode`` does, not what a hand-written parser guessed.
"""

from __future__ import annotations

import logging
from pathlib import Path

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


def sentence_transformers_config(source: str | Path, revision: str | None, max_length: int) -> dict:
    """The manifest's ``embedding`` entry. A checkpoint that is not a sentence-transformers model gets mean
    pooling without normalisation (the usual default), and the entry says that it was not read from a model."""
    if not is_sentence_transformers(source, revision):
        return {
            "pooling": ["mean"],
            "normalize": False,
            "prompts": {},
            "default_prompt_name": None,
            "include_prompt": True,
            "max_seq_length": max_length,
            "dimension": None,
            "from": "default (no modules.json: not a sentence-transformers model)",
        }
    from sentence_transformers import SentenceTransformer

    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    model = SentenceTransformer(str(source), device="cpu", revision=revision)
    kinds = [type(m).__name__ for m in model]
    extra = [k for k in kinds if k not in RUNTIME_MODULES]
    if extra or kinds[:2] != ["Transformer", "Pooling"]:
        raise OnnxPipeError(
            f"{source} is a sentence-transformers model with modules {kinds}; onnxpipe reproduces "
            f"Transformer → Pooling [→ Normalize] only (not {', '.join(extra) or 'this order'})"
        )
    pooling = model[1]
    modes = [pooling.pooling_mode] if isinstance(pooling.pooling_mode, str) else list(pooling.pooling_mode)
    limit = model.max_seq_length or max_length
    return {
        "pooling": modes,
        "normalize": "Normalize" in kinds,
        "prompts": dict(model.prompts or {}),
        "default_prompt_name": model.default_prompt_name,
        "include_prompt": bool(pooling.include_prompt),
        "max_seq_length": min(int(limit), max_length),
        "dimension": int(embedding_dimension(model)),
        "from": "modules.json",
    }


def embedding_dimension(model) -> int:
    # sentence-transformers 5.x renamed get_sentence_embedding_dimension (the old name warns).
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return get()
