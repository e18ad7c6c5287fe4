"""``onnxpipe export``: a checkpoint (hub id or folder) to an artifact folder, or the embedded default built."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any
from collections.abc import Callable

from ..artifact import MANIFEST
from ..errors import INSTALL_EXPORT, InputValueError, OnnxPipeError
from ..tasks import DEFAULT_TASK
from ..serve.settings import non_negative
from .common import positive_int, with_default_model


def add(sub: Any) -> None:
    """The ``export`` sub-command's parser: source and folder, the variants to build, and the int8 options."""
    p = sub.add_parser("export", help="export a checkpoint (hub id or folder) to an artifact folder")
    p.add_argument("source", nargs="?", help="hub id or local checkpoint folder")
    p.add_argument("outdir", nargs="?", type=Path, help="artifact folder to write")
    p.add_argument(
        "--default",
        action="store_true",
        help=f"build the embedded default model of --task ({with_default_model()}) into the "
        "cache, and copy it to OUTDIR when one is given: onnxpipe export --default [--task T] [OUTDIR]",
    )
    p.add_argument("--task", default=DEFAULT_TASK, help=f"the pipeline task (default: {DEFAULT_TASK})")
    p.add_argument("--optimize", action="store_true", help="add onnxruntime's fused graph (model_optimized.onnx)")
    p.add_argument(
        "--whole-last-layer",
        action="store_true",
        help="with --optimize, keep every row of a classifier's last layer (by default it computes only the row "
        "its head reads: the same answer, less work)",
    )
    p.add_argument(
        "--matryoshka-dims",
        type=lambda v: tuple(positive_int(d) for d in v.split(",")),
        default=(),
        metavar="N,N,...",
        help="sentence embeddings: the sizes the model was trained to be cut to, e.g. 768,512,256 (recorded in "
        "the manifest; OpenAI's `dimensions` is honoured for these)",
    )
    add_int8_options(p.add_argument_group("int8 (model_quantized.onnx)"))
    p.add_argument("--revision", help="hub revision (branch, tag or commit)")
    p.add_argument("--opset", type=positive_int, help="ONNX opset (default: optimum's choice for the model)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTDIR if it exists")
    p.set_defaults(func=cmd_export)


def add_int8_options(q: Any) -> None:
    """The int8 variant's options: mode, calibration, smoothing, target ISA, and the accuracy budget."""
    q.add_argument(
        "--quantize",
        choices=["int8", "static", "dynamic", "dynamic-per-tensor", "blockwise8", "rowwise"],
        help="add an int8 graph: int8 = static (calibrated, batch-invariant: the default variant); "
        "dynamic scales per batch (never the default); blockwise8 = MatMulNBits 8-bit weights; "
        "rowwise = every encoder matmul int8 with per-row scales computed at run time (batch-invariant)",
    )
    q.add_argument(
        "--calibration",
        metavar="FILE_OR_DIR",
        help="text to calibrate static int8 on: a file (one text a line), a label<TAB>sentence TSV, "
        "or a folder with train.tsv (default: a bundled general English set)",
    )
    q.add_argument(
        "--calibration-method",
        choices=["minmax", "percentile"],
        default="minmax",
        help="activation range per tensor: min/max over the calibration text, or the 99.9th "
        "percentile of per-text extremes (default: minmax)",
    )
    q.add_argument(
        "--smooth",
        type=smoothing,
        default=0.8,
        metavar="ALPHA[,ALPHA...]",
        help="SmoothQuant strength moving activation outliers into weights, 0 to turn off (default 0.8); "
        "rowwise takes several (0,0.3,0.5,0.6,0.7,0.8,0.9: the defaults') and chooses one per activation",
    )
    # The rowwise levers both embedded defaults are built with (export/default_model/__init__.py), so that a user's
    # checkpoint can take the same recipe from the command line as from Int8Options.
    q.add_argument(
        "--rounding",
        choices=["nearest", "gptq"],
        default="nearest",
        help="rowwise: weights rounded to nearest, or by GPTQ to keep each product's output on the calibration text",
    )
    q.add_argument(
        "--damp",
        type=damping,
        default=0.01,
        metavar="F",
        help="rowwise GPTQ: fraction of the Hessian's mean diagonal added (default 0.01; more when calibration is short)",
    )
    q.add_argument("--asymmetric", action="store_true", help="rowwise: a weight zero point per output channel")
    q.add_argument(
        "--center", action="store_true", help="rowwise: LayerNorm outputs quantized less their beta (centred)"
    )
    q.add_argument(
        "--leftover",
        action="store_true",
        help="rowwise: each row's rounding leftover in a second int8 product (~16-bit activations, twice the work)",
    )
    q.add_argument(
        "--rotate",
        type=rotation_block,
        default=0,
        metavar="B",
        help="rowwise: each activation centred and turned by B x B Hadamard blocks before it is quantized "
        "(a power of two dividing the width, e.g. 128; one int8 product, about the leftover's accuracy)",
    )
    q.add_argument(
        "--fixed-scales",
        type=fixed_ratio,
        default=0.0,
        metavar="R",
        help="rowwise: one calibrated scale (one QuantizeLinear) for each activation whose simulated products err at "
        "most R times as much as with per-row scales; inf: every activation (default 0: none)",
    )
    q.add_argument(
        "--int8-word-table",
        action="store_true",
        help="rowwise: the word embedding table in int8, a scale per row (a quarter of its bytes, a little accuracy)",
    )
    q.add_argument(
        "--isa",
        choices=["auto", "avx2", "avx512", "avx512-vnni", "arm64"],
        default="auto",
        help="CPU the int8 graph is for, recorded in the manifest (default: this one, detected)",
    )
    q.add_argument(
        "--reduce-range",
        action="store_true",
        help="7-bit weights, onnxruntime's advice against u8 x s8 saturation on x86 without VNNI "
        "(off: on MiniLM-SST2 it lowered agreement with PyTorch)",
    )
    q.add_argument(
        "--exclude", action="append", default=[], metavar="NODE", help="keep this graph node in float (repeatable)"
    )
    q.add_argument(
        "--max-drop",
        type=float,
        metavar="POINTS",
        help="accuracy budget: keep nodes in float, most sensitive first, until the int8 graph loses "
        "at most POINTS accuracy (or agreement, unlabelled) against fp32 on --eval",
    )
    q.add_argument(
        "--eval",
        metavar="FILE_OR_DIR",
        help="data for --max-drop: a label<TAB>sentence TSV, a folder with train.tsv (calibration texts left "
        "out; dev is for reporting, never for choosing), or a text file",
    )


