"""Each quantized activation turned by a block Hadamard rotation before its per-row int8 (``--rotate B``).

Per-row int8's error grows with a row's largest |x| against its typical one: a few wide channels set the scale and
every other channel gets few steps. Multiplying the row by an orthogonal Hadamard matrix H (QuaRot, Ashkboos et
al. 2024) spreads those channels over the whole block, and the product is unchanged, as x W = (x H)(Hᵀ W): the
weights take Hᵀ once, at export. So each activation's product reads (x - c) H, quantized per row as before, where
c is its mean over the calibration tokens (its offset takes no int8 range; c W goes into the bias).

The rotation runs in the graph: in a post-LayerNorm encoder it cannot fold into the previous weights (a
LayerNorm's gamma and the residual connection read the unrotated tensor, a GELU is not linear). B is a block of the
width, not the whole width, and Sylvester's H_B is H_a ⊗ H_b, so each block, viewed as an a x b matrix X, is turned
in two small products, Hₐᵀ X H_b: a MatMul by H_b on the last axis, then a FusedMatMul by Hₐ that reads X H_b
transposed (a Reshape, the two products, a Reshape back). That is a + b multiply-adds an element instead of B: on
all-MiniLM-L6-v2 (widths 384 and 1536), B = 128 costs 24, ~4% of the fp32 graph's multiply-adds, against the
second int8 product's 100% that the leftover recipe pays for the same accuracy. Measured on the embeddings default
(onnxruntime's profiler, dev at batch 32, one VNNI thread): the rotations' products took 0.61 s of the pass against
0.98 s as one B x B MatMul. Not the obvious alternatives: an explicit Transpose between the stages is faster at one
thread (0.43 s) but onnxruntime 1.32's Transpose of small blocks is 20-40x slower on two threads, which batch 1 runs
on; and H_a as the left operand of a MatMul is slower than both.

Simulated first (activation error only, the embeddings default's 24 activations, 256 held-out train sentences):
error power 0.48 (B = 32) / 0.42 (64) / 0.38 (128) of per-row int8's, centred; GELU outputs (crest 8-14) 0.1-0.2.

Written by hand: onnxruntime's quantizers have no rotation; the Hadamard matrix itself is scipy's.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from onnxpipe.errors import InputValueError
from onnxpipe.graph_nodes import ROTATION_PREFIX


def hadamard_block(block: int) -> np.ndarray:
    """The orthonormal B x B Hadamard matrix (Sylvester's; symmetric, so it is its own inverse)."""
    from scipy.linalg import hadamard

    if block < 2 or block & (block - 1):
        raise InputValueError(f"the rotation block must be a power of two of at least 2, not {block}")
    return (hadamard(block) / np.sqrt(block)).astype(np.float32)


def kronecker_factors(block: int) -> tuple[np.ndarray, np.ndarray]:
    """Sylvester's H_B as H_a ⊗ H_b (a x b = B, a <= b, both powers of two): turning a block of B channels, viewed
    as an a x b matrix X, is Hₐᵀ X H_b, a + b multiply-adds an element instead of B (24 instead of 128 at B = 128)."""
    h = hadamard_block(block)  # refuses a bad block size
    a = 1 << (block.bit_length() - 1) // 2
    first = hadamard_block(a) if a > 1 else np.ones((1, 1), np.float32)
    second = hadamard_block(block // a)
    assert np.allclose(np.kron(first, second), h, atol=1e-6)
    return first, second


def rotate_activations(
    model, groups: dict[str, list], feeds: list[dict], block: int
) -> tuple[frozenset[str], int, int]:
    """Rotate each activation of ``groups`` (activation -> its weight MatMuls, :func:`.rowwise.weight_groups`) whose
    width ``block`` divides, in place: the MatMuls read ``(x - c)`` turned by blocks of ``block``, their weights
    ``Hᵀ W``, their biases (:func:`.graph_edits.output_bias`) gain ``c W``; where a MatMul has no bias to
    carry it, c = 0. Returns the rotation nodes' names (float: quantizing must leave them out), how many
    activations were turned, and how many were left as they were (width not a multiple of ``block``)."""
    from onnx import helper, numpy_helper

    from .activations import run_with_outputs
    from .graph_edits import add_to_bias, output_bias, readers, splice

    across, within = kronecker_factors(block)
    a, b = len(across), len(within)
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    uses = readers(g)
    width = {x: int(inits[mms[0].input[1]].dims[0]) for x, mms in groups.items()}
    todo = [x for x in groups if width[x] % block == 0]
    centred = {x for x in todo if all(output_bias(uses, n, inits) for n in groups[x])}
    means, ranks = _means(run_with_outputs(model, todo, feeds), todo, feeds)
    index = {id(n): i for i, n in enumerate(g.node)}
    before: dict[int, list] = defaultdict(list)
    h_within, h_across = f"{ROTATION_PREFIX}{block}_within", f"{ROTATION_PREFIX}{block}_across"
    g.initializer.extend([numpy_helper.from_array(within, h_within), numpy_helper.from_array(across, h_across)])
    names = []
    for x in todo:
        d, p = width[x], f"{x}_rot"
        c = means[x] if x in centred else np.zeros(d, np.float32)
        lead = [0] * (ranks[x] - 1)  # 0 keeps that dimension: batch (and sequence) as they come
        g.initializer.extend(
            [
                numpy_helper.from_array(np.array([*lead, d // block, a, b], np.int64), f"{p}_blocks"),
                numpy_helper.from_array(np.array([*lead, d], np.int64), f"{p}_rows"),
            ]
        )
        src, at = x, min(index[id(n)] for n in groups[x])
        if x in centred:
            g.initializer.append(numpy_helper.from_array(c, f"{p}_mean"))
            before[at].append(helper.make_node("Sub", [x, f"{p}_mean"], [f"{p}_centred"], name=f"{p}/Sub"))
            src = f"{p}_centred"
        before[at] += [
            helper.make_node("Reshape", [src, f"{p}_blocks"], [f"{p}_b"], name=f"{p}/Blocks"),
            helper.make_node("MatMul", [f"{p}_b", h_within], [f"{p}_bh"], name=f"{p}/MatMul"),
            # Hₐᵀ X H_b as (X H_b)ᵀ Hₐ: the block comes out transposed, b x a, a fixed channel order the weights
            # take below. FusedMatMul's transA reads it transposed: no Transpose node (module docstring: why).
            helper.make_node(
                "FusedMatMul", [f"{p}_bh", h_across], [f"{p}_bhh"], name=f"{p}/Across", domain="com.microsoft", transA=1
            ),
            helper.make_node("Reshape", [f"{p}_bhh", f"{p}_rows"], [f"{p}_out"], name=f"{p}/Rows"),
        ]
        names += [f"{p}/MatMul", f"{p}/Across"]
        turn = _turn(np.eye(d), across.astype(np.float64), within.astype(np.float64))
        for n in groups[x]:
            w = numpy_helper.to_array(inits[n.input[1]]).astype(np.float64)
            if x in centred:
                add_to_bias(inits, output_bias(uses, n, inits), c @ w)
            inits[n.input[1]].CopyFrom(numpy_helper.from_array((turn.T @ w).astype(np.float32), n.input[1]))
            n.input[0] = f"{p}_out"
    splice(g, before)
    return frozenset(names), len(todo), len(groups) - len(todo)


def _turn(rows: np.ndarray, across: np.ndarray, within: np.ndarray) -> np.ndarray:
    """What the graph's rotation nodes do to rows of width d, in numpy: on the identity, the d x d matrix R of
    ``x R`` (its columns in the graph's transposed-block order), so the weights take Rᵀ W."""
    a, b = len(across), len(within)
    blocks = rows.reshape(len(rows), -1, a, b) @ within
    return (blocks.swapaxes(-1, -2) @ across).reshape(len(rows), -1)


def _means(runs, xs: list[str], feeds: list[dict]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Each activation's mean over the calibration tokens (padding left out), and its rank."""
    sums = {x: np.zeros(0) for x in xs}
    counts = dict.fromkeys(xs, 0)
    ranks = dict.fromkeys(xs, 0)
    for feed, values in zip(feeds, runs):
        keep = feed.get("attention_mask")
        for x, v in zip(xs, values):
            rows = v.reshape(-1, v.shape[-1]).astype(np.float64)
            if keep is not None and rows.shape[0] == keep.size:
                rows = rows[keep.reshape(-1).astype(bool)]
            sums[x] = rows.sum(0) + (sums[x] if sums[x].size else 0)
            counts[x] += rows.shape[0]
            ranks[x] = v.ndim
    return {x: (sums[x] / max(counts[x], 1)).astype(np.float32) for x in xs}, ranks
