"""Int8 recipes for an exported graph: onnxruntime's quantizers, plus the steps they lack.

Modes (``onnxpipe export --quantize MODE``):
  static      (``int8``, the default) onnxruntime's dynamic quantizer lays out the int8 graph (QAttention,
              MatMulInteger, per-channel int8 weights); then every activation scale it would compute per
              call is fixed from calibration text. Fixed scales make a text's result independent of its
              batch, on the same int8 kernels at the same speed. Before quantizing, activation outliers
              are moved into the weights per channel (SmoothQuant, Xiao et al. 2023), which is what makes
              per-tensor activation scales accurate on transformers.
  dynamic     onnxruntime dynamic int8 (per-channel weights): scales per call over the whole padded batch,
              so a text's score depends on its neighbours. Never the default variant.
  dynamic-per-tensor   the same with one scale per weight tensor.
  blockwise8  8-bit weights in blocks of 32 (MatMulNBits, int8 compute): per-row activation scales,
              batch-invariant up to kernel rounding, little faster than fp32 on x86.
  rowwise     every encoder weight MatMul int8 (attention projections included) with one symmetric
              activation scale per row computed at run time: batch-invariant by construction, nothing
              kept in float, no activation range to calibrate (export/rowwise.py). With calibration text
              it can smooth each activation (one alpha, or several: each activation takes the one whose
              simulated product errs least) and round weights by GPTQ (``rounding="gptq"``, export/gptq.py).

Why by hand: onnxruntime's static quantizer (QDQ) leaves the inputs of the fused contrib ops
(Attention, and everything downstream of SkipLayerNormalization / BiasGelu that shape inference cannot
type) in float, so the result is weight-only int8 that onnxruntime runs as MatMulNBits at fp32 speed;
its QOperator format fails on per-channel MatMul (onnxruntime 1.32); its calibrators select tensors by
inferred type and so miss the same activations (1 of 26 found on MiniLM); and its SmoothQuant option
needs Intel Neural Compressor and a QDQ graph. Both steps here are small graph rewrites, and a third
(``fuse_to_float``) does the dequantizing fusion that ORT's optimizer no longer can once scales are fixed.

Longer than 300 lines because those three rewrites and the calibration that feeds them share one graph
walk and its names; apart, each would carry a copy of it.
"""

from __future__ import annotations

from onnxpipe.errors import InputValueError

import logging
import platform
from collections import defaultdict
from pathlib import Path
from dataclasses import dataclass
from collections.abc import Iterable

import numpy as np

from .activations import run_with_outputs as _run_with_outputs

MODES = ("static", "dynamic", "dynamic-per-tensor", "blockwise8", "rowwise")
ALIASES = {"int8": "static"}
BATCH_INVARIANT = {"static": True, "dynamic": False, "dynamic-per-tensor": False, "blockwise8": True, "rowwise": True}
CALIBRATION_METHODS = ("minmax", "percentile")
ISAS = ("auto", "avx2", "avx512", "avx512-vnni", "arm64")
DEFAULT_ALPHA = 0.8  # SmoothQuant strength: chosen on SST-2 train for the default model (default_model/recipe.py)
CALIBRATION_DIR = Path(__file__).parent / "calibration"
DEFAULT_CALIBRATION = CALIBRATION_DIR / "general-en.txt"

CALIBRATION_TEXTS = 300  # ranges and smoothing scales stop moving well before this many texts


@dataclass(frozen=True)
class Int8Options:
    """What ``onnxpipe export --quantize`` and its companion options ask for."""

    mode: str = "static"
    calibration: str | Path | None = None  # None: the bundled general English set
    method: str = "minmax"
    alpha: float | tuple[float, ...] | None = DEFAULT_ALPHA  # None or 0: no smoothing; several: rowwise picks one each
    rounding: str = "nearest"  # rowwise weights: "nearest" or "gptq" (calibrated)
    center: bool = False  # rowwise: LayerNorm outputs quantized as (x - beta) / s (a second LayerNorm)
    asymmetric: bool = False  # rowwise: uint8 weights with a zero point per output channel
    sequential: bool = False  # rowwise GPTQ: each activation's moments from the partly quantized graph
    residual: str = ""  # rowwise: a second int8 product per weight MatMul ("activations", "weights", "both")
    rotate: int = 0  # rowwise: each activation turned by blocks of this many channels of a Hadamard matrix (0: none)
    damp: float = 0.01  # rowwise GPTQ: the fraction of its Hessian's mean diagonal added (more trusts it less)
    word_table: bool = False  # rowwise: the word embedding table int8, a scale per row (export/word_table.py)
    fixed: float = 0.0  # rowwise: a calibrated scale where it errs at most this many times per-row scales (0: none)
    isa: str = "auto"
    reduce_range: bool = False
    exclude: tuple[str, ...] = ()
    max_drop: float | None = None  # accuracy budget in points, measured on eval_data
    eval_data: str | Path | None = None
    chosen_on: str | None = None  # for the manifest: which data chose these settings (never the reporting split)
    auto: bool = True  # False: the runtime runs this int8 graph only when named (it missed an accuracy bar)


