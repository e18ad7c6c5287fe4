"""Int8 with one activation scale per row (per token), computed at run time: ``--quantize int8-rowwise``.

Every weight MatMul of the encoder, the attention's Q/K/V projection included, becomes one
``com.microsoft.MatMulIntegerToFloat``: uint8 activations quantized symmetrically per row (zero point 128,
scale = the row's max |x| / 127), int8 per-output-channel weights, dequantized as it writes (the bias stays
an Add: onnxruntime 1.32 multiplies a MatMulIntegerToFloat bias by a per-row scale too).
A row's scale depends on that row alone, so a text's answer is the same alone and in any batch, and no
static range has to hold an outlier token. onnxruntime 1.32 takes that scale as an ``[..., rows, 1]`` tensor
with a scalar zero point (a per-row zero point is refused, hence symmetric), checked by the tests.

The fused ``Attention`` (which takes only a scalar input scale as ``QAttention``) becomes its Q/K/V
projection as one MatMul on the shared quantized input, a ``Split`` and a float ``MultiHeadAttention``
(the same kernels and mask), so Q, K and V read one quantized tensor. SmoothQuant (Xiao et al. 2023) is
optional (``alpha``): channel j of the quantized activation is divided by s_j, row j of the weights
multiplied by it; after an attention the division is folded into the V projection's columns (the
attention output is a convex mix of V rows, so scaling V's column j scales output channel j), elsewhere
it is one ``Mul`` feeding only the quantize.

Weights on x86 without VNNI are stored as uint8 with zero point 128: MLAS's u8 x s8 kernel there adds
pairs of products into int16 and saturates (measured: 12-15% of a product's scale lost on random weights
with zero point 128 activations), while its u8 x u8 kernel widens first and is as fast at these sizes.
On VNNI (``weight_type_for``) weights are int8, asymmetric ones the uint8 bytes and zero points shifted by 128 (the
same w - z: the same answers), since MLAS has VNNI kernels for u8 x s8 only; the graph is marked so that
:class:`onnxpipe.session.Session` keeps it exact on a CPU without VNNI.

Measured on the default sentiment model (SST-2 train, 5,000 sentences, AVX2): without smoothing this all-int8
graph agrees with fp32 on 99.72% (the static recipe with four nodes in float: 99.70%); SmoothQuant made it
worse here (0.5: 98.6%, 0.8: 99.1% before the bias fix, 99.3% / 98.0% on 300 after), so alpha defaults to none.
A GELU's output (never below -0.17) is lifted to start at zero and takes all 255 steps: 99.70% on that set (a
tie), and the embeddings default's top-10 neighbour overlap with sentence-transformers 0.914 -> 0.922.

For the embeddings default (all-MiniLM-L6-v2) the calibrated levers pay (``benchmarks/int8_embeddings.py``: 1,000
SST-2 train queries against 10,000 other train sentences, AVX2; top-10 overlap with sentence-transformers fp32):
plain 0.9225; SmoothQuant 0.7 0.948; an alpha per activation (several ``alpha``, :mod:`.smoothing`) with GPTQ
rounding (``rounding="gptq"``, :mod:`.gptq`) 0.956; and LayerNorm outputs centred (``center``) 0.959, still short
of the 0.97 issue 24 asks. Profiled one kind at a time in float: the Q/K/V projections carry ~40% of what is left.

What is left after those is mostly the activations' rounding, not the weights': a second int8 product of each row's
rounding leftover (``residual="activations"``, quantized per row again) takes that recipe with asymmetric weights to
0.984 train / 0.977 dev, where making the weights exact the same way (``"weights"``) reaches 0.968 / 0.957. It costs
twice the integer work (0.44x fp32 at batch 32 on AVX2, 2 threads, per process). Turning each activation by
128 x 128 Hadamard blocks first (``rotate``, :mod:`.rotation`) spreads its wide channels instead, at one product a
weight: 0.979 train / 0.971 dev, the embeddings default since its v8 (README).

Where one calibrated range would do nearly as well (``fixed``: its simulated products err at most that many times
the per-row ones on the calibration text, :func:`.smoothing.choose_fixed`), an activation takes one fixed scale and
zero point: one QuantizeLinear instead of the per-row quantize's four or five nodes, and its products add their
bias themselves. On the sentiment default (VNNI, SST-2 train) that trades agreement for little speed, so neither
default uses it (README).

Longer than 300 lines because the rewrite is one pass over one graph (find each weight MatMul, its quantized
input's group, its bias, its smoothing and centring, its rounding), whose steps share the graph's indices; what
it emits is in :mod:`.row_products`, and the calibrated parts that stand alone in :mod:`.smoothing`, :mod:`.gptq`
and :mod:`.activations`.

Written by hand because onnxruntime's quantizers have no per-row activation scale: its dynamic mode computes
one scale per call over the whole batch (not batch-invariant), its static mode one fixed scale per tensor,
and MatMulNBits' per-block activation quantization is weight-only int8 compute at little over fp32 speed.
"""

