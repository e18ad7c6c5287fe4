"""The emitting step of :mod:`.rowwise`: the nodes and initializers that quantize an activation per row and the
``MatMulIntegerToFloat`` products that read it, with the second products of the rounding leftovers.

Every name derives from the activation's prefix ``p`` (``{x}_rowq``) or the weight's initializer ``name``, so one
activation's nodes and each of its weight MatMuls' products are emitted independently and in the order
:func:`.rowwise.quantize_rowwise` calls for them (that order fixes the graph's bytes)."""

from __future__ import annotations

import numpy as np

from .activations import GELU_MIN
from .graph_edits import readers, replace_nodes


def quantize_rows(g, p: str, src: str, gelu: bool, levels: int, zero: int, width: int) -> list:
    """Nodes making ``{p}_q`` (uint8: ``src`` per row, symmetric about ``zero``) and ``{p}_scale`` (the row's max
    |x|, so that the product's a_scale is the row max and the step 1 / ``levels`` goes into the weight scale).
    ``gelu``: ``src`` is a GELU's output, quantized as x - GELU_MIN from zero point 0 over all 255 steps.

    The row is quantized in one pass by a blocked ``QuantizeLinear`` (opset 21), one block of ``width`` (the row's
    length) a row, its scale the row max / ``levels``: a ``Div`` by the row max and a per-tensor quantize took two
    passes (on VNNI, one thread, 32 x 25 rows: 0.104 against 0.162 ms at 384 wide, 0.376 against 0.626 at 1536; 2
    of 1.2 M integers moved by one). Its zero point must be shaped like its scale, so a symmetric row's comes from
    the row maxima by a quantize that rounds any finite one to 0 and adds ``zero``: one node on a column (sharing
    one between activations needs their row shapes, which no shape inference here gives for contrib ops; measured
    at batch 1, no slower than the ``Div`` it replaces). A GELU output's zero point 0 is the default: none.
    A row of zeros needs no guard (a node each that batch 1 pays for): its 0 / 0 quantizes to some byte, and the
    product multiplies that row by its a_scale, 0, so it is 0, as x W is (tested; the leftover's row likewise)."""
    from onnx import helper, numpy_helper

    g.initializer.extend(
        [
            numpy_helper.from_array(np.array([-1], np.int64), f"{p}_axes"),
            numpy_helper.from_array(np.array(1 / levels, np.float32), f"{p}_step"),
            numpy_helper.from_array(np.array(zero, np.uint8), f"{p}_zero"),
            numpy_helper.from_array(np.array(128, np.uint8), f"{p}_wzero"),
            numpy_helper.from_array(np.array(-GELU_MIN, np.float32), f"{p}_lift"),
        ]
    )
    magnitude = (
        helper.make_node("Add", [src, f"{p}_lift"], [f"{p}_abs"], name=f"{p}/Lift")
        if gelu
        else helper.make_node("Abs", [src], [f"{p}_abs"], name=f"{p}/Abs")
    )
    nodes = [
        magnitude,
        helper.make_node("ReduceMax", [f"{p}_abs", f"{p}_axes"], [f"{p}_scale"], name=f"{p}/ReduceMax", keepdims=1),
        helper.make_node("Mul", [f"{p}_scale", f"{p}_step"], [f"{p}_rowstep"], name=f"{p}/Step"),
    ]
    ins = [f"{p}_abs" if gelu else src, f"{p}_rowstep"]
    if zero:
        g.initializer.append(numpy_helper.from_array(np.array(np.finfo(np.float32).max, np.float32), f"{p}_flat"))
        zeros = helper.make_node("QuantizeLinear", [f"{p}_scale", f"{p}_flat", f"{p}_zero"], [f"{p}_rowzero"])
        zeros.name = f"{p}/RowZero"
        nodes.append(zeros)
        ins.append(f"{p}_rowzero")
    quantize = helper.make_node("QuantizeLinear", ins, [f"{p}_q"], name=f"{p}/Q", axis=-1, block_size=width)
    return [*nodes, quantize]


