"""``onnxpipe score``: a table in, the same table with result columns out, resumable.

The input is read in chunks of a fixed number of rows; each chunk's output is written to a part file
beside OUTPUT and renamed into place only when whole (an atomic commit), with a small record of its
rows and errors written first. Started again with the same command after any interruption (SIGKILL
included), the run skips committed chunks, so every row ends up in OUTPUT exactly once, in input
order. The parts are merged into OUTPUT (again by rename) and removed at the end.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pyarrow as pa

from ..pipeline import Pipeline, call_each
from ..stream import not_utf8
from .io import BAD_INPUT, count_rows, format_of, merge_parts, read_chunks, write_table

CHUNK_ROWS = 4096
JOB = "job.json"


@dataclass(frozen=True)
class Summary:
    rows: int
    errors: int
    seconds: float
    resumed_chunks: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def result_columns(task: str, prefix: str) -> tuple[str, ...]:
    """The columns ``score`` adds for ``task`` (its registry entry's result fields) and the error column."""
    from ..tasks import TASKS

    fields = [name for name, _ in TASKS[task].score_columns]
    if not fields:
        scored = ", ".join(name for name, spec in TASKS.items() if spec.score_columns)
        raise ValueError(f"onnxpipe score has no result columns for task {task!r} yet (it scores {scored})")
    return tuple(prefix + c for c in (*fields, "error"))


def add_results(
    table: pa.Table,
    pipe: Pipeline[Any, Any, Any],
    column: str,
    prefix: str = "",
    first_row: int | None = None,
    **params: Any,
) -> tuple[pa.Table, list[str]]:
    """``table`` with the text column decoded and label / score / error columns appended, plus the
    error messages. ``first_row`` (1-based) numbers rows in messages; None (Ray) leaves numbers out."""
    from ..tasks import TASKS

    *result_cols, error_col = result_columns(pipe.task, prefix)
    types = dict(TASKS[pipe.task].score_columns)
    fields = list(types)
    clash = [c for c in (*result_cols, error_col) if c in table.column_names]
    if clash:
        raise ValueError(
            f"the input already has column(s) {', '.join(clash)}: pass --prefix (e.g. --prefix pred_) "
            "to name the result columns apart"
        )
    n = table.num_rows
    values = table.column(column).to_pylist() if column in table.column_names else [None] * n
    notes = table.column(BAD_INPUT).to_pylist() if BAD_INPUT in table.column_names else [None] * n

    def where(i: int) -> str:
        return f"row {first_row + i}" if first_row is not None else "a row"

    texts: list[str | None] = []  # what is scored: None for a row that cannot be
    shown: list[str | None] = []  # what the output's text column holds: the input as given, error rows too
    errors: list[str | None] = []
    for i, (value, note) in enumerate(zip(values, notes)):
        text, error = _text_of(value, note, column, where(i))
        texts.append(text)
        shown.append(_as_text(value))
        errors.append(error)
    good = [i for i, t in enumerate(texts) if t is not None]
    columns: dict[str, list[Any]] = {f: [None] * n for f in fields}
    for i, result in zip(good, call_each(pipe, [texts[i] for i in good], **params)):
        if isinstance(result, Exception):
            errors[i] = f"{where(i)}: {result}"
        else:
            for f in fields:
                columns[f][i] = result[f]
    if BAD_INPUT in table.column_names:
        table = table.drop_columns([BAD_INPUT])
    if column in table.column_names:  # CSV text arrives as bytes, decoded per row above
        table = table.set_column(table.column_names.index(column), column, pa.array(shown, pa.string()))
    for name, f in zip(result_cols, fields):  # typed, so that a chunk of errors only has the same schema
        table = table.append_column(name, pa.array(columns[f], pa.type_for_alias(types[f])))
    table = table.append_column(error_col, pa.array(errors, pa.string()))
    return table, [e for e in errors if e is not None]


def _text_of(value: Any, note: str | None, column: str, where: str) -> tuple[str | None, str | None]:
    if note is not None:
        return None, note
    if value is None:
        return None, f"{where}: no text in column {column!r}"
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as e:
            return None, f"{where}: column {column!r} is {not_utf8(value, e)}"
    if not isinstance(value, str):
        return None, f"{where}: column {column!r} holds a {type(value).__name__}, not text"
    if not value.strip():  # the model would score it all the same (POSITIVE 0.83 on the default): no answer
        return None, f"{where}: column {column!r} is {'empty' if not value else 'only white space'}: no text to score"
    return value, None


def _as_text(value: Any) -> str | None:
    """The input cell as text for the output: decoded (undecodable bytes replaced), or a number's own digits."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return json.dumps(value, ensure_ascii=False, default=str)


def score_local(
    input_path: Path,
    output_path: Path,
    pipe: Pipeline[Any, Any, Any],
    column: str = "text",
    prefix: str = "",
    chunk_rows: int = CHUNK_ROWS,
    model_id: str = "",
    progress: bool = True,
    warn: Callable[[str], None] = lambda m: print(f"onnxpipe: {m}", file=sys.stderr),
) -> Summary:
    input_path, output_path = Path(input_path), Path(output_path)
    fmt = format_of(output_path)
    format_of(input_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"{input_path}: no such input file")
    if output_path.resolve() == input_path.resolve():
        raise ValueError(f"{output_path}: the output would overwrite the input")
    parts = open_parts(
        input_path,
        output_path,
        {
            "model": model_id,
            "variant": pipe.variant,
            "task": pipe.task,
            "column": column,
            "prefix": prefix,
            "chunk_rows": chunk_rows,
        },
    )
    try:
        return _run(input_path, output_path, pipe, column, prefix, chunk_rows, fmt, parts, progress, warn)
    except BaseException:
        if not any(parts.glob("part-*")):  # nothing committed: leave no folder that pins the settings
            shutil.rmtree(parts, ignore_errors=True)
        raise


def _run(
    input_path: Path,
    output_path: Path,
    pipe: Pipeline[Any, Any, Any],
    column: str,
    prefix: str,
    chunk_rows: int,
    fmt: str,
    parts: Path,
    progress: bool,
    warn: Callable[[str], None],
) -> Summary:
    bar = _progress(count_rows(input_path), progress)
    start, rows, resumed = time.perf_counter(), 0, 0
    for index, chunk in enumerate(read_chunks(input_path, chunk_rows, column)):
        part = parts / f"part-{index:06d}{output_path.suffix}"
        meta = parts / f"part-{index:06d}.json"
        if part.is_file() and meta.is_file():  # committed by an earlier run
            resumed += 1
        else:
            table, messages = add_results(chunk, pipe, column, prefix, first_row=index * chunk_rows + 1)
            for message in messages:
                warn(message)
            record = json.dumps({"rows": table.num_rows, "errors": messages})
            write_atomic(meta, functools.partial(_write_text, text=record))
            write_atomic(part, functools.partial(write_table, table, fmt=fmt))
        rows += chunk.num_rows
        bar.update(chunk.num_rows)
    bar.close()
    committed = sorted(parts.glob(f"part-*{output_path.suffix}"))
    errors = sum(len(json.loads(p.with_suffix(".json").read_text())["errors"]) for p in committed)
    if committed:
        write_atomic(output_path, lambda p: merge_parts(committed, p, fmt))
    else:  # an empty input still gets its (empty) output
        write_atomic(output_path, lambda p: p.write_bytes(b""))
    shutil.rmtree(parts)
    return Summary(rows, errors, time.perf_counter() - start, resumed)


def _write_text(path: Path, text: str) -> None:
    path.write_text(text)


def open_parts(input_path: Path, output_path: Path, settings: dict[str, Any]) -> Path:
    """The folder of committed chunks beside OUTPUT; a resume must be the same job."""
    stat = input_path.stat()
    job = {
        "input": str(input_path.resolve()),
        "input_bytes": stat.st_size,
        "input_mtime_ns": stat.st_mtime_ns,
        "output": str(output_path.resolve()),
        **settings,
    }
    parts = output_path.with_name(f".{output_path.name}.onnxpipe-parts")
    if parts.is_dir() and (parts / JOB).is_file():
        earlier = json.loads((parts / JOB).read_text())
        if earlier != job:
            changed = sorted(k for k in job if earlier.get(k) != job[k])
            raise ValueError(
                f"{parts} holds an unfinished run with other settings ({', '.join(changed)} differ): "
                "run the same command to finish it, or delete that folder to start over"
            )
        return parts
    parts.mkdir(parents=True, exist_ok=True)
    write_atomic(parts / JOB, lambda p: p.write_text(json.dumps(job, indent=1)))
    return parts


def write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _progress(total: int | None, enabled: bool) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the bar is a nicety: the runtime-only install scores without it
        enabled = False
    if not enabled:

        class _Quiet:
            def update(self, n: int) -> None: ...
            def close(self) -> None: ...

        return _Quiet()
    return tqdm(total=total, unit=" rows", desc="scoring", file=sys.stderr)