from __future__ import annotations

from onnxpipe.errors import InputValueError

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from .activations import GELU_MIN
from .gelu_groups import check_sizes, from_gelu, group_channels
from .row_products import leftover_rows, products, quantize_fixed, quantize_rows, split_products, weight_inputs
from .graph_edits import add_to_bias, attention_bias, bias_of, output_bias, own_biases, readers, splice
from .rotation import hadamard_block, rotate_activations

# A per-row quantize is one blocked QuantizeLinear (row_products.quantize_rows): opset 21's.
ROW_OPSET = 21


# How the int8 product is laid out: u8 = uint8 weights (zero point 128, the u8 x u8 kernel); s8 = int8 weights;
# s8-act7 = int8 weights with 7-bit activations (|q| <= 63, zero point 64); s8-w7 = int8 weights in [-63, 63].
# The last two keep x86's u8 x s8 int16 pair sums below saturation (2 x 127 x 127 and 2 x 255 x 63 < 32767).
WEIGHT_TYPES = ("u8", "s8", "s8-act7", "s8-w7")
ROUNDINGS = ("nearest", "gptq")
# A second int8 product per weight MatMul: of each row's rounding leftover ("activations"), of the weights' ("weights").
RESIDUALS = ("", "activations", "weights", "both")
# Weight types whose GELU inputs are lifted to start at zero; "s8" is what VNNI CPUs get (weight_type_for), and it
# must quantize as "u8" does so that one recipe gives the same integers on every x86 CPU.
LIFTED = ("u8", "s8")


def weight_type_for(isa: str) -> str:
    """uint8 weights where u8 x s8 saturates in int16 (x86 without VNNI), int8 where it does not."""
    return "u8" if isa in ("avx2", "avx512") else "s8"


