"""The step every engine runs on a table (local chunks, Ray batches, Spark Arrow batches): read each row's
input from its columns, call the pipeline once for the good rows, append the result columns and ``error``.

What a row gives the call comes from the task registry (``score_inputs``): a text, a text and its pair, or
a question and its context; the result columns from its ``score_columns`` (see :mod:`.columns`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..errors import InputValueError
from ..pipeline import Pipeline, call_each
from ..stream import not_utf8
from ..tasks import TASKS
from ..tasks.score_columns import ScoreColumn
from .columns import describe, has_vector, to_array, take, width
from .io import BAD_INPUT

ROW_NUMBER = "_onnxpipe_row"  # an input row's 1-based number, sent along where a batch does not know its place


@dataclass(frozen=True)
class Inputs:
    """Which input columns feed the call: ``text`` (question answering's context), a classifier's ``pair``,
    question answering's ``question`` (or a constant question in the call's parameters)."""

    text: str = "text"
    pair: str | None = None
    question: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c for c in (self.text, self.pair, self.question) if c is not None)

    def check(self, task: str, params: dict[str, Any]) -> dict[str, Any]:
        """Refuse columns the task does not read; the call's parameters without a constant question."""
        kind = TASKS[task].score_inputs
        if self.pair is not None and kind != "text+pair":
            raise InputValueError(f"--pair-column: {task} takes no text pairs (text-classification does)")
        if kind != "question+context":
            if self.question is not None:
                raise InputValueError(f"--question-column: {task} takes no questions (question-answering does)")
            return params
        params = dict(params)
        if "question" in params and self.question is not None:
            raise InputValueError("a question column and a constant question (--params question) both given: pass one")
        if "question" not in params and self.question is None:
            raise InputValueError(
                "question-answering needs its questions: --question-column COLUMN, or one question for every "
                """row with --params '{"question": "..."}' (the context is --context-column, default text)"""
            )
        params.pop("question", None)
        return params


def result_columns(task: str, prefix: str, params: dict[str, Any]) -> tuple[tuple[ScoreColumn, ...], str]:
    """The result columns of ``task`` called with ``params``, and the name of the error column."""
    return describe(task, params), prefix + "error"


def add_results(
    table: pa.Table,
    pipe: Pipeline[Any, Any, Any],
    inputs: Inputs,
    prefix: str = "",
    first_row: int | None = None,
    fixed: bool = True,
    **params: Any,
) -> tuple[pa.Table, list[str]]:
    """``table`` with its text columns decoded and the result and error columns appended, plus the error
    messages. ``first_row`` (1-based) numbers rows in messages, as does a ``ROW_NUMBER`` column (dropped
    here; the Spark engine sends one); with neither (Ray), messages say "a row".
    ``fixed=False`` writes vectors as variable lists (for Spark, which has no fixed-size arrays).

    A little over 60 lines: one branch per kind of result column, each a few lines, kept side by side."""
    call = inputs.check(pipe.task, params)
    columns, error_col = result_columns(pipe.task, prefix, {**pipe.defaults, **params})
    names = [prefix + c.name for c in columns]
    clash = [c for c in (*names, error_col) if c in table.column_names]
    if clash:
        raise InputValueError(
            f"the input already has column(s) {', '.join(clash)}: pass --prefix (e.g. --prefix pred_) "
            "to name the result columns apart"
        )
    n = table.num_rows
    notes = table.column(BAD_INPUT).to_pylist() if BAD_INPUT in table.column_names else [None] * n
    cells = {c: table.column(c).to_pylist() if c in table.column_names else [None] * n for c in inputs.names}

    numbers = table.column(ROW_NUMBER).to_pylist() if ROW_NUMBER in table.column_names else None

    def where(i: int) -> str:
        if numbers is not None:
            return f"row {numbers[i]}"
        return f"row {first_row + i}" if first_row is not None else "a row"

    items: list[Any] = []  # what is called: None for a row that cannot be
    errors: list[str | None] = list(notes)
    for i in range(n):
        texts: dict[str, str] = {}
        for name in inputs.names:
            if errors[i] is not None:
                break
            texts[name], errors[i] = _text_of(cells[name][i], name, where(i))
        items.append(None if errors[i] is not None else _item(inputs, texts, params))
    good = [i for i, item in enumerate(items) if item is not None]
    values: dict[str, list[Any]] = {c.name: [None] * n for c in columns}
    for i, result in zip(good, call_each(pipe, [items[i] for i in good], **call)):
        if isinstance(result, Exception):
            errors[i] = f"{where(i)}: {result}"
        else:
            for c in columns:
                values[c.name][i] = take(c, result)
    table = table.drop_columns([c for c in (BAD_INPUT, ROW_NUMBER) if c in table.column_names])
    for name in inputs.names:  # CSV text arrives as bytes, decoded per row above; the input is kept as given
        if name in table.column_names:
            shown = pa.array(map(_as_text, cells[name]), pa.string())
            table = table.set_column(table.column_names.index(name), name, shown)
    for name, c in zip(names, columns):  # typed, so that a chunk of errors only has the same schema
        size = width(pipe, call, values[c.name]) if has_vector(c.type) else None
        array = to_array(c, values[c.name], size)
        table = table.append_column(name, array if fixed else array.cast(_variable(array.type)))
    table = table.append_column(error_col, pa.array(errors, pa.string()))
    return table, [e for e in errors if e is not None]


def _variable(t: pa.DataType) -> pa.DataType:
    """``t`` with every fixed-size list made a variable one."""
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t):
        return pa.list_(_variable(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([(f.name, _variable(f.type)) for f in t])
    return t


def _item(inputs: Inputs, texts: dict[str, str], params: dict[str, Any]) -> Any:
    if inputs.question is not None or "question" in params:
        question = texts[inputs.question] if inputs.question is not None else params["question"]
        return {"question": question, "context": texts[inputs.text]}
    if inputs.pair is not None:
        return {"text": texts[inputs.text], "text_pair": texts[inputs.pair]}
    return texts[inputs.text]


def _text_of(value: Any, column: str, where: str) -> tuple[str, str | None]:
    """A cell's text, or ("", the message) for a cell that holds none."""
    if value is None:
        return "", f"{where}: no text in column {column!r}"
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as e:
            return "", f"{where}: column {column!r} is {not_utf8(value, e)}"
    if not isinstance(value, str):
        return "", f"{where}: column {column!r} holds a {type(value).__name__}, not text"
    if not value.strip():  # the model would score it all the same (POSITIVE 0.83 on the default): no answer
        return "", f"{where}: column {column!r} is {'empty' if not value else 'only white space'}: no text to score"
    return value, None


def _as_text(value: Any) -> str | None:
    """The input cell as text for the output: decoded (undecodable bytes replaced), or a number's own digits."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return json.dumps(value, ensure_ascii=False, default=str)