def leftover_rows(g, p: str, base: str) -> list:
    """Nodes making ``{p}_rq`` and ``{p}_rscale``: what the per-row rounding of ``base`` (the tensor the row's int8
    product reads) left over, quantized per row again (uint8, zero point 128). A second int8 product reading it
    gives the activation about 16 bits; still batch-invariant, as every step is per row."""
    from onnx import helper, numpy_helper

    g.initializer.extend(
        [
            numpy_helper.from_array(np.array(1 / 127, np.float32), f"{p}_rstep"),
            numpy_helper.from_array(np.array(128, np.uint8), f"{p}_rzero"),
        ]
    )
    return [
        helper.make_node("DequantizeLinear", [f"{p}_q", f"{p}_step", f"{p}_zero"], [f"{p}_deq"], name=f"{p}/DQ"),
        helper.make_node("Mul", [f"{p}_deq", f"{p}_scale"], [f"{p}_hat"], name=f"{p}/hat"),
        helper.make_node("Sub", [base, f"{p}_hat"], [f"{p}_left"], name=f"{p}/left"),
        helper.make_node("Abs", [f"{p}_left"], [f"{p}_labs"], name=f"{p}/leftAbs"),
        helper.make_node("ReduceMax", [f"{p}_labs", f"{p}_axes"], [f"{p}_rscale"], name=f"{p}/leftMax", keepdims=1),
        helper.make_node("Div", [f"{p}_left", f"{p}_rscale"], [f"{p}_runit"], name=f"{p}/leftDiv"),
        helper.make_node("QuantizeLinear", [f"{p}_runit", f"{p}_rstep", f"{p}_rzero"], [f"{p}_rq"], name=f"{p}/leftQ"),
    ]


def int8_product(inputs: list[str], output: str, name: str):
    from onnx import helper

    return helper.make_node("MatMulIntegerToFloat", inputs, [output], name=name, domain="com.microsoft")


def symmetric_weights(g, p: str, tensor: str, wq: np.ndarray, weights: str) -> str:
    """The initializer ``tensor`` of symmetric int8 weights ``wq``: uint8 about 128 (x86 without VNNI) or int8;
    returns the product's b_zero_point input for it ("": 0)."""
    from onnx import numpy_helper

    if weights == "u8":
        g.initializer.append(numpy_helper.from_array((wq + 128).astype(np.uint8), tensor))
        return f"{p}_wzero"
    g.initializer.append(numpy_helper.from_array(wq.astype(np.int8), tensor))
    return ""


def weight_inputs(g, p: str, name: str, rounded: tuple, levels: int, weights: str, asymmetric: bool) -> list[str]:
    """The initializers of weight ``name``'s int8 product, from ``rounded`` = (integers, scale per output channel,
    zero point per output channel); returns the product's inputs (activation, weights, their scales, zero points)."""
    from onnx import numpy_helper

    wq, w_scale, w_zero = rounded
    ins = [f"{p}_q", f"{name}_q", f"{p}_scale", f"{name}_scale", f"{p}_zero"]
    if asymmetric:  # per-column zero points: wq + zero fills a byte's 0..255
        # On VNNI the same integers shifted by 128 into int8 (weights and zero points alike: w - z is
        # unchanged, so the product is): MLAS has VNNI kernels for u8 x s8 only, none for u8 x u8.
        shift, kind = (128, np.int8) if weights == "s8" else (0, np.uint8)
        g.initializer.append(numpy_helper.from_array((wq + w_zero - shift).astype(kind), f"{name}_q"))
        g.initializer.append(numpy_helper.from_array((w_zero - shift).astype(kind), f"{name}_zero"))
        ins.append(f"{name}_zero")
    else:
        ins.append(symmetric_weights(g, p, f"{name}_q", wq, weights))
    # The activation's step goes into the weight scale, so the row max itself is the a_scale.
    g.initializer.append(numpy_helper.from_array((w_scale / levels).astype(np.float32), f"{name}_scale"))
    return ins


def products(g, n, p: str, ins: list[str], w_scale: np.ndarray, levels: int, weights: str, leftovers: dict) -> list:
    """Replace weight MatMul ``n`` by its int8 product; returns the nodes to place right after it: the second
    products of ``leftovers`` (``"rows"``: True, the rows' leftover; ``"weights"``: (integers, scale), the
    weights') and the Sum that gives their total to ``n``'s readers."""
    from onnx import helper, numpy_helper

    name, out, parts = n.input[1], n.output[0], []
    if leftovers.get("rows"):  # the leftover's step is 1/127 where the row's was 1/levels: its weight scale says so
        g.initializer.append(numpy_helper.from_array((w_scale / 127).astype(np.float32), f"{name}_ascale"))
        leftover = [f"{p}_rq", ins[1], f"{p}_rscale", f"{name}_ascale", f"{p}_rzero", *ins[5:]]
        parts.append(int8_product(leftover, f"{name}_alo", f"{n.name}_int8_alo"))
    if leftovers.get("weights") is not None:
        rq, r_scale = leftovers["weights"]
        lo = [f"{p}_q", f"{name}_rq", f"{p}_scale", f"{name}_rscale", f"{p}_zero"]
        lo.append(symmetric_weights(g, p, f"{name}_rq", rq, weights))
        g.initializer.append(numpy_helper.from_array((r_scale / levels).astype(np.float32), f"{name}_rscale"))
        parts.append(int8_product(lo, f"{name}_lo", f"{n.name}_int8_lo"))
    if parts:
        total = [f"{name}_hi", *(q.output[0] for q in parts)]
        parts.append(helper.make_node("Sum", total, [out], name=f"{n.name}_int8_sum"))
        out = f"{name}_hi"
    n.CopyFrom(int8_product(ins, out, f"{n.name}_int8"))
    return parts


