"""How many nodes an ONNX file's graph holds, how many of them are weight products left in float, and its metadata.

Batch 1 pays per node, and a weight product left in float is an int8 graph's fallback: ``onnxpipe explain``
prints both for the graph it loaded, ``onnxpipe.bench.graphs`` beside each graph's timings. The runtime does not
depend on the ``onnx`` package, so the file is read here with protobuf's wire format directly (only the fields
named below); the weights' bytes are skipped by their length, never decoded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

# Field numbers of onnx.proto3 (stable across IR versions).
MODEL_GRAPH, MODEL_METADATA = 7, 14
ENTRY_KEY, ENTRY_VALUE = 1, 2
GRAPH_NODE, GRAPH_INITIALIZER = 1, 5
NODE_INPUT, NODE_OUTPUT, NODE_OP_TYPE = 1, 2, 4
TENSOR_NAME = 8
# Ops whose second input is a weight matrix when it is a constant: MatMul, Gemm, the fused Attention.
PRODUCTS = ("MatMul", "Gemm", "Attention")
# The constant of an int8 graph's Hadamard rotations (export/rotation.py): float MatMuls that turn an activation
# before it is quantized, not weight products kept in float.
ROTATION_PREFIX = "rotation_hadamard_"
VARINT, I64, LEN, I32 = 0, 1, 2, 5


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, memoryview | None]]:
    """(field number, bytes of a length-delimited field or None) for each field of the message in buf[start:end]."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == VARINT:
            _, pos = _varint(buf, pos)
            yield field, None
        elif wire == LEN:
            size, pos = _varint(buf, pos)
            yield field, buf[pos : pos + size]
            pos += size
        elif wire in (I64, I32):
            pos += 8 if wire == I64 else 4
            yield field, None
        else:  # groups (3, 4) are not in onnx.proto; anything else is not protobuf
            raise ValueError(f"not an ONNX model: wire type {wire} at byte {pos}")


def _strings(message: memoryview, number: int) -> list[str]:
    return [bytes(v).decode() for f, v in _fields(message, 0, len(message)) if f == number and v is not None]


def node_counts(path: Path) -> tuple[int, int]:
    """(nodes, weight products left in float) of the ONNX file's main graph: ``len(model.graph.node)``, and how
    many MatMul, Gemm or Attention nodes take a constant (an initializer or a Constant node's output) as their
    second input, a rotation's Hadamard block left out."""
    buf = memoryview(Path(path).read_bytes())  # a page-cached read: ~30 ms for 90 MB of weights
    nodes: list[tuple[str, list[str], list[str]]] = []
    weights: set[str] = set()
    try:
        graph = next((v for f, v in _fields(buf, 0, len(buf)) if f == MODEL_GRAPH and v is not None), None)
        if graph is None:
            raise ValueError(f"{path} is not an ONNX model: it holds no graph")
        for field, value in _fields(graph, 0, len(graph)):
            if field == GRAPH_NODE and value is not None:
                op = next(iter(_strings(value, NODE_OP_TYPE)), "")
                nodes.append((op, _strings(value, NODE_INPUT), _strings(value, NODE_OUTPUT)))
            elif field == GRAPH_INITIALIZER and value is not None:
                weights.update(_strings(value, TENSOR_NAME))
    except (IndexError, UnicodeDecodeError):
        raise ValueError(f"{path} is not an ONNX model: its protobuf does not parse") from None
    weights.update(out[0] for op, _, out in nodes if op == "Constant" and out)
    in_float = sum(
        op in PRODUCTS and len(inputs) > 1 and inputs[1] in weights and not inputs[1].startswith(ROTATION_PREFIX)
        for op, inputs, _ in nodes
    )
    return len(nodes), in_float


def metadata(path: Path) -> dict[str, str]:
    """The ONNX file's ``metadata_props`` (what :class:`onnxpipe.session.Session` must know before it loads the
    graph), read without decoding anything else."""
    buf = memoryview(Path(path).read_bytes())
    try:
        entries = [v for f, v in _fields(buf, 0, len(buf)) if f == MODEL_METADATA and v is not None]
        return {next(iter(_strings(e, ENTRY_KEY)), ""): next(iter(_strings(e, ENTRY_VALUE)), "") for e in entries}
    except (IndexError, UnicodeDecodeError, ValueError):
        return {}  # not parseable here: onnxruntime's load reports the file as it finds it
