"""Tables in and out for ``onnxpipe score``: JSON lines, CSV and Parquet, chosen by file extension,
read in chunks of a fixed number of rows (bounded memory, and the same chunks again on a resume).

pyarrow does the reading and writing (the ``score`` extra). Two things are by hand, each for a reason:
JSON lines are read line by line, because pyarrow's JSON reader takes a whole file and stops at the
first bad line, where a bad line here must cost only that row; and CSV cells are read as text (the text
column as bytes, decoded per row), so every column passes through unchanged and a cell that is not
UTF-8 is one bad row rather than a failed block.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import pyarrow as pa

from ..errors import InputValueError
from ..stream import not_json, not_utf8

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
BAD_INPUT = "_onnxpipe_input_error"  # a reader's note on a row it could not read; becomes the error column


def format_of(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputValueError(
            f"{path}: unknown file type {path.suffix or '(none)'!r}; onnxpipe score reads and writes "
            f"{', '.join(sorted(FORMATS))}"
        )
    return fmt


def read_chunks(path: Path, rows: int, column: str | tuple[str, ...]) -> Iterator[pa.Table]:
    """Tables of exactly ``rows`` rows (the last may be shorter), in file order; ``column``: the text
    column(s), which a row must hold as text."""
    column = (column,) if isinstance(column, str) else column
    fmt = format_of(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such input file")
    batches = {"jsonl": _jsonl_batches, "csv": _csv_batches, "parquet": _parquet_batches}[fmt](path, rows, column)
    pending: list[pa.Table] = []
    count = 0
    for batch in batches:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        pending.append(table)
        count += table.num_rows
        while count >= rows:
            merged = pa.concat_tables(pending, promote_options="permissive")
            yield merged.slice(0, rows)
            rest = merged.slice(rows)
            pending, count = [rest], rest.num_rows
    if count:
        yield pa.concat_tables(pending, promote_options="permissive")


def _jsonl_batches(path: Path, rows: int, column: tuple[str, ...]) -> Iterator[pa.Table]:
    records: list[dict[str, Any]] = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            records.append(_json_record(number, raw, column))
            if len(records) == rows:
                yield _table(records)
                records = []
    if records:
        yield _table(records)


def _json_record(number: int, raw: bytes, columns: tuple[str, ...]) -> dict[str, Any]:
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        return {BAD_INPUT: f"row {number}: {not_utf8(raw, e)}"}
    except json.JSONDecodeError as e:
        return {BAD_INPUT: f"row {number}: {not_json(e)}"}
    if not isinstance(record, dict):
        fields = " and ".join(repr(c) for c in columns)
        return {BAD_INPUT: f"row {number}: a JSON {type(record).__name__}, not an object with a {fields} field"}
    for column in columns:
        value = record.get(column)
        if value is not None and not isinstance(value, str):
            return {
                **record,
                column: json.dumps(value, ensure_ascii=False),  # kept, as its JSON text
                BAD_INPUT: f"row {number}: column {column!r} holds a {type(value).__name__}, not text",
            }
    return record


def _table(records: list[dict[str, Any]]) -> pa.Table:
    """Records → table with every key any record has (pyarrow's from_pylist takes the first record's
    keys only); a column whose values no one Arrow type holds (1 here, "a" there) is kept as JSON text
    rather than failing the chunk."""
    names = list(dict.fromkeys(k for r in records for k in r))
    columns = {}
    for name in names:
        values = [r.get(name) for r in records]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            columns[name] = pa.array(
                [None if v is None else json.dumps(v, ensure_ascii=False) for v in values], pa.string()
            )
    return pa.table(columns)


def _csv_batches(path: Path, rows: int, column: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as pacsv

    with path.open("rb") as f:
        header = next(pacsv.open_csv(f, read_options=pacsv.ReadOptions(block_size=1 << 16))).schema.names
    types = {name: pa.binary() if name in column else pa.string() for name in header}
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=1 << 22),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
    )
    yield from reader


def _parquet_batches(path: Path, rows: int, column: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    yield from pq.ParquetFile(path).iter_batches(batch_size=rows)


def count_rows(path: Path) -> int | None:
    """Rows in the input when it is cheap to know (Parquet metadata); None otherwise."""
    if format_of(path) == "parquet":
        import pyarrow.parquet as pq

        rows: int = pq.ParquetFile(path).metadata.num_rows
        return rows
    return None


def write_table(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    else:
        with path.open("w", encoding="utf-8") as f:
            for row in table.to_pylist():
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


def merge_parts(parts: list[Path], path: Path, fmt: str) -> None:
    """Concatenate part files (each a complete file of ``fmt``) into ``path``, in order."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        schema = pa.unify_schemas([pq.read_schema(p) for p in parts], promote_options="permissive")
        with pq.ParquetWriter(path, schema) as writer:
            for p in parts:
                writer.write_table(pq.read_table(p).cast(schema))
        return
    with path.open("wb") as out:
        for i, p in enumerate(parts):
            with p.open("rb") as f:
                if fmt == "csv" and i > 0:
                    f.readline()  # each part has the header; the merged file has it once
                while block := f.read(1 << 20):
                    out.write(block)
