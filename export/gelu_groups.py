"""A GELU output quantized per row in groups of its channels, widest first (``gelu_groups``; not a default).

A GELU's output (the FFN-down product's input) has a few channels far wider than the rest, the same channels
for every token: one scale per row gives those channels their steps and every other channel a handful. Sorting
the channels by their calibration max |x| (the FFN-up product's columns, the GELU's bias and the FFN-down
product's rows permuted alike at export: the same function) and cutting them into groups (8, 32, 128, 512 and
the rest) makes each group an activation of its own: its own scale per row, its own weight grid per output
channel, one int8 product a group and a ``Sum``. The same integer work, and no float rotation: at 32 x 27 tokens
on one VNNI thread the FFN-down path took 4.49 ms grouped against 6.96 ms rotated (isolated graphs, in turns).
Still batch-invariant: every scale is a row's own.

Measured on the embeddings default (2026-12-07, VNNI; ``python -m onnxpipe.bench.int8_embeddings --data
../shared/data/sst2 --bundled-calibration --recipes gptq-asym-rot128-damp0.1,...-gelu3,...-gelu5,...-gelu6 --speed
--rounds 3``, the README's table): in place of the GELU outputs' rotation, 1.65-1.72x the fp32 graph's batch-32
speed against the rotated recipe's 1.36x in the same run (one thread), but a train top-10 overlap of 0.9734-0.9772
against 0.9780, so train does not choose it. Simulated first (one layer's product error, 300 train sentences):
better than the rotation for the activations alone, level with it once each group's weights have their own grid
(one grid over all groups: twice the rotation's error), and one GPTQ pass over all groups with a grid each did no
better on the real metric (0.9738 with SST-2 calibration), so each group's weights are rounded on their own.

Written by hand: onnxruntime's quantizers have no per-row scale, let alone one per group of channels, and its
MatMulIntegerToFloat takes one a_scale per row, hence one product a group.
"""

from __future__ import annotations

import numpy as np

from onnxpipe.errors import InputValueError

from .graph_edits import readers, replace_nodes

GELU_OPS = ("BiasGelu", "Gelu", "FastGelu")
SPLIT_SUFFIX = "/ChannelGroups"


def check_sizes(sizes: tuple[int, ...]) -> None:
    if any(int(s) != s or s < 1 for s in sizes) or list(sizes) != sorted(sizes):
        raise InputValueError(
            f"GELU channel groups are sizes of at least 1 channel in rising order, widest channels first, not {sizes}"
        )


def from_gelu(made: dict, x: str) -> bool:
    """Whether ``x`` is a GELU's output, or a group of its channels cut by :func:`group_channels`."""
    n = made.get(x)
    if n is not None and n.op_type == "Split" and n.name.endswith(SPLIT_SUFFIX):
        n = made.get(n.input[0])
    return n is not None and n.op_type in GELU_OPS


def group_channels(model, groups: dict[str, list], feeds: list[dict], sizes: tuple[int, ...]) -> dict[str, list[str]]:
    """In the float graph ``model``, in place: each GELU output in ``groups`` (activation -> its weight MatMuls) that
    one weight MatMul reads and one weight MatMul makes gets its channels ordered widest first (max |x| over the
    calibration ``feeds``), and its product becomes a ``Split`` into ``sizes`` and the rest, one MatMul a group
    (those rows of the weights) and a ``Sum``: the same function. Returns each GELU output's groups' tensors, in
    order, each then an activation of its own to quantize per row (its own scale per row; its weights their own
    grid per output channel, and GPTQ's rounding within the group)."""
    from onnx import helper, numpy_helper

    from .smoothing import statistics

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    made = {t: n for n in g.node for t in n.output}
    uses = readers(g)
    todo = {}
    for x, mms in groups.items():
        gelu = made.get(x)
        if gelu is None or gelu.op_type not in GELU_OPS or len(mms) != 1 or len(uses[x]) != 1:
            continue
        up = made.get(gelu.input[0])
        bias = gelu.input[1] if len(gelu.input) > 1 else ""
        if up is None or up.op_type != "MatMul" or up.input[1] not in inits or len(uses[up.output[0]]) != 1:
            continue  # the FFN-up product's columns must take the same permutation
        if (not bias or bias in inits) and int(inits[mms[0].input[1]].dims[0]) > sum(sizes):
            todo[x] = (up.input[1], bias, mms[0])
    if not todo:
        return {}
    peak = {x: amax for x, (amax, _) in statistics(model, sorted(todo), feeds).items()}  # padding left out
    replace, parts = {}, {}
    for x, (up, bias, down) in todo.items():
        order = np.argsort(-peak[x], kind="stable")
        arrays = {}
        for name, axis in ((up, 1), (bias, 0), (down.input[1], 0)):
            if name:
                arrays[name] = np.take(numpy_helper.to_array(inits[name]), order, axis=axis)
        for name in (up, bias):
            if name:
                inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(arrays[name]), name))
        w = arrays[down.input[1]]
        bounds = np.concatenate([[0], np.cumsum(sizes), [w.shape[0]]])
        p = f"{x}_group"
        g.initializer.append(numpy_helper.from_array(np.diff(bounds).astype(np.int64), f"{p}_sizes"))
        cut = [f"{p}{k}" for k in range(len(bounds) - 1)]
        nodes = [helper.make_node("Split", [x, f"{p}_sizes"], cut, name=f"{p}{SPLIT_SUFFIX}", axis=-1)]
        for k, part in enumerate(cut):
            rows = np.ascontiguousarray(w[bounds[k] : bounds[k + 1]])
            g.initializer.append(numpy_helper.from_array(rows, f"{down.input[1]}_group{k}"))
            nodes.append(
                helper.make_node(
                    "MatMul", [part, f"{down.input[1]}_group{k}"], [f"{part}_out"], name=f"{down.name}_group{k}"
                )
            )
        nodes.append(helper.make_node("Sum", [f"{q}_out" for q in cut], [down.output[0]], name=f"{down.name}_groups"))
        replace[id(down)] = nodes
        parts[x] = cut
    replace_nodes(g, replace)
    return parts