def canonical_mode(mode: str) -> str:
    name = ALIASES.get(mode, mode)
    if name not in MODES:
        raise InputValueError(f"unknown quantization mode {mode!r}: choose from {', '.join(MODES + tuple(ALIASES))}")
    return name


# -- the CPU the int8 graph is built for -------------------------------------------------------------
def detect_isa() -> str:
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "arm64"
    from onnxpipe.cpu import cpu
    from onnxpipe.session import VNNI_FLAGS

    flags = cpu()[1]  # the runtime's reading: an int8 graph is built for the CPU its sessions will check
    if VNNI_FLAGS & flags:
        return "avx512-vnni"
    if "avx512bw" in flags:
        return "avx512"
    return "avx2"


def isa_settings(isa: str, reduce_range: bool) -> dict:
    """The target CPU, recorded with what was detected. 7-bit weights (reduce_range) are what
    onnxruntime advises where u8 x s8 products can saturate (x86 without VNNI adds pairs into int16);
    off by default because measured it costs more than it saves: MiniLM-SST2 on an AVX2 machine without
    VNNI agreed with PyTorch on 99.77% of SST-2 dev with 8-bit weights and on 98.97% with 7-bit."""
    if isa not in ISAS:
        raise InputValueError(f"unknown ISA preset {isa!r}: choose from {', '.join(ISAS)}")
    detected = detect_isa()
    return {"isa": detected if isa == "auto" else isa, "detected": detected, "reduce_range": bool(reduce_range)}


# -- calibration and evaluation text -----------------------------------------------------------------
def read_texts(source: str | Path | None, split: str = "train") -> tuple[list[str], list[int] | None, str]:
    """(texts, labels or None, description) from a text file (one text a line), a ``label<TAB>sentence``
    TSV, or a folder holding ``{split}.tsv`` (the SST-2 layout); None: the bundled general English set."""
    from .data import read_labelled_tsv

    path = Path(source).expanduser() if source is not None else DEFAULT_CALIBRATION
    if path.is_dir():
        path = path / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: pass a text file (one text a line), a label<TAB>sentence "
            f"TSV, or a folder holding {split}.tsv"
        )
    if path.suffix == ".tsv":
        texts, labels = read_labelled_tsv(path)
    else:
        texts, labels = [t for t in path.read_text(encoding="utf-8").splitlines() if t.strip()], None
    if not texts:
        raise InputValueError(f"{path} holds no text")
    return texts, labels, ("bundled " if source is None else "") + path.name


# -- graph rewrites ----------------------------------------------------------------------------------
def smooth(model, feeds: list[dict], alpha: float, exclude: set[str]):
    """SmoothQuant: for each activation X feeding weight MatMuls / Attention, scale channel j of X by
    1/s_j and row j of each weight by s_j (the product is unchanged), with
    s_j = max|X_j|^alpha / max|W_j|^(1-alpha). Returns the number of activations smoothed."""
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    uses: defaultdict[str, int] = defaultdict(int)
    for node in model.graph.node:
        for name in node.input:
            uses[name] += 1
    groups: dict[str, list] = defaultdict(list)  # activation -> the weight nodes reading it
    for node in model.graph.node:
        if (
            node.op_type in ("MatMul", "Attention")
            and node.name not in exclude
            and len(node.input) > 1
            and node.input[1] in inits
            and uses[node.input[1]] == 1
            and len(inits[node.input[1]].dims) == 2
        ):
            groups[node.input[0]].append(node)
    xs = sorted(groups)
    if not xs:
        return 0
    amax = {x: 0.0 for x in xs}
    for values in _run_with_outputs(model, xs, feeds):
        for x, v in zip(xs, values):
            amax[x] = np.maximum(amax[x], np.abs(v).reshape(-1, v.shape[-1]).max(0))
    muls = []
    for x, nodes in groups.items():
        weights = [numpy_helper.to_array(inits[n.input[1]]) for n in nodes]
        w_max = np.max([np.abs(w).max(1) for w in weights], axis=0)
        s = (np.maximum(amax[x], 1e-5) ** alpha / np.maximum(w_max, 1e-5) ** (1 - alpha)).astype(np.float32)
        for n, w in zip(nodes, weights):
            inits[n.input[1]].CopyFrom(numpy_helper.from_array((w * s[:, None]).astype(w.dtype), n.input[1]))
        out = f"{x}_smoothed"
        model.graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), f"{x}_smooth_inv"))
        muls.append((x, helper.make_node("Mul", [x, f"{x}_smooth_inv"], [out], name=f"{x}_smooth")))
        for n in nodes:
            n.input[0] = out
    # Each Mul goes right before its first reader, keeping the node list topologically sorted.
    first_reader = {x: min(i for i, n in enumerate(model.graph.node) if f"{x}_smoothed" in n.input) for x, _ in muls}
    nodes = list(model.graph.node)
    for x, mul in sorted(muls, key=lambda m: first_reader[m[0]], reverse=True):
        nodes.insert(first_reader[x], mul)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return len(muls)


