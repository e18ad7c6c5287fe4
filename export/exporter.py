"""Checkpoint → artifact folder: export with optimum, optionally fuse and quantize, validate, then write.

Everything is built in a temporary folder beside OUTDIR and moved into place only after every
variant has been checked against PyTorch, so a failed export never leaves a half-written artifact
and never destroys a previous one.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import torch

from onnxpipe.artifact import VARIANT_PREFERENCE, load_artifact
from onnxpipe.errors import OnnxPipeError
from onnxpipe.tasks import canonical_task
from onnxpipe.tokenize import TextEncoder

from . import SUPPORTED_TASKS
from .manifest import folder_hash, write_manifest
from .validate import FP32_MAX_GAP, SAMPLES, compare, onnx_logits, torch_logits
from .variants import FILES, QUANTIZE_CHOICES, UnsupportedArchitecture, optimize_graph, quantize_int8

Log = Callable[[str], None]

# Encoders only: decoder classifiers (gpt2, llama, ...) pool the last non-pad token and want other
# inputs; they are not what this runtime's tasks are built for.
ENCODERS = {"albert", "bert", "big_bird", "camembert", "convbert", "data2vec-text", "deberta", "deberta-v2",
            "distilbert", "electra", "flaubert", "ibert", "longformer", "megatron-bert", "mobilebert",
            "modernbert", "mpnet", "nystromformer", "rembert", "roberta", "roformer", "squeezebert", "xlm",
            "xlm-roberta"}


class ExportError(OnnxPipeError):
    """The checkpoint cannot be exported, or the exported graph does not match PyTorch."""


def export(source: str | Path, outdir: str | Path, task: str = "text-classification", *, optimize: bool = False,
           quantize: str | None = None, revision: str | None = None, opset: int | None = None,
           overwrite: bool = False, log: Log | None = None, describe_source: dict | None = None) -> Path:
    """Export ``source`` (hub id or local checkpoint folder) into the artifact folder ``outdir``.

    describe_source replaces the manifest's account of where the checkpoint came from, for callers
    that built it themselves (the default model: base package + delta).
    """
    log = log or (lambda msg: None)
    task = canonical_task(task)
    if task not in SUPPORTED_TASKS:
        raise ValueError(f"task {task!r} cannot be exported yet: supported {', '.join(SUPPORTED_TASKS)}")
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"quantize must be one of {QUANTIZE_CHOICES} or None, got {quantize!r}")
    outdir = Path(outdir).expanduser().resolve()
    if outdir.exists() and (not outdir.is_dir() or any(outdir.iterdir())) and not overwrite:
        raise ExportError(f"{outdir} already exists and is not empty: choose another folder or pass "
                          "overwrite=True (--overwrite)")

    log(f"loading {source}")
    model, tokenizer, source_info = load_checkpoint(source, revision)
    max_length = position_limit(model, tokenizer)
    if tokenizer.pad_token is None:
        raise ExportError(f"{source}'s tokenizer has no pad token, so batches cannot be padded")

    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.partial-", dir=outdir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the artifact is meant to be shared
    try:
        variants = build_variants(model, tokenizer, tmp, max_length, optimize, quantize, opset, log)
        write_manifest(
            tmp,
            task=task,
            source=describe_source or source_info,
            model_type=model.config.model_type,
            config={"id2label": {str(k): v for k, v in model.config.id2label.items()},
                    "problem_type": model.config.problem_type, "num_labels": model.config.num_labels},
            tokenizer={"file": "tokenizer.json", "max_length": max_length,
                       "pad_token": tokenizer.pad_token, "pad_id": tokenizer.pad_token_id},
            opset=onnx_opset(tmp / FILES["fp32"]),
            variants=variants,
            default_variant=next(v for v in VARIANT_PREFERENCE if v in variants),
        )
        artifact = load_artifact(tmp)  # the runtime's own reader must accept what was written
        artifact.verify(*artifact.manifest["files"])
        replace_folder(tmp, outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = ", ".join(f"{name}: {v['file']}" for name, v in variants.items())
    log(f"wrote {outdir} ({files})")
    return outdir


def load_checkpoint(source: str | Path, revision: str | None):
    """The PyTorch model, its fast tokenizer and where they came from (hub id + commit, or folder hash)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    local = Path(source).expanduser()
    kwargs = {"revision": revision} if revision else {}
    try:
        config = AutoConfig.from_pretrained(str(source), **kwargs)
    except (OSError, ValueError) as e:
        where = "the folder" if local.exists() else "the hub id (is a hub reachable?)"
        raise ExportError(f"cannot load a config from {source}: check {where}. {e}") from e
    if config.model_type not in supported_architectures():
        raise ExportError(f"unsupported architecture {config.model_type!r}: onnxpipe exports encoder models "
                          f"({', '.join(supported_architectures())})")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(source), **kwargs).eval()
    except (OSError, ValueError) as e:  # no weights file (an ONNX folder?), or no such head for the config
        raise ExportError(f"cannot load a PyTorch sequence-classification model from {source}: {e}") from e
    tokenizer = AutoTokenizer.from_pretrained(str(source), use_fast=True, **kwargs)
    if not tokenizer.is_fast:
        raise ExportError(f"{source} has no fast tokenizer (tokenizer.json), which the runtime needs")
    if local.is_dir():
        info = {"kind": "local", "name_or_path": str(local.resolve()), "content_sha256": folder_hash(local)}
    else:
        info = {"kind": "hub", "name_or_path": str(source),
                "revision": getattr(config, "_commit_hash", None) or revision or "main"}
    return model, tokenizer, info


