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
from .score import Summary, write_atomic, add_results


class PipelineActor:
    """One pipeline per actor process, loaded in ``__init__`` (once), applied to each Arrow batch."""

    def __init__(
        self,
        model: str,
        task: str | None,
        column: str,
        prefix: str,
        variant: str | None,
        threads: int,
        batch_size: int,
        params: dict[str, Any],
    ):
        from .. import pipeline

        self.pipe = pipeline(task, model=model, variant=variant, threads=threads, batch_size=batch_size)
        self.column, self.prefix, self.params = column, prefix, params

    def __call__(self, batch: pa.Table) -> pa.Table:
        return add_results(batch, self.pipe, self.column, self.prefix, **self.params)[0]


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
    column: str = "text",
    *,
    prefix: str = "",
    variant: str | None = None,
    batch_size: int = 256,
    concurrency: int | None = None,
    num_cpus: int | None = None,
    **params: Any,
) -> Any:
    """``dataset`` with the pipeline's result columns added (label / score / error for classification)."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", os.cpu_count() or 1))
    actors, threads, reserve = plan(cpus, num_cpus)
    return dataset.map_batches(
        PipelineActor,
        batch_format="pyarrow",
        batch_size=batch_size,
        concurrency=concurrency or actors,
        num_cpus=reserve,
        fn_constructor_kwargs={
            "model": str(Path(model).resolve()),
            "task": task,
            "column": column,
            "prefix": prefix,
            "variant": variant,
            "threads": threads,
            "batch_size": 32,
            "params": params,
        },
    )


def read(path: Path, column: str) -> Any:
    """A Ray dataset of ``path``, read as the local engine reads it (CSV cells as text, the text column as
    bytes so each row decodes on its own)."""
    import ray

    fmt = format_of(path)
    if fmt == "parquet":
        return ray.data.read_parquet(str(path))
    if fmt == "csv":
        import pyarrow.csv as pacsv

        with path.open("rb") as f:
            header = next(pacsv.open_csv(f)).schema.names
        types = {n: pa.binary() if n == column else pa.string() for n in header}
        return ray.data.read_csv(
            str(path), convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False)
        )
    return ray.data.read_json(str(path), lines=True)


def score_ray(
    input_path: Path,
    output_path: Path,
    model: str | Path,
    task: str | None = None,
    column: str = "text",
    prefix: str = "",
    variant: str | None = None,
    batch_size: int = 256,
    address: str | None = None,
    num_cpus: int | None = None,
) -> Summary:
    """Read, score on actors and write one OUTPUT file in input order. Local Ray unless ``address``."""
    import ray

    input_path, output_path = Path(input_path), Path(output_path)
    fmt = format_of(output_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"{input_path}: no such input file")
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
        ray.data.DataContext.get_current().execution_options.preserve_order = True  # rows in input order
        ray.data.DataContext.get_current().enable_progress_bars = False
        scored = map_pipeline(
            read(input_path, column), model, task, column, prefix=prefix, variant=variant, batch_size=batch_size
        )
        rows = errors = 0
        parts: list[Path] = []
        work = output_path.with_name(f".{output_path.name}.ray-parts")
        work.mkdir(parents=True, exist_ok=True)
        try:
            for i, table in enumerate(scored.iter_batches(batch_format="pyarrow", batch_size=4096)):
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