def fix_scales(model, feeds: list[dict], method: str = "minmax", percentile: float = 99.9) -> int:
    """Replace each DynamicQuantizeLinear (scale and zero point computed per call, over the whole batch)
    with a QuantizeLinear whose uint8 scale and zero point come from the calibration feeds."""
    from onnx import helper, numpy_helper

    dql = [n for n in model.graph.node if n.op_type == "DynamicQuantizeLinear"]
    xs = sorted({n.input[0] for n in dql})
    lows: dict[str, list] = {x: [] for x in xs}
    highs: dict[str, list] = {x: [] for x in xs}
    for values in _run_with_outputs(model, xs, feeds):
        for x, v in zip(xs, values):
            lows[x].append(float(v.min()))
            highs[x].append(float(v.max()))
    for node in dql:
        x = node.input[0]
        if method == "minmax":
            lo, hi = min(lows[x]), max(highs[x])
        else:  # the percentile of per-text extremes: one outlier text does not set the scale
            lo, hi = float(np.percentile(lows[x], 100 - percentile)), float(np.percentile(highs[x], percentile))
        lo, hi = min(lo, 0.0), max(hi, 0.0)  # zero must be exact (padding, ReLU-like zeros)
        scale = max(hi - lo, 1e-8) / 255.0
        zero_point = int(np.clip(round(-lo / scale), 0, 255))
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(np.array(scale, np.float32), node.output[1]),
                numpy_helper.from_array(np.array(zero_point, np.uint8), node.output[2]),
            ]
        )
        replacement = helper.make_node(
            "QuantizeLinear", [x, node.output[1], node.output[2]], [node.output[0]], name=f"{node.name}_calibrated"
        )
        node.CopyFrom(replacement)
    return len(dql)


def fuse_to_float(model) -> int:
    """Each MatMulInteger -> Cast -> Mul(a_scale x b_scale) [-> Add(bias)] becomes one MatMulIntegerToFloat
    (com.microsoft), which dequantizes and adds the bias as it writes the product: no int32 tensor, no
    separate Cast, Mul and Add passes (together 12% of the static int8 MiniLM's time). Returns the count.

    By hand because ORT's own MatMulIntegerToFloatFusion needs the a_scale x b_scale Mul as a node, and once
    the activation scale is a constant its constant folding removes that node before the fusion runs."""
    from onnx import helper, numpy_helper
    from onnxruntime.quantization.onnx_model import ONNXModel

    graph = ONNXModel(model)
    inits = {i.name: i for i in model.graph.initializer}
    producer = graph.output_name_to_node()
    consumers = graph.input_name_to_nodes()

    def only(name: str, op: str):
        nodes = consumers.get(name, [])
        return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op else None

    fused = 0
    for mm in [n for n in model.graph.node if n.op_type == "MatMulInteger"]:
        quant = producer.get(mm.input[0])
        cast = only(mm.output[0], "Cast")
        mul = cast and only(cast.output[0], "Mul")
        if quant is None or quant.op_type != "QuantizeLinear" or mul is None:
            continue
        scales = producer.get(mul.input[1] if mul.input[0] == cast.output[0] else mul.input[0])
        if (
            scales is None
            or scales.op_type != "Mul"
            or len(consumers[scales.output[0]]) != 1
            or not all(i in inits for i in scales.input)
            or quant.input[1] not in scales.input
        ):
            continue
        a_scale = quant.input[1]
        b_scale = next(i for i in scales.input if i != a_scale)
        zero_points = ([*list(mm.input[2:4]), "", ""])[:2]
        inputs, out, gone = (
            [mm.input[0], mm.input[1], a_scale, b_scale, *zero_points],
            mul.output[0],
            [mm, cast, mul, scales],
        )
        add = only(out, "Add")
        bias = add and (add.input[1] if add.input[0] == out else add.input[0])
        if bias in inits and numpy_helper.to_array(inits[bias]).ndim == 1:
            inputs, out = [*inputs, bias], add.output[0]
            gone.append(add)
        mm.CopyFrom(
            helper.make_node("MatMulIntegerToFloat", inputs, [out], name=f"{mm.name}_to_float", domain="com.microsoft")
        )
        graph.remove_nodes(gone[1:])
        fused += 1
    if fused and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return fused