def unfuse_attention(model, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Each fused ``Attention`` with constant weights -> MatMul (QKV together) + Split + MultiHeadAttention,
    in place. Returns the names of attentions left fused: those in ``exclude`` (kept in float as they were)
    and those with options this pass does not carry over."""
    from onnx import helper, numpy_helper

    from .last_row import constant

    g = model.graph
    kept, nodes = [], []
    for n in g.node:
        if n.op_type != "Attention" or n.domain != "com.microsoft":
            nodes.append(n)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        weight = constant(model, n.input[1])
        extra = len(n.input) > 4 and any(n.input[4:])
        if attrs.get("unidirectional") or attrs.get("qkv_hidden_sizes") or extra or weight is None or n.name in exclude:
            kept.append(n.name)
            nodes.append(n)
            continue
        hidden = weight.shape[1] // 3
        p = n.name
        g.initializer.append(numpy_helper.from_array(np.array([hidden] * 3, np.int64), f"{p}_split"))
        qkv = [f"{p}_{k}" for k in "qkv"]
        mask = n.input[3] if len(n.input) > 3 else ""
        nodes += [
            helper.make_node("MatMul", [n.input[0], n.input[1]], [f"{p}_qkv"], name=f"{p}/qkv/MatMul"),
            helper.make_node("Split", [f"{p}_qkv", f"{p}_split"], qkv, name=f"{p}/Split", axis=-1),
            helper.make_node(
                "MultiHeadAttention",
                [*qkv, n.input[2], mask],
                [n.output[0]],
                name=f"{p}/MultiHeadAttention",
                domain="com.microsoft",
                **{k: v for k, v in attrs.items() if k in ("num_heads", "mask_filter_value", "scale")},
            ),
        ]
    del g.node[:]
    g.node.extend(nodes)
    return kept


def weight_groups(model, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, list]:
    """Activation -> the weight MatMuls reading it (constant 2-D weight read by that MatMul alone), in graph order
    of each activation's first reader: what :func:`quantize_rowwise` quantizes once per activation."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    uses = readers(g)
    groups: dict[str, list] = defaultdict(list)
    for n in g.node:
        if (
            n.op_type == "MatMul"
            and n.name not in exclude
            and n.input[1] in inits
            and len(inits[n.input[1]].dims) == 2
            and len(uses[n.input[1]]) == 1
        ):
            groups[n.input[0]].append(n)
    return groups


def quantize_rowwise(
    model,
    feeds: list[dict] | None = None,
    alpha: float | Sequence[float] | None = None,
    exclude: set[str] | frozenset[str] = frozenset(),
    weights: str = "u8",
    rounding: str = "nearest",
    bias_correction: bool = False,
    int8: bool = True,
    center: bool = False,
    moments: dict | None = None,
    damp: float = 0.01,
    act_order: bool = True,
    clips: tuple[float, ...] = (1.0,),
    asymmetric: bool = False,
    cache: dict | None = None,
    residual: str = "",
    residual_nodes: frozenset[str] = frozenset(),
    rotate: int = 0,
    fixed: float = 0.0,
    gelu_groups: tuple[int, ...] = (),
) -> dict:
    """Rewrite ``model`` (fused fp32 ModelProto, in place) to per-row int8; returns counts for the manifest.
    ``alpha``: SmoothQuant strength (None: none); several: each activation takes the one (0: no smoothing) whose
    simulated int8 product is closest to the float one on the calibration tokens. ``rounding``: ``nearest`` or ``gptq`` (weights rounded to keep
    each product's output on the calibration text, :mod:`.gptq`). ``bias_correction``: each bias absorbs the
    weights' rounding error at the calibration inputs' mean (``E[x] (W - Ŵ)``). ``int8=False``: the smoothing only,
    every product left in float (the same function as before, for checking the folding). ``center``: a
    LayerNorm's output is quantized as (x - beta) / s, made by a second LayerNorm (gamma / s, no beta) in place of
    the smoothing Mul; ``beta Ŵ`` comes back in the product's bias (its channels' offsets take no int8 range).
    ``moments``: per activation, the :class:`.gptq.Moments` GPTQ and bias correction read instead of the float
    graph's (:mod:`.sequential` passes the partly quantized graph's own inputs); ``damp``, ``act_order``: GPTQ's;
    ``clips``: candidate fractions of each output channel's max |w| for its scale, the one whose rounded channel
    errs least on the calibration moments kept (:func:`.gptq.clipped_round`). ``asymmetric``: weights with a
    zero point per output channel, its [min, max] over 256 steps: uint8, or with ``weights="s8"`` (VNNI) the same
    integers shifted into int8.
    ``cache``: a dict kept across calls on the same float graph and calibration text (as :mod:`.sequential` makes
    them): the float graph's statistics and each activation's smoothing are computed once, not per call.
    ``residual``: a second int8 product per weight MatMul: ``activations`` reads each row's rounding leftover
    (quantized per row again: ~16-bit activations), ``weights`` the weights' (~16-bit weights), ``both`` both;
    ``residual_nodes``: only the activations read by these MatMuls (default: all). ``rotate``: each activation
    centred and turned by blocks of that many channels of a Hadamard matrix first (:mod:`.rotation`; 0: none).
    ``gelu_groups``: each GELU output's channels, widest first, quantized per row in groups of these sizes and the
    rest, one product a group (:mod:`.gelu_groups`), instead of rotated.

    Over 60 lines (about 180): one pass over one graph whose steps share its indices (groups, biases, smoothing,
    centring, rounding); the nodes and initializers each step emits are in :mod:`.row_products`."""
    from onnx import helper, numpy_helper

    from .gptq import clipped_round, toward_float
    from .smoothing import choose_fixed, choose_smoothing, statistics

    if weights not in WEIGHT_TYPES:
        raise InputValueError(f"unknown weight type {weights!r}: choose from {', '.join(WEIGHT_TYPES)}")
    if asymmetric and weights not in ("u8", "s8"):
        raise InputValueError(f"asymmetric weights are uint8 or int8 (weights='u8' or 's8'), not {weights!r}")
    if residual not in RESIDUALS:
        raise InputValueError(f"unknown residual {residual!r}: choose from {', '.join(map(repr, RESIDUALS))}")
    if rounding not in ROUNDINGS:
        raise InputValueError(f"unknown weight rounding {rounding!r}: choose from {', '.join(ROUNDINGS)}")
    if rotate:
        hadamard_block(rotate)  # a bad block size is refused before the graph is touched
    check_sizes(gelu_groups)
    if not fixed >= 0:
        raise InputValueError(
            f"fixed scales are taken where they err at most that many times per-row ones: 0 or more, not {fixed}"
        )
    if fixed and residual:  # a leftover is read per row, from the row's own scale
        raise InputValueError(
            "fixed activation scales and a second product of the leftovers do not combine: choose one"
        )
    if not damp >= 0:
        raise InputValueError(f"GPTQ damping is a fraction of the Hessian's mean diagonal, 0 or more, not {damp}")
    calibrated = [
        k
        for k, on in (
            ("smoothing (alpha)", alpha),
            ("gptq rounding", rounding == "gptq"),
            ("bias correction", bias_correction),
            ("weight clipping", len(clips) > 1),
            ("rotation", rotate),
            ("fixed activation scales", fixed),
            ("GELU channel groups", gelu_groups),
        )
        if on
    ]
    if calibrated and not feeds:
        raise InputValueError(f"{' and '.join(calibrated)} needs calibration text")
    kept_fused = unfuse_attention(model, exclude)
    own_biases(model, weight_groups(model, exclude))
    rotated, turned, unrotated = frozenset[str](), 0, 0
    # Channel order first, rotation next: both before anything reads the activations (smoothing, GPTQ, the quantize).
    cuts = group_channels(model, weight_groups(model, exclude), feeds or [], gelu_groups) if gelu_groups else {}
    grouped = {part for parts in cuts.values() for part in parts}
    if rotate:
        todo = {x: mms for x, mms in weight_groups(model, exclude).items() if x not in grouped}
        rotated, turned, unrotated = rotate_activations(model, todo, feeds or [], rotate)
        exclude = frozenset(exclude) | rotated
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    uses = readers(g)
    groups = weight_groups(model, exclude)
    arrays = {
        n.input[1]: numpy_helper.to_array(inits[n.input[1]]).astype(np.float32) for m in groups.values() for n in m
    }
    before: dict[int, list] = defaultdict(list)  # index of an activation's first reader -> nodes to put before it
    index = {id(n): i for i, n in enumerate(g.node)}
    first = {x: min(index[id(n)] for n in mms) for x, mms in groups.items()}
    source = {x: x for x in groups}
    folded = 0
    a_levels = 63 if weights == "s8-act7" else 127
    w_levels = 63 if weights == "s8-w7" else 127
    made = {t: n for n in g.node for t in n.output}
    lifts = {x for x in groups if weights in LIFTED and from_gelu(made, x)}
    memo = {} if cache is None else cache
    if calibrated and "stats" not in memo:
        memo["stats"] = statistics(model, sorted(groups), feeds or [])
    stats = memo.get("stats", {}) if calibrated else {}
    smoothed: dict[str, np.ndarray] = {}
    centers: dict[str, np.ndarray] = {}
    for x in groups if center else []:
        ln = made.get(x)
        if ln is None or ln.op_type != "LayerNormalization" or len(ln.input) != 3 or ln.input[2] not in inits:
            continue
        if all(output_bias(uses, n, inits) for n in groups[x]):
            centers[x] = numpy_helper.to_array(inits[ln.input[2]]).astype(np.float32)
    if alpha:
        known = memo.setdefault("smoothing", {})  # activation -> its scales (None: left as it is)
        fresh = {x: mms for x, mms in groups.items() if x not in known}
        chosen = choose_smoothing(fresh, arrays, stats, alpha, a_levels, w_levels, lifts, centers)
        known.update({x: chosen.get(x) for x in fresh})
        smoothed = {x: known[x] for x in groups if known[x] is not None}
    # Activations whose one calibrated scale errs little more than per-row scales (``fixed``): one QuantizeLinear
    # instead of the per-row four or five, and their products take the bias; their smoothing Mul comes with that
    # quantize.
    fixed_scales = (
        choose_fixed(groups, arrays, stats, smoothed, centers, lifts, fixed, a_levels, w_levels)
        if fixed and int8
        else {}
    )
    smooth_of: dict[str, np.ndarray] = {}
    for x in [x for x in groups if x in smoothed or x in centers]:
        sm = smoothed.get(x, np.ones(len(centers[x]) if x in centers else 0, np.float32))
        for n in groups[x]:
            arrays[n.input[1]] *= sm[:, None]
        inv = (1.0 / sm).astype(np.float32)
        if x in centers:  # a second LayerNorm gives (x - beta) / s: the smoothing's Mul is not needed
            ln, p = made[x], f"{x}_rowq"
            gamma = numpy_helper.to_array(inits[ln.input[1]]).astype(np.float32) * inv
            g.initializer.extend(
                [
                    numpy_helper.from_array(gamma, f"{p}_gamma"),
                    numpy_helper.from_array(np.zeros_like(gamma), f"{p}_beta"),
                ]
            )
            centred = helper.make_node(
                "LayerNormalization", [ln.input[0], f"{p}_gamma", f"{p}_beta"], [f"{p}_centred"], name=f"{p}/centre"
            )
            centred.attribute.extend(ln.attribute)
            before[first[x]].append(centred)
            source[x] = f"{p}_centred"
            continue
        v = _v_projection(made, x, inits)
        if v is not None and all(n in groups[x] for n in uses[x]):
            # After an attention: context / s comes from V's columns, as the rows of P sum to 1.
            qkv, bias = v
            hidden = sm.shape[0]
            arrays[qkv][:, 2 * hidden :] *= inv
            b = numpy_helper.to_array(inits[bias]).copy()
            b[2 * hidden :] *= inv
            inits[bias].CopyFrom(numpy_helper.from_array(b, bias))
            folded += 1
            continue
        if x in fixed_scales:  # its Mul comes with its quantize (row_products.quantize_fixed)
            smooth_of[x] = sm
            continue
        p = f"{x}_rowq"
        g.initializer.append(numpy_helper.from_array(inv, f"{p}_smooth_inv"))
        before[first[x]].append(helper.make_node("Mul", [x, f"{p}_smooth_inv"], [f"{p}_smoothed"], name=f"{p}/smooth"))
        source[x] = f"{p}_smoothed"
    shifted = 0
    gone: set[str] = set()  # outputs of the bias Adds that fixed-scale products took in
    if not int8:  # the smoothed float graph: each product reads the smoothed input with the scaled weights
        for x, mms in groups.items():
            for n in mms:
                n.input[0] = source[x]
                inits[n.input[1]].CopyFrom(numpy_helper.from_array(arrays[n.input[1]], n.input[1]))
                if x in centers:
                    add_to_bias(
                        inits, output_bias(uses, n, inits), centers[x] / smoothed.get(x, 1.0) @ arrays[n.input[1]]
                    )
    for x, mms in groups.items() if int8 else []:
        p, src = f"{x}_rowq", source[x]
        biases = [bias_of(uses, n, inits) for n in mms]
        # A GELU's output is >= GELU_MIN: x - GELU_MIN is never negative, so its row takes all 255 uint8 steps
        # from zero point 0 instead of 127 each side of 128 (u8 and VNNI's s8 weights; not the 7-bit experiments).
        # x W = (x - GELU_MIN) W + GELU_MIN W, and the constant goes into the bias Add after the product.
        gelu = weights in LIFTED and from_gelu(made, x) and src == x
        gelu = gelu and all(b is not None for b in biases) and x not in fixed_scales
        levels, zero = (255, 0) if gelu else (a_levels, a_levels + 1)
        if x in fixed_scales:
            before[first[x]] += quantize_fixed(g, p, src, *fixed_scales[x], levels, smooth_of.get(x))
        else:
            width = arrays[mms[0].input[1]].shape[0]  # the weights' rows: the activation's channels
            before[first[x]] += quantize_rows(g, p, src, gelu, levels, zero, width)
        ares = residual in ("activations", "both") and (not residual_nodes or residual_nodes & {n.name for n in mms})
        if ares:
            before[first[x]] += leftover_rows(g, p, f"{p}_abs" if gelu else src)
        shifted += gelu
        for n, bias_name in zip(mms, biases):
            name = n.input[1]
            w = arrays[name]
            seen = (moments or {}).get(x) or (stats[x][1] if x in stats else None)
            corrected = bias_name or attention_bias(uses, n, inits)
            if seen is not None and seen.cross is not None:  # aim at the float graph's product (sequential)
                w = toward_float(w, seen, smoothed.get(x), damp).astype(np.float32)
            if rounding == "gptq" or len(clips) > 1:
                assert seen is not None, f"no calibration moments for {x}: rounding by output error needs them"
                # With bias correction the mean share of the error comes back through the bias: round for the rest.
                h = seen.hessian(smoothed.get(x), centred=bias_correction and corrected is not None)
                wq, w_scale, w_zero = clipped_round(
                    w, h, w_levels, clips, rounding, asymmetric, damp=damp, act_order=act_order
                )
            else:
                wq, w_scale, w_zero = clipped_round(w, np.eye(w.shape[0]), w_levels, (1.0,), "nearest", asymmetric)
            eff = wq * w_scale  # the weights the int8 product uses
            leftovers: dict = {"rows": ares}
            if residual in ("weights", "both"):  # the rounding's leftover, int8 too, in a product on the same input
                rq, r_scale, _ = clipped_round(w - eff, np.eye(w.shape[0]), w_levels, (1.0,), "nearest", False)
                eff = eff + rq * r_scale
                leftovers["weights"] = (rq, r_scale)
            if bias_correction and corrected is not None:
                assert seen is not None, f"no calibration moments for {x}: bias correction needs them"
                # The product's mean error over the calibration tokens comes back out of the bias.
                mean = seen.mean() / smoothed.get(x, 1.0)
                b = numpy_helper.to_array(inits[corrected]).copy()
                b += (mean @ (w - eff)).astype(np.float32)  # an attention's bias: Q, K and V, as the product
                inits[corrected].CopyFrom(numpy_helper.from_array(b.astype(np.float32), corrected))
            if x in centers:  # the product reads x - beta: beta's share comes back through the bias
                add_to_bias(inits, output_bias(uses, n, inits), centers[x] / smoothed.get(x, 1.0) @ eff)
            ins = weight_inputs(g, p, name, (wq, w_scale, w_zero), levels, weights, asymmetric)
            if gelu and bias_name is not None:
                b = numpy_helper.to_array(inits[bias_name])
                lifted = b + GELU_MIN * eff.sum(0)  # the int8 weights, as the product uses them
                inits[bias_name].CopyFrom(numpy_helper.from_array(lifted.astype(np.float32), bias_name))
            # The bias stays a separate Add: onnxruntime 1.32's MatMulIntegerToFloat multiplies its bias input by a
            # per-row a_scale too (measured: it returns a_scale x (product + bias)); with a scalar one it is right.
            after = products(g, n, p, ins, w_scale, levels, weights, leftovers)
            before[index[id(n)] + 1][:0] = after  # right after this product: the Sum gives its output to the readers
            if x in fixed_scales and bias_name is not None:
                # A scalar a_scale: the product adds the bias as it writes (a per-row one would scale it too).
                add = uses[n.output[0]][0]
                n.input.extend([""] * (6 - len(n.input)) + [bias_name])
                n.output[0] = add.output[0]
                gone.add(add.output[0])
    splice(g, before)
    if gone:
        kept = [n for n in g.node if not (n.op_type == "Add" and n.output[0] in gone)]
        del g.node[:]
        g.node.extend(kept)
    split = split_products(g) if int8 else 0
    used = {t for n in g.node for t in n.input}
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    if int8:  # a per-row quantize is a blocked QuantizeLinear: opset 21
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = max(o.version, ROW_OPSET)
        model.ir_version = max(model.ir_version, 10)  # opset 21's IR version
    if int8 and weights.startswith("s8"):  # the runtime reads it: u8 x s8 saturates on x86 without VNNI
        from onnxpipe.session import WEIGHTS_KEY

        helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, WEIGHTS_KEY: "int8"})
    return {
        "int8_matmuls": sum(len(m) for m in groups.values()) if int8 else 0,
        "quantized_activations": len(groups),
        "smoothing_folded_into_v": folded,
        "gelu_outputs_from_zero": shifted,
        "centred_layernorm_outputs": len(centers) if int8 else 0,
        **({"fixed_scale_activations": sorted(fixed_scales)} if fixed else {}),
        "attentions_left_fused": kept_fused,
        "split_products": split,
        **({"rotation_block": rotate, "rotated_activations": turned, "unrotated": unrotated} if rotate else {}),
        **({"gelu_groups": [*gelu_groups, "rest"], "gelu_outputs_grouped": len(cuts)} if gelu_groups else {}),
    }


def _v_projection(producer: dict, x: str, inits: dict) -> tuple[str, str] | None:
    """(QKV weight, QKV bias) names behind ``x`` when ``x`` is the output of a MultiHeadAttention whose
    Q, K, V are a Split of one constant-weight MatMul (as :func:`unfuse_attention` builds)."""
    mha = producer.get(x)
    if mha is None or mha.op_type != "MultiHeadAttention" or len(mha.input) < 4 or mha.input[3] not in inits:
        return None
    split = producer.get(mha.input[2])
    if split is None or split.op_type != "Split" or list(split.output) != list(mha.input[:3]):
        return None
    mm = producer.get(split.input[0])
    if mm is None or mm.op_type != "MatMul" or mm.input[1] not in inits:
        return None
    return mm.input[1], mha.input[3]
