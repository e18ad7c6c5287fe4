"""The load stage: a checkpoint (hub id or folder) → its PyTorch model with the task's head, its fast tokenizer,
the longest input it takes, and (sentence-transformers folders) its pooling and prompts.

A checkpoint the runtime could not reproduce is refused here, before anything is exported: a decoder, an
architecture optimum cannot export for the task, a head without trained weights, a slow-only tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnxpipe.errors import InputValueError
from onnxpipe.tasks import BASE, TaskSpec

from .embedding import sentence_transformers_config
from .errors import ExportError, Log
from .manifest import folder_hash

# Encoders only: decoder classifiers (gpt2, llama, ...) pool the last non-pad token and want other
# inputs; they are not what this runtime's tasks are built for.
ENCODERS = {
    "albert",
    "bert",
    "big_bird",
    "camembert",
    "convbert",
    "data2vec-text",
    "deberta",
    "deberta-v2",
    "distilbert",
    "electra",
    "flaubert",
    "ibert",
    "longformer",
    "megatron-bert",
    "mobilebert",
    "modernbert",
    "mpnet",
    "nystromformer",
    "rembert",
    "roberta",
    "roformer",
    "squeezebert",
    "xlm",
    "xlm-roberta",
}


@dataclass
class Loaded:
    """What the later stages build from: the model and tokenizer, and what the manifest records of them."""

    model: Any
    tokenizer: Any
    source: dict  # where the checkpoint came from (hub id + commit, or folder hash)
    max_length: int  # the longest input, in tokens
    embedding: dict | None  # sentence-transformers' pooling, prompts and limits; None for other heads


def load(
    source: str | Path, revision: str | None, spec: TaskSpec, matryoshka_dims: tuple[int, ...], log: Log
) -> Loaded:
    """The checkpoint loaded for ``spec`` and checked for what its head needs (a mask token for fill-mask,
    a sentence-transformers folder for the Matryoshka sizes)."""
    log(f"loading {source}")
    model, tokenizer, info = load_checkpoint(source, revision, spec)
    max_length = position_limit(model, tokenizer)
    if tokenizer.pad_token is None:  # as transformers: single inputs run, batches are refused with its words
        log(f"{source}'s tokenizer has no pad token: the artifact runs one input at a time (batch_size 1)")
    if spec.head.needs_mask_token and tokenizer.mask_token is None:
        raise ExportError(f"{source}'s tokenizer has no mask token, so fill-mask cannot run")
    embedding = None
    if spec.head.sentence_transformers:
        embedding = sentence_transformers_config(source, revision, max_length, matryoshka_dims, sparse=spec.head.sparse)
    if matryoshka_dims and embedding is None:
        raise InputValueError(f"--matryoshka-dims is for sentence embeddings; {spec.name} exports no embedding")
    return Loaded(model, tokenizer, info, max_length, embedding)


def load_checkpoint(source: str | Path, revision: str | None, spec: TaskSpec):
    """The PyTorch model with ``spec``'s head, its fast tokenizer, and where they came from (hub id + commit,
    or folder hash). A checkpoint without trained weights for that head is refused: transformers would fill
    them at random, and the export would be a confident wrong answer."""
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    local = Path(source).expanduser()
    kwargs = {"revision": revision} if revision else {}
    try:
        config = AutoConfig.from_pretrained(str(source), **kwargs)
    except (OSError, ValueError) as e:
        where = "the folder" if local.exists() else "the hub id (is a hub reachable?)"
        raise ExportError(f"cannot load a config from {source}: check {where}. {e}") from e
    supported = supported_architectures(spec.optimum_task)
    if config.model_type not in supported:
        raise ExportError(
            f"unsupported architecture {config.model_type!r} for {spec.name}: onnxpipe exports encoder "
            f"models ({', '.join(supported)})"
        )
    auto = getattr(transformers, spec.auto_model)
    try:
        model, info = auto.from_pretrained(str(source), output_loading_info=True, **kwargs)
    except (OSError, ValueError) as e:  # no weights file (an ONNX folder?), or no such head for the config
        raise ExportError(f"cannot load a PyTorch {spec.auto_model} ({spec.name}) from {source}: {e}") from e
    # The pooler is not part of last_hidden_state, and position_ids are buffers, not weights.
    missing = [
        k
        for k in info["missing_keys"]
        if "position_ids" not in k and not (spec.head is BASE and k.startswith("pooler."))
    ]
    if missing:
        raise ExportError(
            f"{source} has no trained {spec.head.name} head for {spec.name} (missing weights: "
            f"{', '.join(sorted(missing)[:4])}{' ...' if len(missing) > 4 else ''}): export it for "
            f"the task it was trained for, or a checkpoint fine-tuned for {spec.name}"
        )
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(source), use_fast=True, **kwargs)
    if not tokenizer.is_fast:
        raise ExportError(f"{source} has no fast tokenizer (tokenizer.json), which the runtime needs")
    if local.is_dir():
        info = {"kind": "local", "name_or_path": str(local.resolve()), "content_sha256": folder_hash(local)}
    else:
        info = {
            "kind": "hub",
            "name_or_path": str(source),
            "revision": getattr(config, "_commit_hash", None) or revision or "main",
        }
    return model, tokenizer, info


def supported_architectures(optimum_task: str = "text-classification") -> list[str]:
    """Encoder architectures that optimum's ONNX exporter can export for ``optimum_task``."""
    import optimum.exporters.onnx.model_configs  # noqa: F401  (fills the TasksManager registry)
    from optimum.exporters.tasks import TasksManager

    exportable = TasksManager.get_supported_model_type_for_task(optimum_task, exporter="onnx")
    return sorted(set(exportable) & ENCODERS)


def position_limit(model, tokenizer) -> int:
    """The longest input the model takes: its position table (less RoBERTa-style offsets) and the
    tokenizer's own model_max_length, whichever is smaller."""
    limit = getattr(model.config, "max_position_embeddings", None) or 512
    embeddings = getattr(model.base_model, "embeddings", None)
    # RoBERTa-style embeddings number positions from padding_idx + 1, so that many slots are unusable.
    if embeddings is not None and getattr(embeddings, "padding_idx", None) is not None:
        limit -= embeddings.padding_idx + 1
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < limit:
        limit = tok_max
    return int(limit)