# -- the recipes -------------------------------------------------------------------------------------
def quantize_graph(
    src: Path,
    dst: Path,
    mode: str = "static",
    *,
    feeds: list[dict[str, np.ndarray]] | None = None,
    calibration_name: str = "",
    method: str = "minmax",
    alpha: float | tuple[float, ...] | None = DEFAULT_ALPHA,
    exclude: Iterable[str] = (),
    isa: str = "auto",
    reduce_range: bool = False,
    rounding: str = "nearest",
    center: bool = False,
    asymmetric: bool = False,
    sequential: bool = False,
    residual: str = "",
    word_table: bool = False,
    rotate: int = 0,
    damp: float = 0.01,
    fixed: float = 0.0,
) -> dict:
    """Write the int8 graph of ``src`` to ``dst``; returns the recipe for the manifest.

    Over 60 lines: the modes' shared checks and onnxruntime's quantizer call with its many options, in order."""
    import onnx
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    mode = canonical_mode(mode)
    if method not in CALIBRATION_METHODS:
        raise InputValueError(f"unknown calibration method {method!r}: choose from {', '.join(CALIBRATION_METHODS)}")
    exclude = sorted(set(exclude))
    cpu = isa_settings(isa, reduce_range)
    recipe = {"mode": mode, "batch_invariant": BATCH_INVARIANT[mode], "from": src.name, **cpu}
    if mode == "blockwise8":
        return {**recipe, **_blockwise8(src, dst, exclude)}
    if mode == "rowwise":
        done = _rowwise(
            src,
            dst,
            feeds,
            calibration_name,
            alpha,
            exclude,
            cpu["isa"],
            rounding=rounding,
            center=center,
            asymmetric=asymmetric,
            sequential=sequential,
            residual=residual,
            word_table=word_table,
            rotate=rotate,
            damp=damp,
            fixed=fixed,
        )
        return {**recipe, **done}
    levers = (
        ("asymmetric weights", asymmetric),
        ("sequential GPTQ", sequential),
        ("residual", residual),
        ("rotation", rotate),
        ("fixed activation scales chosen per activation", fixed),
    )
    for lever, on in (*levers, ("an int8 word table", word_table)):
        if on:
            raise InputValueError(f"{lever} is for --quantize rowwise, not {mode!r}")
    if rounding != "nearest":
        raise InputValueError(
            f"weight rounding {rounding!r} is for --quantize rowwise (mode {mode!r} rounds to nearest)"
        )
    if center:
        raise InputValueError(f"centring LayerNorm outputs is for --quantize rowwise, not {mode!r}")
    if not isinstance(alpha, (int, float, type(None))):
        raise InputValueError(f"several smoothing strengths {alpha!r} are for --quantize rowwise, not {mode!r}")

    model = onnx.load(str(src))
    if mode == "static":
        if not feeds:
            raise InputValueError("static int8 needs calibration text")
        calib_feeds = feeds
        if alpha:
            recipe["smoothed_activations"] = smooth(model, calib_feeds, alpha, set(exclude))
    quiet = logging.getLogger()
    level, quiet.level = quiet.level, logging.ERROR  # its advice to pre-process is for static CNNs
    try:
        # Shape inference knows no contrib ops (the fused Attention, SkipLayerNormalization), so outputs
        # it cannot type are declared float, as they are in these graphs.
        quantize_dynamic(
            model,
            dst,
            per_channel=mode != "dynamic-per-tensor",
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            reduce_range=cpu["reduce_range"],
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
    finally:
        quiet.level = level
    if mode == "static":
        model = onnx.load(str(dst))
        fixed = fix_scales(model, calib_feeds, method)
        recipe["fused_to_float"] = fuse_to_float(model)
        onnx.save(model, str(dst))
        recipe.update(
            calibration=calibration_name,
            calibration_method=method,
            smoothing_alpha=alpha,
            fixed_activation_scales=fixed,
        )
    recipe.update(
        weights="int8 per-tensor" if mode == "dynamic-per-tensor" else "int8 per-channel",
        activations="uint8, scales fixed by calibration" if mode == "static" else "uint8, scales per call",
        excluded=exclude,
    )
    return recipe


def _blockwise8(src: Path, dst: Path, exclude: list[str]) -> dict:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=8)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), nodes_to_exclude=exclude, algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)
    return {
        "weights": "int8 blocks of 32 (MatMulNBits)",
        "activations": "int8 per row per block (accuracy_level 4)",
        "excluded": exclude,
    }


