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

from ..errors import InputValueError
from ..pipeline import Pipeline
from .columns import check_format
from .io import count_rows, format_of, merge_parts, read_chunks, write_table
from .results import Inputs, add_results, result_columns

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


def score_local(
    input_path: Path,
    output_path: Path,
    pipe: Pipeline[Any, Any, Any],
    column: str | Inputs = "text",
    prefix: str = "",
    chunk_rows: int = CHUNK_ROWS,
    model_id: str = "",
    progress: bool = True,
    warn: Callable[[str], None] = lambda m: print(f"onnxpipe: {m}", file=sys.stderr),
    params: dict[str, Any] | None = None,
    scorer: Callable[[pa.Table, int], tuple[pa.Table, list[str]]] | None = None,
) -> Summary:
    """Score ``input_path`` into ``output_path`` with ``pipe`` called with ``params``, resumably.
    ``scorer(chunk, first_row)`` replaces the in-process step (the Spark engine scores chunks on Spark)."""
    input_path, output_path = Path(input_path), Path(output_path)
    inputs = Inputs(column) if isinstance(column, str) else column
    params = dict(params or {})
    fmt = format_of(output_path)
    format_of(input_path)
    # parameters the call refuses (an unknown strategy, a bad top_k) stop the run before any row
    pipe.sanitize_parameters(**{**pipe.defaults, **inputs.check(pipe.task, params)})
    check_format(fmt, result_columns(pipe.task, prefix, {**pipe.defaults, **params})[0], pipe.task)
    if not input_path.is_file():
        raise FileNotFoundError(f"{input_path}: no such input file")
    if output_path.resolve() == input_path.resolve():
        raise InputValueError(f"{output_path}: the output would overwrite the input")
    parts = open_parts(
        input_path,
        output_path,
        {
            "model": model_id,
            "variant": pipe.variant,
            "task": pipe.task,
            "column": inputs.text,
            **({"pair_column": inputs.pair} if inputs.pair else {}),
            **({"question_column": inputs.question} if inputs.question else {}),
            **({"params": params} if params else {}),
            "prefix": prefix,
            "chunk_rows": chunk_rows,
        },
    )
    if scorer is None:

        def scorer(chunk: pa.Table, first_row: int) -> tuple[pa.Table, list[str]]:
            return add_results(chunk, pipe, inputs, prefix, first_row, **params)

    try:
        return _run(input_path, output_path, inputs.names, scorer, chunk_rows, fmt, parts, progress, warn)
    except BaseException:
        if not any(parts.glob("part-*")):  # nothing committed: leave no folder that pins the settings
            shutil.rmtree(parts, ignore_errors=True)
        raise


def _run(
    input_path: Path,
    output_path: Path,
    columns: tuple[str, ...],
    scorer: Callable[[pa.Table, int], tuple[pa.Table, list[str]]],
    chunk_rows: int,
    fmt: str,
    parts: Path,
    progress: bool,
    warn: Callable[[str], None],
) -> Summary:
    bar = _progress(count_rows(input_path), progress)
    start, rows, resumed = time.perf_counter(), 0, 0
    for index, chunk in enumerate(read_chunks(input_path, chunk_rows, columns)):
        part = parts / f"part-{index:06d}{output_path.suffix}"
        meta = parts / f"part-{index:06d}.json"
        if part.is_file() and meta.is_file():  # committed by an earlier run
            resumed += 1
        else:
            table, messages = scorer(chunk, index * chunk_rows + 1)
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
            raise InputValueError(
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