def supported_architectures() -> list[str]:
    """Encoder architectures that optimum's ONNX exporter can export for text classification."""
    import optimum.exporters.onnx.model_configs  # noqa: F401  (fills the TasksManager registry)
    from optimum.exporters.tasks import TasksManager

    exportable = TasksManager.get_supported_model_type_for_task("text-classification", exporter="onnx")
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


def build_variants(model, tokenizer, folder: Path, max_length: int, optimize: bool, quantize: str | None,
                   opset: int | None, log: Log) -> dict[str, dict]:
    from optimum.exporters.onnx import onnx_export_from_model

    log("exporting the ONNX graph with optimum")
    logging.getLogger("optimum").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        # The tracer's notes on constants and the legacy exporter are expected for these graphs;
        # the validation below is what says whether the export is right.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        onnx_export_from_model(model, folder, task="text-classification", opset=opset, do_validation=False)
    tokenizer.save_pretrained(folder)
    encoder = TextEncoder(folder / "tokenizer.json", max_length, tokenizer.pad_token_id, tokenizer.pad_token)
    reference, ref_ids = torch_logits(model, tokenizer, list(SAMPLES), max_length)

    def check(name: str, strict: bool, **extra) -> dict:
        logits, ids = onnx_logits(folder / FILES[name], encoder, list(SAMPLES))
        if ids != ref_ids:
            raise ExportError("the exported tokenizer.json and the transformers tokenizer give different token "
                              "ids on the sample sentences; the artifact would not reproduce the checkpoint")
        figures = compare(reference, logits)
        log(f"{name}: largest logit gap vs PyTorch {figures['max_logit_gap']:.2e}, "
            f"label agreement {figures['label_agreement']:.0%}")
        if strict and figures["max_logit_gap"] > FP32_MAX_GAP:
            raise ExportError(f"the {name} graph differs from PyTorch by {figures['max_logit_gap']:.2e} "
                              f"(limit {FP32_MAX_GAP:g}) on the sample sentences; not writing the artifact")
        return {"file": FILES[name], **extra, "validation": figures}

    variants = {"fp32": check("fp32", strict=True)}
    if optimize:
        log("fusing attention, layer norms and GELU with onnxruntime's transformer optimizer")
        try:
            fused = optimize_graph(folder / FILES["fp32"], folder / FILES["optimized"], model.config)
        except UnsupportedArchitecture as e:
            raise ExportError(f"--optimize: {e}") from e
        variants["optimized"] = check("optimized", strict=True, fused_operators=fused)
    if quantize == "int8":
        base = "optimized" if optimize else "fp32"
        log(f"quantizing the {base} graph to dynamic int8 (per-channel weights)")
        info = quantize_int8(folder / FILES[base], folder / FILES["int8"])
        variants["int8"] = check("int8", strict=False, quantization=info)
    return variants


def onnx_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def replace_folder(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; an existing ``dst`` is removed only once ``src`` is in place."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{src.name[-8:]}")
        dst.rename(old)
    src.rename(dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
