"""Checkpoint → artifact folder: the stages in order, as one transaction over a temporary folder.

:mod:`.load` (the checkpoint and what its head needs) → :mod:`.graph` (optimum's ONNX export) →
:mod:`.optimize` (fusions, the last-layer cut) → :mod:`.int8` (quantization, an accuracy budget) →
:mod:`.write` (manifest, default variant, the move into place). Every variant is checked against PyTorch
here (:class:`Checks`) as soon as it is built; nothing reaches OUTDIR until every check has passed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from onnxpipe.artifact import load_artifact
from onnxpipe.session import Session
from onnxpipe.tasks import DEFAULT_TASK, TASKS, TaskSpec, canonical_task
from onnxpipe.tokenize import TextEncoder

from .errors import ExportError, Log
from .external import externalize
from .graph import export_graph
from .int8 import build_int8, int8_options
from .load import ENCODERS, Loaded, load, load_checkpoint, position_limit, supported_architectures
from .manifest import write_manifest
from .optimize import optimize_variant
from .quantize import Int8Options
from .validate import FP32_MAX_GAP, batch_invariance, compare, graph_logits, onnx_outputs, samples, torch_outputs
from .variants import FILES
from .write import check_outdir, choose_default, describe, partial_folder, replace_folder

# Names other modules and users import from here (the stages' own modules hold them now).
__all__ = [
    "ENCODERS",
    "ExportError",
    "choose_default",
    "export",
    "graph_logits",
    "load_checkpoint",
    "position_limit",
    "supported_architectures",
]

# Validation (and calibration) inputs run at most this long: the overlong sample still checks truncation, and a
# long-context model (ModernBERT's 8,192) is not checked with padded batches of 8k-token attention, which asked
# for over 24 GB. The runtime bounds its own runs (batching.MAX_RUN_AREA).
VALIDATION_TOKENS = 1024


def export(
    source: str | Path,
    outdir: str | Path,
    task: str = DEFAULT_TASK,
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
    spec = TASKS[canonical_task(task)]
    int8 = int8_options(quantize, spec)
    out = check_outdir(outdir, overwrite)
    loaded = load(source, revision, spec, matryoshka_dims, log)
    tmp = partial_folder(out)
    try:
        variants = build_variants(loaded, tmp, spec, optimize, int8, opset, log, one_row)
        externalize(tmp, [str(v["file"]) for v in variants.values()])
        write_manifest(tmp, describe(tmp, spec, loaded, variants, describe_source))
        artifact = load_artifact(tmp)  # the runtime's own reader must accept what was written
        artifact.verify(*artifact.manifest.files)
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = ", ".join(f"{name}: {v['file']}" for name, v in variants.items())
    log(f"wrote {out} ({files})")
    return out


def build_variants(
    loaded: Loaded,
    folder: Path,
    spec: TaskSpec,
    optimize: bool,
    quantize: Int8Options | None,
    opset: int | None,
    log: Log,
    one_row: bool = True,
) -> dict[str, dict]:
    """fp32, then (``optimize``) the fused graph, then (``quantize``) int8 from the best float graph, each
    checked as soon as it is written: the manifest's ``variants``."""
    export_graph(loaded.model, loaded.tokenizer, folder, spec, opset, log)
    checks = Checks(loaded, folder, spec, log)
    variants = {"fp32": checks.variant("fp32", strict=True)}
    if optimize:
        extra = optimize_variant(folder, loaded.model.config, spec, one_row, log)
        variants["optimized"] = checks.variant("optimized", strict=True, **extra)
    if quantize is not None:
        pooling = loaded.embedding["pooling"] if loaded.embedding else None
        base = "optimized" if optimize else "fp32"
        recipe = build_int8(folder, base, checks.encoder, quantize, log, pooling)
        if recipe is not None:
            cut = variants.get("optimized", {}).get("last_layer")
            inherited = {"last_layer": cut} if cut is not None else {}
            variants["int8"] = checks.variant("int8", strict=False, quantization=recipe, **inherited)
    return variants


class Checks:
    """Each variant's outputs against PyTorch's on the head's sample inputs (:mod:`.validate`), computed once."""

    def __init__(self, loaded: Loaded, folder: Path, spec: TaskSpec, log: Log):
        tokenizer = loaded.tokenizer
        length = min(loaded.max_length, VALIDATION_TOKENS)
        self.folder, self.outputs, self.log = folder, spec.outputs, log
        self.encoder = TextEncoder(folder / "tokenizer.json", length, tokenizer.pad_token_id, tokenizer.pad_token)
        self.items = samples(spec.head.samples, tokenizer)
        self.reference, self.ids = torch_outputs(loaded.model, tokenizer, self.items, length, spec.outputs)

    def variant(self, name: str, strict: bool, **extra: object) -> dict:
        """The manifest entry of variant ``name`` with its validation figures; ``strict`` (float graphs) refuses
        one further from PyTorch than FP32_MAX_GAP (relative to the largest output magnitude, or 1)."""
        session = Session(self.folder / FILES[name], threads=1)
        outputs, ids = onnx_outputs(session, self.encoder, self.items, self.outputs)
        if ids != self.ids:
            raise ExportError(
                "the exported tokenizer.json and the transformers tokenizer give different token "
                "ids on the sample inputs; the artifact would not reproduce the checkpoint"
            )
        figures = compare(self.reference, outputs)
        figures["batch_invariance"] = batch_invariance(session, self.encoder, self.items, self.outputs)
        agreement = (
            f"agreement {figures['agreement']:.2%}"
            if "agreement" in figures
            else f"lowest token cosine {figures['min_cosine']:.6f}"
        )
        self.log(
            f"{name}: largest {'/'.join(self.outputs)} gap vs PyTorch {figures['max_gap']:.2e}, {agreement}, "
            f"score gap alone vs batched {figures['batch_invariance']['max_score_gap']:.1e}"
        )
        if strict and figures["max_gap"] > FP32_MAX_GAP * figures["scale"]:
            raise ExportError(
                f"the {name} graph differs from PyTorch by {figures['max_gap']:.2e} (limit "
                f"{FP32_MAX_GAP:g} x {figures['scale']:.3g}, the largest output magnitude or 1) on the "
                "sample inputs; not writing the artifact"
            )
        return {"file": FILES[name], **extra, "validation": figures}
