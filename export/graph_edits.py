"""The graph lookups and edits :mod:`.rowwise` and :mod:`.rotation` share: who reads a tensor, where each weight
product's bias is and making it that product's own (centring, rotation, bias correction and the GELU lift move a
share of a product into its bias), and splicing new nodes in before the ones that read them."""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def bias_of(uses: dict, matmul, inits: dict) -> str | None:
    """The constant 1-D bias initializer of the Add that alone reads ``matmul``'s output, if there is one."""
    after = uses.get(matmul.output[0], [])
    if len(after) == 1 and after[0].op_type == "Sum":  # one group's product of several (gelu_groups): the Sum's bias
        return bias_of(uses, after[0], inits)
    if len(after) != 1 or after[0].op_type != "Add":
        return None
    return output_bias(uses, matmul, inits)


def readers(g) -> defaultdict[str, list]:
    """Tensor name -> the nodes of graph ``g`` that read it."""
    uses: defaultdict[str, list] = defaultdict(list)
    for n in g.node:
        for t in n.input:
            uses[t].append(n)
    return uses


def output_bias(uses: dict, matmul, inits: dict) -> str | None:
    """The constant bias added to ``matmul``'s output: an Add's, a BiasGelu's, or an unfused attention's."""
    after = uses.get(matmul.output[0], [])
    if len(after) == 1 and after[0].op_type in ("Add", "BiasGelu"):
        bias = next((t for t in after[0].input if t != matmul.output[0]), None)
        return bias if bias in inits and len(inits[bias].dims) == 1 else None
    return attention_bias(uses, matmul, inits)


def own_biases(model, groups: dict[str, list]) -> None:
    """Give each weight MatMul's bias initializer to its reader alone, in place. An optimizer shares identical
    initializers (a tiny random model's zero biases: one LayerNorm's beta was an attention output's bias), and
    centring, rotation, bias correction and the GELU lift change a product's bias for that product only."""
    from onnx import numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    uses = readers(g)
    for n in (n for mms in groups.values() for n in mms):
        name = output_bias(uses, n, inits)
        if name is None or len(uses[name]) < 2:
            continue
        reader = next(r for r in uses[name] if any(r is d for d in _downstream(uses, n)))
        own = f"{name}/{reader.name}"
        g.initializer.append(numpy_helper.from_array(numpy_helper.to_array(inits[name]), own))
        inits[own] = g.initializer[-1]
        reader.input[list(reader.input).index(name)] = own
        uses[name] = [r for r in uses[name] if r is not reader]
        uses[own].append(reader)


def _downstream(uses: dict, matmul) -> list:
    """The nodes that can read ``matmul``'s bias: the Add or BiasGelu after it, or the attention behind its Split."""
    after = uses.get(matmul.output[0], [])
    split = [m for s in after if s.op_type == "Split" for m in uses.get(s.output[0], [])]
    return after + split


def add_to_bias(inits: dict, name: str | None, delta: np.ndarray) -> None:
    from onnx import numpy_helper

    if name is None:
        raise ValueError("no bias to carry the centring's offset")
    b = numpy_helper.to_array(inits[name]).astype(np.float64) + delta
    inits[name].CopyFrom(numpy_helper.from_array(b.astype(np.float32), name))


def attention_bias(uses: dict, matmul, inits: dict) -> str | None:
    """The bias initializer of the MultiHeadAttention behind ``matmul`` when it is an unfused Q/K/V projection."""
    split = uses.get(matmul.output[0], [])
    if len(split) != 1 or split[0].op_type != "Split":
        return None
    mha = uses.get(split[0].output[0], [])
    if len(mha) != 1 or mha[0].op_type != "MultiHeadAttention" or len(mha[0].input) < 4:
        return None
    return mha[0].input[3] if mha[0].input[3] in inits else None


def replace_nodes(g, replace: dict[int, list]) -> None:
    """Swap each node of graph ``g`` whose ``id`` is a key of ``replace`` for that list of nodes (empty: dropped),
    in place, the rest kept in order."""
    nodes = [m for n in g.node for m in replace.get(id(n), [n])]
    del g.node[:]
    g.node.extend(nodes)


def splice(g, before: dict[int, list]) -> None:
    """Put ``before[i]``'s nodes ahead of graph ``g``'s node i, in place (indices as they were before the splice)."""
    nodes = []
    for i, n in enumerate(g.node):
        nodes += before.get(i, [])
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
