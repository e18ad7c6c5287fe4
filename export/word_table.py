"""The word embedding table in int8: one scale per row (per token id), looked up and dequantized per call.

The table is most of an encoder's bytes (MiniLM: 30,522 x 384 floats, 47 of its 59 MB as a rowwise int8 graph),
and onnxruntime's fused ``EmbedLayerNormalization`` reads it only in float. So the fused node is written out as
the ops it fuses, with the lookup reading int8 rows and their scales: ``Gather`` (int8 rows, per-row scales) →
``Cast`` → ``Mul``, plus the position and token-type rows, ``Add``, ``LayerNormalization``; the attention's
key-padding lengths (the fused node's ``mask_index``) become a ``ReduceSum`` of the mask. Per call it dequantizes
only the rows the batch reads, so the graph stays batch-invariant (every step per token) and the whole table is
never in float, on disk or in memory.

Written by hand because onnxruntime's quantizers either keep this node in float or quantize the table with one
scale for all of it (``QEmbedLayerNormalization``), which the rowwise graph has no calibrated range for.
"""

from __future__ import annotations

import numpy as np

from .errors import ExportError


def int8_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: (q [V, H] int8, scale [V, 1] float32) with table ~ q * scale."""
    scale = np.maximum(np.abs(table).max(axis=1, keepdims=True), 1e-12) / 127
    return np.clip(np.round(table / scale), -127, 127).astype(np.int8), scale.astype(np.float32)


def quantize_word_table(model, int8: bool = True) -> dict:
    """Rewrite ``model``'s ``EmbedLayerNormalization`` (in place) to look its words up in int8; returns what the
    manifest records. A graph without that node, or with inputs this rewrite does not carry (position ids, a
    non-constant table), is left as it is and says so. ``int8=False``: the same unfused ops on the float table
    (to check the rewrite against the fused node)."""
    from onnx import helper, numpy_helper

    g = model.graph
    nodes = [n for n in g.node if n.op_type == "EmbedLayerNormalization"]
    if len(nodes) != 1:
        return {"word_table": f"float ({len(nodes)} fused embedding nodes, 1 expected)"}
    e = nodes[0]
    inits = {i.name: i for i in g.initializer}
    ins = list(e.input) + [""] * (9 - len(e.input))
    ids, segments, words, positions, types, gamma, beta, mask, position_ids = ins
    if position_ids or words not in inits or positions not in inits or not mask or not segments:
        return {"word_table": "float (the fused embedding node takes inputs this rewrite does not carry)"}
    if sum(words in n.input for n in g.node) != 1:
        raise ExportError(f"the word embedding table {words} is read by more than the embedding node")
    table = numpy_helper.to_array(inits[words]).astype(np.float32)
    q, scale = int8_rows(table) if int8 else (table, np.ones((len(table), 1), np.float32))
    eps = next((helper.get_attribute_value(a) for a in e.attribute if a.name == "epsilon"), 1e-12)
    p = e.name or "embeddings"
    g.initializer.remove(inits[words])
    g.initializer.extend(
        [
            numpy_helper.from_array(q, f"{p}_words_q"),
            numpy_helper.from_array(scale, f"{p}_words_scale"),
            numpy_helper.from_array(np.array([0], np.int64), f"{p}_zero"),
            numpy_helper.from_array(np.array([1], np.int64), f"{p}_one"),
        ]
    )
    out = e.output[0]
    replaced = [
        helper.make_node("Gather", [f"{p}_words_q", ids], [f"{p}_wq"], name=f"{p}/GatherWords"),
        helper.make_node("Gather", [f"{p}_words_scale", ids], [f"{p}_ws"], name=f"{p}/GatherScales"),
        helper.make_node("Cast", [f"{p}_wq"], [f"{p}_wf"], name=f"{p}/Cast", to=1),  # float32
        helper.make_node("Mul", [f"{p}_wf", f"{p}_ws"], [f"{p}_words"], name=f"{p}/Dequantize"),
        # Positions 0..S-1, as the fused node takes them without position ids.
        helper.make_node("Shape", [ids], [f"{p}_len"], name=f"{p}/Length", start=1, end=2),
        helper.make_node(
            "Slice", [positions, f"{p}_zero", f"{p}_len", f"{p}_zero"], [f"{p}_pos"], name=f"{p}/Positions"
        ),
        helper.make_node("Gather", [types, segments], [f"{p}_types"], name=f"{p}/GatherTypes"),
        helper.make_node("Add", [f"{p}_words", f"{p}_pos"], [f"{p}_wp"], name=f"{p}/AddPositions"),
        helper.make_node("Add", [f"{p}_wp", f"{p}_types"], [f"{p}_sum"], name=f"{p}/AddTypes"),
        helper.make_node(
            "LayerNormalization", [f"{p}_sum", gamma, beta], [out], name=f"{p}/LayerNorm", axis=-1, epsilon=eps
        ),
    ]
    if len(e.output) > 1 and e.output[1]:  # the attention's key lengths: the mask's ones per row (right padding)
        replaced.append(
            helper.make_node("ReduceSum", [mask, f"{p}_one"], [e.output[1]], name=f"{p}/MaskIndex", keepdims=0)
        )
    if len(e.output) > 2 and e.output[2]:
        raise ExportError("the fused embedding node's third output (the embedding sum) is read: not rewritten")
    at = list(g.node).index(e)
    g.node.remove(e)
    for k, n in enumerate(replaced):
        g.node.insert(at + k, n)
    return {"word_table": f"{'int8' if int8 else 'float'}, a scale per row ({q.shape[0]} x {q.shape[1]})"}
