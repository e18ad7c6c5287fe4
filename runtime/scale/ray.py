"""onnxpipe on Ray Data: ``map_batches`` with an actor that loads the pipeline once.

    import ray, onnxpipe.scale.ray as opray
    ds = ray.data.read_parquet("s3://bucket/reviews/")
    ds = opray.map_pipeline(ds, model="/shared/artifacts/minilm-sst2", column="text")
    ds.write_parquet("s3://bucket/scored/")

The artifact folder must be readable on every node (shared storage, or shipped with the job's
``runtime_env``); each actor loads it once. Results are those of the in-process pipeline: the same
``add_results`` step as ``onnxpipe score --engine local``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from .io import format_of, merge_parts, write_table
from .results import Inputs, add_results, result_columns
from .columns import check_format
from .score import CHUNK_ROWS, Summary, write_atomic


class PipelineActor:
    """One pipeline per actor process, loaded in ``__init__`` (once), applied to each Arrow batch."""

    def __init__(
        self,
        model: str,
        task: str | None,
        inputs: Inputs,
        prefix: str,
        variant: str | None,
        threads: int,
        batch_size: int | None,
        params: dict[str, Any],
    ):
        from .. import pipeline

        self.pipe = pipeline(task, model=model, variant=variant, threads=threads, batch_size=batch_size)
        self.inputs, self.prefix, self.params = inputs, prefix, params

    def __call__(self, batch: pa.Table) -> pa.Table:
        return add_results(batch, self.pipe, self.inputs, self.prefix, **self.params)[0]


def plan(cpus: int, threads: int | None = None) -> tuple[int, int, int]:
    """(actors, threads per actor, CPUs each actor reserves) for a cluster of ``cpus`` cores.

    Two threads per actor (one ran 2x slower than two on this project's 2-core machines). One CPU is
    left unreserved for Ray Data's read and write tasks: actors that reserve every CPU leave the reads
    no slot, and the job waits forever (seen on 2 cores). An actor may still run more threads than it
    reserves; the reservation is for scheduling."""
    threads = threads or min(2, cpus)
    spare = max(1, cpus - 1)
    reserve = min(threads, spare)
    return max(1, spare // reserve), threads, reserve


def map_pipeline(
    dataset: Any,
    model: str | Path,
    task: str | None = None,
    column: str | Inputs = "text",
    *,
    prefix: str = "",
    variant: str | None = None,
    batch_size: int | None = None,
    rows_per_call: int = 256,
    concurrency: int | None = None,
    num_cpus: int | None = None,
    **params: Any,
) -> Any:
    """``dataset`` with the pipeline's result columns and ``error`` added, as ``onnxpipe score`` writes them
    for the task (``params``: the call's parameters). ``batch_size``: texts per graph run (the pipeline's,
    default 32); ``rows_per_call``: rows handed to an actor at a time."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", os.cpu_count() or 1))
    actors, threads, reserve = plan(cpus, num_cpus)
    inputs = Inputs(column) if isinstance(column, str) else column
    return dataset.map_batches(
        PipelineActor,
        batch_format="pyarrow",
        batch_size=rows_per_call,
        compute=ray.data.ActorPoolStrategy(size=concurrency or actors),
        num_cpus=reserve,
        fn_constructor_kwargs={
            "model": str(Path(model).resolve()),
            "task": task,
            "inputs": inputs,
            "prefix": prefix,
            "variant": variant,
            "threads": threads,
            "batch_size": batch_size,
            "params": params,
        },
    )


def read(path: Path, columns: tuple[str, ...]) -> Any:
    """A Ray dataset of ``path``, read as the local engine reads it (CSV cells as text, the text columns as
    bytes so each row decodes on its own)."""
    import ray

    fmt = format_of(path)
    if fmt == "parquet":
        return ray.data.read_parquet(str(path))
    if fmt == "csv":
        import pyarrow.csv as pacsv

        with path.open("rb") as f:
            header = next(pacsv.open_csv(f)).schema.names
        types = {n: pa.binary() if n in columns else pa.string() for n in header}
        return ray.data.read_csv(
            str(path), convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False)
        )
    return ray.data.read_json(str(path), lines=True)


def score_ray(
    input_path: Path,
    output_path: Path,
    model: str | Path,
    task: str | None = None,
    column: str | Inputs = "text",
    prefix: str = "",
    variant: str | None = None,
    batch_size: int | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: bool = True,
    params: dict[str, Any] | None = None,
) -> Summary:
    """Read, score on actors and write one OUTPUT file in input order. Local Ray unless ``address``.

    Not resumable: a run killed part way leaves OUTPUT as it was (written by an atomic rename at the end),
    and the same command run again writes it whole.

    Over 60 lines because a quarter is its signature (the local engine's options) and the rest is one Ray Data job, read top to bottom."""
    import ray

    from .. import load_artifact
    from ..tasks import canonical_task

    input_path, output_path = Path(input_path), Path(output_path)
    inputs = Inputs(column) if isinstance(column, str) else column
    params = dict(params or {})
    fmt = format_of(output_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"{input_path}: no such input file")
    name = canonical_task(task) if task else load_artifact(model).task
    inputs.check(name, params)
    check_format(fmt, result_columns(name, prefix, params)[0], name)
    start = time.perf_counter()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address,
            num_cpus=None if address else (num_cpus or os.cpu_count()),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # rows in input order
        context.enable_progress_bars = progress
        scored = map_pipeline(
            read(input_path, inputs.names),
            model,
            task,
            inputs,
            prefix=prefix,
            variant=variant,
            batch_size=batch_size,
            rows_per_call=chunk_rows,
            num_cpus=num_cpus,
            **params,
        )
        rows = errors = 0
        parts: list[Path] = []
        work = output_path.with_name(f".{output_path.name}.ray-parts")
        shutil.rmtree(work, ignore_errors=True)  # a killed run's parts: this run writes them all again
        work.mkdir(parents=True)
        try:
            for i, table in enumerate(scored.iter_batches(batch_format="pyarrow", batch_size=chunk_rows)):
                part = work / f"part-{i:06d}{output_path.suffix}"
                write_table(table, part, fmt)
                parts.append(part)
                rows += table.num_rows
                errors += table.num_rows - table.column(prefix + "error").null_count
            write_atomic(output_path, lambda p: merge_parts(parts, p, fmt) if parts else p.write_bytes(b""))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        if started_here:
            ray.shutdown()
    return Summary(rows, errors, time.perf_counter() - start, 0)