def smoothing(text: str) -> float | tuple[float, ...]:
    """``--smooth``: one strength, or several separated by commas (rowwise chooses one per activation)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or comma-separated numbers") from None
    if any(not 0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"smoothing strengths are between 0 and 1, got {text!r}")
    return values[0] if len(values) == 1 else values


def refused_below_zero(message: str) -> Callable[[str], float]:
    """An argparse type for a number of 0 or more (the serve settings' check), refused as ``message`` with the text
    given after it, in the flag's own words."""

    def parse(text: str) -> float:
        try:
            return non_negative(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"{message}, got {text!r}") from None

    return parse


# ``--damp``: GPTQ's damping, a fraction of its Hessian's mean diagonal.
damping = refused_below_zero("GPTQ damping is 0 or more")
# ``--fixed-scales``: how many times per-row scales' simulated error a fixed scale may err (inf: always).
fixed_ratio = refused_below_zero("--fixed-scales is a ratio of errors, 0 or more")


def rotation_block(text: str) -> int:
    """``--rotate``: 0 (none) or a power of two of at least 2, checked before anything is exported."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value and (value < 2 or value & (value - 1)):
        raise argparse.ArgumentTypeError(f"the rotation block is a power of two of at least 2 (or 0), got {text!r}")
    return value


def export_default(a: argparse.Namespace, log: Callable[[str], None]) -> int:
    """The embedded default of --task, built into the cache once; copied to OUTDIR (its one folder argument)."""
    import shutil

    from ..default import DEFAULT_MODELS, default_artifact_dir, ensure_default
    from ..tasks import canonical_task

    if a.source and a.outdir:
        raise InputValueError("--default takes one folder, OUTDIR (the default model is its own source)")
    out = Path(a.outdir or a.source) if (a.outdir or a.source) else None
    task = canonical_task(a.task)
    if task not in DEFAULT_MODELS:
        raise InputValueError(f"no default model for task {task!r} (defaults exist for {', '.join(DEFAULT_MODELS)})")
    path = default_artifact_dir(task)
    if a.overwrite and out is None and (path / MANIFEST).is_file():
        shutil.rmtree(path)  # rebuild the cached default
    if (path / MANIFEST).is_file():
        log(f"the default {task} model is already built: {path}")
    path = ensure_default(task, log=log)
    if out is not None:
        if out.exists() and (not out.is_dir() or any(out.iterdir())) and not a.overwrite:
            raise InputValueError(f"{out} already exists and is not empty: choose another folder or pass --overwrite")
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(path, out)
        path = out
    print(path)
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    def log(msg: str) -> None:
        print(f"onnxpipe: {msg}", file=sys.stderr, flush=True)

    try:
        import torch  # noqa: F401  (the one check that tells a runtime-only install apart)
        from onnxpipe.export import export
    except ImportError as e:
        raise OnnxPipeError(f"onnxpipe export needs the export extra (missing: {e.name}): {INSTALL_EXPORT}") from e
    if a.default:
        return export_default(a, log)
    if not (a.source and a.outdir):
        raise InputValueError("export needs SOURCE and OUTDIR (or --default)")
    int8 = None
    if a.quantize:
        from onnxpipe.export.quantize import Int8Options

        int8 = Int8Options(
            mode=a.quantize,
            calibration=a.calibration,
            method=a.calibration_method,
            alpha=a.smooth or None,
            rounding=a.rounding,
            asymmetric=a.asymmetric,
            center=a.center,
            residual="activations" if a.leftover else "",
            rotate=a.rotate,
            damp=a.damp,
            fixed=a.fixed_scales,
            word_table=a.int8_word_table,
            isa=a.isa,
            reduce_range=a.reduce_range,
            exclude=tuple(a.exclude),
            max_drop=a.max_drop,
            eval_data=a.eval,
        )
    elif a.max_drop is not None or a.eval or a.calibration:
        raise InputValueError("--max-drop, --eval and --calibration go with --quantize")
    print(
        export(
            a.source,
            a.outdir,
            a.task,
            optimize=a.optimize,
            quantize=int8,
            one_row=not a.whole_last_layer,
            matryoshka_dims=a.matryoshka_dims,
            revision=a.revision,
            opset=a.opset,
            overwrite=a.overwrite,
            log=log,
        )
    )
    return 0