def quantize_fixed(g, p: str, src: str, scale: float, zero: int, levels: int, smooth: np.ndarray | None) -> list:
    """The node making ``{p}_q`` from ``src`` with one calibrated scale and zero point (:func:`.smoothing.choose_fixed`),
    after a ``Mul`` by 1 / ``smooth`` (the activation's smoothing divisors) if given, and the constants ``{p}_scale`` and
    ``{p}_zero`` the products read where a per-row quantize makes them (so the products are built alike).
    The smoothing is not folded into a per-channel QuantizeLinear scale, though that gives the same integers in one
    node: onnxruntime 1.32 runs a per-axis QuantizeLinear on the last axis element by element (measured at 32 x 39 x
    1536: 47.5 ms against 0.36 ms for the Mul and a per-tensor quantize)."""
    from onnx import helper, numpy_helper

    g.initializer.extend(
        [
            numpy_helper.from_array(np.array(scale, np.float32), f"{p}_qstep"),
            numpy_helper.from_array(np.array(zero, np.uint8), f"{p}_zero"),
            # The weight scale carries 1 / levels (as for per-row products), so the a_scale is scale x levels.
            numpy_helper.from_array(np.array(scale * levels, np.float32), f"{p}_scale"),
            numpy_helper.from_array(np.array(128, np.uint8), f"{p}_wzero"),
        ]
    )
    nodes = []
    if smooth is not None:
        g.initializer.append(numpy_helper.from_array((1.0 / smooth).astype(np.float32), f"{p}_smooth_inv"))
        nodes.append(helper.make_node("Mul", [src, f"{p}_smooth_inv"], [f"{p}_smoothed"], name=f"{p}/smooth"))
        src = f"{p}_smoothed"
    return [*nodes, helper.make_node("QuantizeLinear", [src, f"{p}_qstep", f"{p}_zero"], [f"{p}_q"], name=f"{p}/Q")]


def split_products(g) -> int:
    """Each ``MatMulIntegerToFloat`` read only by a ``Split`` of its columns becomes one product per part, reading
    that part's weight columns, scales and zero points; returns how many were split. The same numbers bit for bit
    (each output column depends on its own weight column, scale and zero point alone), one pass over the output
    fewer: onnxruntime 1.32's CPU ``MultiHeadAttention`` refuses a packed Q/K/V input, so the attention's projection
    was one product and a ``Split`` copying its output (28 ms of a 1.5 s dev pass at batch 32 on VNNI, the three
    products together no slower than the one)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in g.initializer}
    uses = readers(g)
    graph_outputs = {o.name for o in g.output}
    parts_of, dropped = {}, set()
    for n in g.node:
        after = uses.get(n.output[0], []) if n.op_type == "MatMulIntegerToFloat" else []
        if len(after) != 1 or after[0].op_type != "Split" or n.output[0] in graph_outputs:
            continue
        split = after[0]
        axis = next((a.i for a in split.attribute if a.name == "axis"), 0)
        sizes = split.input[1] if len(split.input) > 1 else ""
        if axis != -1 or sizes not in inits or n.input[1] not in inits:
            continue
        bounds = np.concatenate([[0], np.cumsum(numpy_helper.to_array(inits[sizes]))])
        parts = []
        for k, out in enumerate(split.output):
            ins = list(n.input)
            for i in (1, 3, 5, 6):  # weights, their scales, zero points, bias: per column unless scalar
                if i < len(ins) and ins[i] in inits:
                    a = numpy_helper.to_array(inits[ins[i]])
                    if a.ndim:
                        part = np.ascontiguousarray(a[..., bounds[k] : bounds[k + 1]])
                        g.initializer.append(numpy_helper.from_array(part, f"{ins[i]}_part{k}"))
                        ins[i] = f"{ins[i]}_part{k}"
            parts.append(int8_product(ins, out, f"{n.name}_part{k}"))
        parts_of[id(n)] = parts
        dropped.add(id(split))
    replace_nodes(g, {**parts_of, **{split: [] for split in dropped}})
    return len(parts_of)
