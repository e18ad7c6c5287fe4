"""Checkpoint → artifact folder: export with optimum, optionally fuse and quantize, validate, then write.

Everything is built in a temporary folder beside OUTDIR and moved into place only after every
variant has been checked against PyTorch, so a failed export never leaves a half-written artifact
and never destroys a previous one.

Longer than 300 lines (by a few) because loading, building, validating and writing are one transaction
over the temporary folder.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from collections.abc import Callable

import torch

from onnxpipe.artifact import VARIANT_PREFERENCE, load_artifact
from onnxpipe.errors import OnnxPipeError
from onnxpipe.tasks import BASE, TASKS, TaskSpec, canonical_task
from onnxpipe.session import Session
from onnxpipe.tokenize import TextEncoder

from . import budget
from .embedding import sentence_transformers_config
from onnxpipe.manifest import EmbeddingInfo, Manifest, ModelConfig, TokenizerInfo

from .last_row import cut_file
from .manifest import folder_hash, write_manifest
from .quantize import CALIBRATION_TEXTS, Int8Options, canonical_mode, quantizable_nodes, quantize_graph, read_texts
from .validate import (
    BATCH_MAX_GAP,
    FP32_MAX_GAP,
    batch_invariance,
    compare,
    graph_logits,
    onnx_outputs,
    samples,
    torch_outputs,
)
from .variants import FILES, UnsupportedArchitecture, optimize_graph

Log = Callable[[str], None]

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


class ExportError(OnnxPipeError):
    """The checkpoint cannot be exported, or the exported graph does not match PyTorch."""


def export(
    source: str | Path,
    outdir: str | Path,
    task: str = "text-classification",
    *,
    optimize: bool = False,
    quantize: str | Int8Options | None = None,
    revision: str | None = None,
    opset: int | None = None,
    overwrite: bool = False,
    log: Log | None = None,
    describe_source: dict | None = None,
    one_row: bool = True,
    matryoshka_dims: tuple[int, ...] = (),
) -> Path:
    """Export ``source`` (hub id or local checkpoint folder) into the artifact folder ``outdir``.

    describe_source replaces the manifest's account of where the checkpoint came from, for callers
    that built it themselves (the default model: base package + delta).
    quantize: a mode ("int8" = "static", "dynamic", "dynamic-per-tensor", "blockwise8") or Int8Options.
    one_row: with ``optimize``, heads that read one position get the last-layer cut (:mod:`.last_row`).
    matryoshka_dims: sentence embeddings' sizes the model was trained to be cut to (recorded in the manifest).
    """
    log = log or (lambda msg: None)
    task = canonical_task(task)
    spec = TASKS[task]
    if isinstance(quantize, str):
        quantize = Int8Options(mode=quantize)
    if quantize is not None:
        if not isinstance(quantize, Int8Options):
            raise TypeError(f"quantize must be a mode name, Int8Options or None, got {type(quantize).__name__}")
        quantize = dataclasses.replace(quantize, mode=canonical_mode(quantize.mode))
        if quantize.max_drop is not None and quantize.eval_data is None:
            raise ValueError("an accuracy budget (max_drop, --max-drop) needs data to measure it on (--eval DATA)")
        if quantize.max_drop is not None and spec.head.budget_metric is None:
            raise ValueError(
                f"an accuracy budget (--max-drop) is measured on labels or sentence vectors; {task} "
                "has neither yet: quantize without it and read the agreement the manifest records"
            )
    outdir = Path(outdir).expanduser().resolve()
    if outdir.exists() and (not outdir.is_dir() or any(outdir.iterdir())) and not overwrite:
        raise ExportError(
            f"{outdir} already exists and is not empty: choose another folder or pass overwrite=True (--overwrite)"
        )

    log(f"loading {source}")
    model, tokenizer, source_info = load_checkpoint(source, revision, spec)
    max_length = position_limit(model, tokenizer)
    if tokenizer.pad_token is None:  # as transformers: single inputs run, batches are refused with its words
        log(f"{source}'s tokenizer has no pad token: the artifact runs one input at a time (batch_size 1)")
    if spec.head.needs_mask_token and tokenizer.mask_token is None:
        raise ExportError(f"{source}'s tokenizer has no mask token, so fill-mask cannot run")
    embedding = (
        sentence_transformers_config(
            source, revision, max_length, matryoshka_dims, sparse=spec.head.name.startswith("sparse")
        )
        if spec.head.sentence_transformers
        else None
    )
    if matryoshka_dims and embedding is None:
        raise ValueError(f"--matryoshka-dims is for sentence embeddings; {task} exports no embedding")

    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.partial-", dir=outdir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the artifact is meant to be shared
    try:
        pooling = embedding["pooling"] if embedding else None
        variants = build_variants(
            model, tokenizer, tmp, max_length, spec, optimize, quantize, opset, log, pooling, one_row
        )
        write_manifest(
            tmp,
            Manifest(
                task=task,
                head=spec.head.name,
                source=describe_source or source_info,
                model_type=model.config.model_type,
                config=ModelConfig(
                    id2label={int(k): v for k, v in model.config.id2label.items()},
                    label2id={k: int(v) for k, v in model.config.label2id.items()},
                    problem_type=model.config.problem_type,
                    num_labels=model.config.num_labels,
                    return_all_scores=getattr(model.config, "return_all_scores", None),
                ),
                tokenizer=TokenizerInfo(
                    max_length=max_length,
                    pad_token=tokenizer.pad_token,
                    pad_id=tokenizer.pad_token_id,
                    mask_token=tokenizer.mask_token,
                    mask_id=tokenizer.mask_token_id,
                    unk_token=tokenizer.unk_token,
                    cls_token=tokenizer.cls_token,
                    padding_side=tokenizer.padding_side,
                    clean_up_tokenization_spaces=bool(tokenizer.clean_up_tokenization_spaces),
                ),
                embedding=EmbeddingInfo.from_dict(embedding) if embedding else None,
                opset=onnx_opset(tmp / FILES["fp32"]),
                variants=variants,
                default_variant=choose_default(variants),
            ),
        )
        artifact = load_artifact(tmp)  # the runtime's own reader must accept what was written
        artifact.verify(*artifact.manifest.files)
        replace_folder(tmp, outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = ", ".join(f"{name}: {v['file']}" for name, v in variants.items())
    log(f"wrote {outdir} ({files})")
    return outdir


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


VALIDATION_TOKENS = 1024


def build_variants(
    model,
    tokenizer,
    folder: Path,
    max_length: int,
    spec: TaskSpec,
    optimize: bool,
    quantize: Int8Options | None,
    opset: int | None,
    log: Log,
    pooling: list[str] | None = None,
    one_row: bool = True,
) -> dict[str, dict]:
    from optimum.exporters.onnx import onnx_export_from_model

    log("exporting the ONNX graph with optimum")
    logging.getLogger("optimum").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        # The tracer's notes on constants and the legacy exporter are expected for these graphs;
        # the validation below is what says whether the export is right.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        onnx_export_from_model(model, folder, task=spec.optimum_task, opset=opset, do_validation=False)
    tokenizer.save_pretrained(folder)
    # Validation (and calibration) inputs run at most VALIDATION_TOKENS long: the overlong sample still checks
    # truncation, and a long-context model (ModernBERT's 8,192) is not checked with padded batches of 8k-token
    # attention, which asked for over 24 GB. The runtime bounds its own runs (batching.MAX_RUN_AREA).
    check_length = min(max_length, VALIDATION_TOKENS)
    encoder = TextEncoder(folder / "tokenizer.json", check_length, tokenizer.pad_token_id, tokenizer.pad_token)
    items = samples(spec.head.samples, tokenizer)
    reference, ref_ids = torch_outputs(model, tokenizer, items, check_length, spec.outputs)

    def check(name: str, strict: bool, **extra) -> dict:
        session = Session(folder / FILES[name], threads=1)
        outputs, ids = onnx_outputs(session, encoder, items, spec.outputs)
        if ids != ref_ids:
            raise ExportError(
                "the exported tokenizer.json and the transformers tokenizer give different token "
                "ids on the sample inputs; the artifact would not reproduce the checkpoint"
            )
        figures = compare(reference, outputs)
        figures["batch_invariance"] = batch_invariance(session, encoder, items, spec.outputs)
        agreement = (
            f"agreement {figures['agreement']:.2%}"
            if "agreement" in figures
            else f"lowest token cosine {figures['min_cosine']:.6f}"
        )
        log(
            f"{name}: largest {'/'.join(spec.outputs)} gap vs PyTorch {figures['max_gap']:.2e}, {agreement}, "
            f"score gap alone vs batched {figures['batch_invariance']['max_score_gap']:.1e}"
        )
        if strict and figures["max_gap"] > FP32_MAX_GAP * figures["scale"]:
            raise ExportError(
                f"the {name} graph differs from PyTorch by {figures['max_gap']:.2e} (limit "
                f"{FP32_MAX_GAP:g} x {figures['scale']:.3g}, the largest output magnitude or 1) on the "
                "sample inputs; not writing the artifact"
            )
        return {"file": FILES[name], **extra, "validation": figures}

    variants = {"fp32": check("fp32", strict=True)}
    if optimize:
        log("fusing attention, layer norms and GELU with onnxruntime's transformer optimizer")
        try:
            fused = optimize_graph(folder / FILES["fp32"], folder / FILES["optimized"], model.config)
        except UnsupportedArchitecture as e:
            raise ExportError(f"--optimize: {e}") from e
        extra: dict = {"fused_operators": fused}
        if one_row and spec.head.reads_one_row:
            extra["last_layer"] = cut_file(folder / FILES["optimized"])
            log(
                "last layer: queries and everything after attention on the row the head reads"
                if extra["last_layer"]["applied"]
                else f"last layer left whole: {extra['last_layer']['why']}"
            )
        variants["optimized"] = check("optimized", strict=True, **extra)
    if quantize is not None:
        recipe = build_int8(folder, "optimized" if optimize else "fp32", encoder, quantize, log, pooling)
        if recipe is not None:
            inherited = (
                {"last_layer": variants["optimized"]["last_layer"]}
                if "last_layer" in variants.get("optimized", {})
                else {}
            )
            variants["int8"] = check("int8", strict=False, quantization=recipe, **inherited)
    return variants


def build_int8(
    folder: Path, base: str, encoder: TextEncoder, opts: Int8Options, log: Log, pooling: list[str] | None = None
) -> dict | None:
    """Quantize the ``base`` graph; with a budget, keep nodes in float until it holds (None: nothing did).
    ``pooling`` (sentence embeddings) measures the budget as cosine to fp32's pooled vectors."""
    src, dst = folder / FILES[base], folder / FILES["int8"]
    texts, _, calibration = read_texts(opts.calibration, "train")
    texts = texts[:CALIBRATION_TEXTS]
    calibration = f"{calibration} ({len(texts)} texts)"
    recipes: list[dict] = []
    # One unpadded feed per text, so padding never enters a range; encoded once for every build.
    feeds = [encoder.collate([e]) for e in encoder.encode(texts)]

    def build(excluded: list[str]) -> Path:
        recipes.append(
            quantize_graph(
                src,
                dst,
                opts.mode,
                feeds=feeds,
                calibration_name=calibration,
                method=opts.method,
                alpha=opts.alpha,
                exclude=[*opts.exclude, *excluded],
                isa=opts.isa,
                reduce_range=opts.reduce_range,
            )
        )
        return dst

    log(
        f"quantizing the {base} graph: {opts.mode} int8"
        + (f", calibrated on {calibration}" if opts.mode == "static" else "")
    )
    if opts.max_drop is None:
        build([])
        return {**recipes[-1], **provenance(opts)}
    # A folder's train.tsv, as for calibration: recipes are chosen on training data, never on the dev split
    # that reports them. Texts that calibrated the graph are left out, so the budget is measured on unseen text.
    eval_texts, labels, eval_name = read_texts(opts.eval_data, "train")
    seen = set(texts)
    kept = [i for i, t in enumerate(eval_texts) if t not in seen]
    eval_texts, labels = [eval_texts[i] for i in kept], None if labels is None else [labels[i] for i in kept]
    log(f"measuring the int8 graph against fp32 on {eval_name} ({len(eval_texts)} texts)")
    reference = graph_logits(folder / FILES["fp32"], encoder, eval_texts, pooling=pooling)
    score = budget.scorer(reference, labels) if pooling is None else budget.cosine_scorer(reference)
    fitted = budget.fit(
        build,
        lambda path: score(graph_logits(path, encoder, eval_texts, pooling=pooling)),
        quantizable_nodes(src),
        opts.max_drop,
        log,
    )
    if fitted is None:
        dst.unlink(missing_ok=True)
        log(
            f"no int8 graph holds the budget of {opts.max_drop:g} points on {eval_name}, even with all but one "
            "node kept in float: the artifact gets no int8 variant and its default stays in float"
        )
        return None
    _, measured, excluded = fitted
    return {
        **recipes[-1],
        **provenance(opts),
        "budget": {
            "max_drop": opts.max_drop,
            "eval": f"{eval_name} ({len(eval_texts)} texts)",
            "measured": measured.figures(),
            "excluded_by_budget": excluded,
        },
    }


def provenance(opts: Int8Options) -> dict:
    return {**({"chosen_on": opts.chosen_on} if opts.chosen_on else {}), **({} if opts.auto else {"auto": False})}


def choose_default(variants: dict[str, dict]) -> str:
    """The fastest variant whose scores do not move with the batch (a server's batches must not change
    anyone's answer): int8 when its recipe is batch-invariant, else fused fp32, else fp32."""
    for name in VARIANT_PREFERENCE:
        v = variants.get(name)
        if v is None:
            continue
        invariance = v["validation"]["batch_invariance"]
        recipe_ok = v.get("quantization", {}).get("batch_invariant", True) and v.get("quantization", {}).get(
            "auto", True
        )
        if recipe_ok and invariance["max_score_gap"] <= BATCH_MAX_GAP and invariance["label_flips"] == 0:
            return name
    return "fp32"


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