def _rowwise(
    src: Path,
    dst: Path,
    feeds: list[dict] | None,
    calibration: str,
    alpha: float | tuple[float, ...] | None,
    exclude: list[str],
    isa: str,
    rounding: str = "nearest",
    center: bool = False,
    asymmetric: bool = False,
    sequential: bool = False,
    residual: str = "",
    word_table: bool = False,
    rotate: int = 0,
    damp: float = 0.01,
    fixed: float = 0.0,
) -> dict:
    import onnx

    from .rowwise import quantize_rowwise, weight_type_for
    from .word_table import quantize_word_table
    from .sequential import sequential_moments

    model = onnx.load(str(src))
    # uint8 weights where MLAS's u8 x s8 kernel saturates (x86 without VNNI), int8 where it has the fast kernel (VNNI):
    # the same integers either way (asymmetric ones shifted by 128), so the recipe's accuracy does not move.
    weights = weight_type_for(isa)
    calibrated = bool(alpha) or rounding != "nearest" or bool(rotate) or bool(fixed)
    if sequential and rounding != "gptq":
        raise InputValueError("sequential GPTQ needs rounding='gptq'")
    if sequential and rotate:  # its moments are read by activation name from the unrotated graph
        raise InputValueError("sequential GPTQ and rotation do not combine: choose one")
    moments = None
    if sequential and feeds:
        moments = sequential_moments(
            model,
            feeds,
            frozenset(exclude),
            alpha=alpha or None,
            weights=weights,
            rounding=rounding,
            center=center,
            asymmetric=asymmetric,
            damp=damp,
        )
    done = quantize_rowwise(
        model,
        feeds if calibrated else None,
        alpha or None,
        set(exclude),
        weights,
        rounding,
        moments=moments,
        center=center,
        asymmetric=asymmetric,
        residual=residual,
        rotate=rotate,
        damp=damp,
        fixed=fixed,
    )
    if word_table:  # after the products: the embedding output keeps its name, and its quantization as chosen
        done = {**done, **quantize_word_table(model)}
    onnx.save(model, str(dst))
    return {
        **done,
        "weights": f"{'int8' if weights == 's8' else 'uint8'} asymmetric per output channel (a zero point each)"
        if asymmetric
        else f"{'uint8 (zero point 128)' if weights == 'u8' else 'int8'} symmetric per output channel",
        "sequential_gptq": sequential,
        "activations": "uint8 symmetric per row (zero point 128), scale computed at run time"
        + (
            ", and each row's rounding leftover the same way in a second int8 product"
            if residual in ("activations", "both")
            else ""
        )
        + (
            f"; {len(done['fixed_scale_activations'])} of {done['quantized_activations']} with one calibrated "
            f"scale and zero point instead, where its simulated error is at most {fixed:g}x the per-row one"
            if fixed
            else ""
        ),
        "residual": residual or None,
        "rotation": f"Hadamard, blocks of {rotate} channels, after centring on the calibration mean"
        if rotate
        else None,
        "smoothing_alpha": list(alpha) if isinstance(alpha, tuple) else alpha or None,
        "weight_rounding": rounding,
        **({"gptq_damp": damp} if rounding == "gptq" else {}),
        "centred_layernorm": center,
        "calibration": calibration if calibrated else None,
        "excluded": exclude,
    }


def quantizable_nodes(path: Path) -> list[str]:
    """Names, as ``exclude`` takes them, of the nodes onnxruntime's int8 layout quantizes: weight MatMuls
    and Gemms (pooler, classifier), fused Attention, the fused embedding layer, embedding lookups."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    names = []
    for n in model.graph.node:
        if n.op_type in ("MatMul", "Attention") and len(n.input) > 1 and n.input[1] in inits:
            names.append(n.name)
        elif n.op_type == "Gemm" and n.input[1] in inits:  # the quantizer rewrites Gemm as MatMul + Add
            names.append(f"{n.name}_MatMul")
        elif n.op_type == "EmbedLayerNormalization" or (n.op_type == "Gather" and n.input[0] in inits):
            names.append(n.name)
    return names
