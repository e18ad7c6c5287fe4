"""The registry's column descriptions (``onnxpipe.tasks.score_columns``) as Arrow: types and arrays.

Every column is typed from the description, never inferred from the values, so that a chunk whose rows
all failed, or whose lists are all empty, has the same schema as any other chunk of the run (part files
merge, and Ray and Spark see one schema). A vector's size is the one thing a description leaves open: it
is the model's, read off the first result (or a one-word call when a chunk has none).
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import InputValueError
from ..pipeline import Pipeline
from ..tasks import TASKS
from ..tasks.score_columns import ScoreColumn, Type
from ..tasks.sparse_embeddings import as_pairs

PRIMITIVES = {
    "string": pa.string(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "int64": pa.int64(),
    "int32": pa.int32(),  # sparse embeddings' vocabulary indices
    "int8": pa.int8(),  # embeddings' precision int8 / binary (packed bits)
    "uint8": pa.uint8(),  # uint8 / ubinary
}
_widths: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def describe(task: str, params: dict[str, Any]) -> tuple[ScoreColumn, ...]:
    """The columns ``score`` adds for ``task`` called with ``params`` (the registry's description)."""
    columns = TASKS[task].score_columns
    if columns is None:
        scored = ", ".join(name for name, spec in TASKS.items() if spec.score_columns)
        raise InputValueError(f"onnxpipe score has no result columns for task {task!r} (it scores {scored})")
    return columns(params)


def has_vector(t: Type) -> bool:
    if isinstance(t, str):
        return False
    if t[0] == "vector":
        return True
    if t[0] == "struct":
        return any(has_vector(ft) for _, ft in t[1])
    return has_vector(t[1])


def arrow_type(t: Type, width: int | None = None, fixed: bool = True) -> pa.DataType:
    """``t`` as an Arrow type; a vector is ``fixed_size_list<T>[width]`` (``list<T>`` with ``fixed=False``:
    Spark has no fixed-size arrays)."""
    if isinstance(t, str):
        return PRIMITIVES[t]
    kind, inner = t
    if kind == "struct":
        return pa.struct([(name, arrow_type(ft, width, fixed)) for name, ft in inner])
    if kind == "list":
        return pa.list_(arrow_type(inner, width, fixed))
    if kind == "vector":
        if fixed and width is None:
            raise ValueError("a vector column's width is needed for its fixed-size type")
        return pa.list_(PRIMITIVES[inner], width) if fixed else pa.list_(PRIMITIVES[inner])
    raise ValueError(f"unknown column type {t!r}")


def take(column: ScoreColumn, result: Any) -> Any:
    """The part of one result that ``column`` holds."""
    if column.take == "field":
        return result[column.name]
    if column.take == "first":
        return result[0]
    if column.take == "listed":
        return [result] if isinstance(result, dict) else result
    if column.take == "sparse":
        return as_pairs(result)
    if column.take == "masks":  # fill-mask: a text with one mask gets a list of one list
        return [result] if not result or not isinstance(result[0], list) else result
    return result


def width(pipe: Pipeline[Any, Any, Any], params: dict[str, Any], values: list[Any]) -> int:
    """The model's vector size: off the first value, else (a chunk of errors only) one call, once per pipeline."""
    for v in values:
        if v is not None:
            vector = v if np.ndim(v) == 1 else v[0] if len(v) else None
            if vector is not None:
                _widths.setdefault(pipe, len(vector))
                return len(vector)
    if pipe not in _widths:
        probe = pipe.results(["a"], **params)[0]
        _widths[pipe] = int(np.shape(probe)[-1])
    return _widths[pipe]


def to_array(column: ScoreColumn, values: list[Any], size: int | None) -> pa.Array:
    """One column's values (None for a row without a result) as an array of the column's type."""
    t = arrow_type(column.type, size)
    if column.type == ("vector", "float32") and size is not None:
        # Embeddings, the bulk of a corpus job: one float32 block, no per-value conversion (bit-exact).
        good = [v is not None for v in values]
        block = np.zeros((len(values), size), dtype=np.float32)
        if any(good):
            block[np.array(good)] = np.stack([np.asarray(v, dtype=np.float32) for v in values if v is not None])
        flat = pa.array(block.reshape(-1))
        mask = pa.array([not g for g in good])
        return pa.FixedSizeListArray.from_arrays(flat, size, mask=mask)
    return pa.array(values, type=t)


def check_format(fmt: str, columns: tuple[ScoreColumn, ...], task: str) -> None:
    """CSV holds flat columns only: a vector or a list in a cell is not a format anyone reads back."""
    nested = [c.name for c in columns if not isinstance(c.type, str)]
    if fmt == "csv" and nested:
        raise InputValueError(
            f"{task} writes {', '.join(nested)} as lists, which CSV cannot hold: write Parquet (.parquet, "
            "Arrow-typed) or JSON lines (.jsonl) instead"
        )
