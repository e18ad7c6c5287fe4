"""onnxpipe on Spark: ``mapInArrow`` with one pipeline per Python worker, loaded once and reused.

    from pyspark.sql import SparkSession
    from onnxpipe.scale.spark import map_pipeline
    spark = SparkSession.builder.getOrCreate()
    df = spark.read.parquet("s3://bucket/docs/")
    df = map_pipeline(df, model="/shared/artifacts/minilm-embeddings", task="sentence-embeddings")
    df.write.parquet("s3://bucket/embedded/")

Batches reach the workers as Arrow record batches (``mapInArrow``: no pandas conversion, nested result
types intact) and go through the same ``add_results`` step as ``onnxpipe score --engine local``, so the
rows are the local engine's. Spark has no fixed-size arrays: a vector column is ``array<float>`` here
(``onnxpipe score --engine spark`` writes it back as Arrow's fixed-size list).

The artifact folder is read by each worker from ``model``: a path every executor can read (shared
storage, or the same path on each node). Without one, ``ship=True`` sends the folder with the job
(``SparkContext.addFile``) and each worker loads its copy (``SparkFiles.get``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import pyarrow as pa

from ..pipeline import Pipeline
from .columns import arrow_type, has_vector, width
from .io import BAD_INPUT
from .results import ROW_NUMBER, Inputs, add_results, result_columns
from .score import CHUNK_ROWS, Summary, score_local

_PIPES: dict[tuple[Any, ...], Pipeline[Any, Any, Any]] = {}  # per worker process: loaded once, then reused


def _pipeline(
    model: str, shipped: bool, task: str | None, variant: str | None, threads: int | None, batch_size: int | None
) -> Pipeline[Any, Any, Any]:
    key = (model, shipped, task, variant, threads, batch_size)
    if key not in _PIPES:
        from .. import pipeline

        path = model
        if shipped:
            from pyspark import SparkFiles

            path = SparkFiles.get(Path(model).name)
        _PIPES[key] = pipeline(task, model=path, variant=variant, threads=threads, batch_size=batch_size)
    return _PIPES[key]


def map_pipeline(
    df: Any,
    model: str | Path,
    task: str | None = None,
    column: str | Inputs = "text",
    *,
    prefix: str = "",
    variant: str | None = None,
    batch_size: int | None = None,
    threads: int | None = 1,
    ship: bool = False,
    **params: Any,
) -> Any:
    """``df`` with the pipeline's result columns and ``error`` added, as ``onnxpipe score`` writes them for
    the task (``params``: the call's parameters). ``batch_size``: texts per graph run (default 32);
    ``threads``: intra-op threads of each worker's pipeline (one worker per task slot, so 1 by default);
    ``ship``: send the artifact folder with the job instead of reading it from a shared path."""
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import StringType, StructField, StructType

    from .. import load_artifact
    from ..tasks import canonical_task

    model = str(Path(model).resolve())
    name = canonical_task(task) if task else load_artifact(model).task  # the driver reads the manifest only
    inputs = Inputs(column) if isinstance(column, str) else column
    inputs.check(name, params)
    columns, error = result_columns(name, prefix, params)
    results = pa.schema(
        [pa.field(prefix + c.name, arrow_type(c.type, fixed=False)) for c in columns] + [pa.field(error, pa.string())]
    )
    kept = [
        StructField(f.name, StringType()) if f.name in inputs.names else f  # text columns come back decoded
        for f in df.schema.fields
        if f.name not in (ROW_NUMBER, BAD_INPUT)
    ]
    schema = StructType(kept + list(from_arrow_schema(results).fields))
    if ship:
        df.sparkSession.sparkContext.addFile(model, recursive=True)

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        pipe = _pipeline(model, ship, task, variant, threads, batch_size)
        for batch in batches:
            table = add_results(pa.Table.from_batches([batch]), pipe, inputs, prefix, fixed=False, **params)[0]
            yield from table.to_batches()

    return df.mapInArrow(score, schema)


def session(master: str | None = None) -> Any:
    """The active Spark session, or a new one on ``master`` (default ``local[N]``, N this process's cores)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers run this interpreter (onnxpipe installed)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    spark = (
        SparkSession.builder.master(master or f"local[{cores}]")
        .appName("onnxpipe score")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def score_spark(
    input_path: Path,
    output_path: Path,
    model: str | Path,
    task: str | None = None,
    column: str | Inputs = "text",
    prefix: str = "",
    variant: str | None = None,
    master: str | None = None,
    threads: int | None = None,
    batch_size: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: bool = True,
    params: dict[str, Any] | None = None,
) -> Summary:
    """``onnxpipe score`` with each chunk scored on Spark: the local engine's reader, part files and resume
    (a killed run, started again, ends with every row once), the model's work spread over Spark's workers.

    The driver reads and writes the files and loads the model too (one thread): it checks the call's
    parameters as the local engine does, and gives a vector column its width when a chunk has no vector.

    Over 60 lines because a quarter is its signature (the local engine's options, which it takes alike) and the rest one Spark job read top to bottom."""
    from .. import pipeline

    inputs = Inputs(column) if isinstance(column, str) else column
    params = dict(params or {})
    start = time.perf_counter()
    driver = pipeline(task, model=str(model), variant=variant, threads=1, batch_size=batch_size)
    call = inputs.check(driver.task, params)
    columns = result_columns(driver.task, prefix, {**driver.defaults, **params})[0]
    spark = session(master)

    def scorer(chunk: pa.Table, first_row: int) -> tuple[pa.Table, list[str]]:
        numbers = pa.array(range(first_row, first_row + chunk.num_rows), pa.int64())
        # one slice per slot, in order (toArrow collects them in order)
        df = spark.createDataFrame(chunk.append_column(ROW_NUMBER, numbers))
        scored = map_pipeline(
            df,
            model,
            driver.task,
            inputs,
            prefix=prefix,
            variant=driver.variant,
            batch_size=batch_size,
            threads=threads or 1,
            **params,
        ).toArrow()
        for c in columns:  # Spark's array<float> back to the local engine's fixed-size lists
            if has_vector(c.type):
                name = prefix + c.name
                size = _width(scored.column(name)) or width(driver, call, [])
                index = scored.column_names.index(name)
                scored = scored.set_column(index, name, scored.column(name).cast(arrow_type(c.type, size)))
        return scored, [e for e in scored.column(prefix + "error").to_pylist() if e is not None]

    summary = score_local(
        input_path,
        output_path,
        driver,
        inputs,
        prefix,
        chunk_rows,
        model_id=str(Path(model)),
        progress=progress,
        params=params,
        scorer=scorer,
    )
    return Summary(summary.rows, summary.errors, time.perf_counter() - start, summary.resumed_chunks)


def _width(column: pa.ChunkedArray) -> int | None:
    """The length of the innermost lists of a (list of) vector column: the vectors' width; None if it has none."""
    import pyarrow.compute as pc

    array = column.combine_chunks()
    while pa.types.is_list(array.type.value_type):
        array = array.flatten()
    lengths = pc.list_value_length(array).drop_null()
    return int(lengths[0].as_py()) if len(lengths) else None
