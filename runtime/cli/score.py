"""``onnxpipe score``: a table file scored into another, resumably, here or on Ray or Spark."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import OnnxPipeError
from ..tasks import DEFAULT_TASK, TASKS
from .common import EXIT_SOME_FAILED, add_model_options, json_object, positive_int


def add(sub: Any) -> None:
    p = sub.add_parser("score", help="score a JSON lines, CSV or Parquet file into another, resumably")
    p.add_argument("input", type=Path, help="input table: .jsonl, .csv or .parquet")
    p.add_argument(
        "output",
        type=Path,
        help="output table (.jsonl, .csv or .parquet): every input column plus the results, rows in input order",
    )
    add_model_options(p)
    p.add_argument(
        "--column",
        "--context-column",
        dest="column",
        default="text",
        help=f"the column holding the text ({reading('question+context')}: the context) (default: text)",
    )
    p.add_argument(
        "--pair-column", help=f"{reading('text+pair')}: the column of each text's pair (e.g. NLI hypotheses)"
    )
    p.add_argument("--question-column", help=f"{reading('question+context')}: the column of questions")
    p.add_argument(
        "--task",
        help=f"the pipeline task (default: the artifact's; without -m, {DEFAULT_TASK}'s or --task's default model)",
    )
    p.add_argument(
        "--params",
        type=json_object,
        default={},
        metavar="JSON",
        help='call parameters as a JSON object, as `onnxpipe run --params`: \'{"candidate_labels": ["film", "food"]}\', '
        '\'{"aggregation_strategy": "simple"}\', \'{"question": "..."}\' (one question for every row)',
    )
    p.add_argument("--prefix", default="", help="prefix for the result columns, e.g. pred_ (default: none)")
    p.add_argument(
        "--batch-size", type=positive_int, help="texts per graph run (default: 32; 1 for a model without a pad token)"
    )
    p.add_argument(
        "--chunk-rows",
        type=positive_int,
        default=4096,
        help="rows read, scored and committed at a time (local, spark; a resume restarts at a chunk); "
        "ray: rows per actor call (default: 4096)",
    )
    p.add_argument(
        "--engine",
        choices=["local", "ray", "spark"],
        default="local",
        help="local: this process, resumable; ray: Ray Data actors (pip install '.[ray]'); "
        "spark: mapInArrow on a Spark session, resumable (pip install '.[spark]', and a Java runtime)",
    )
    p.add_argument("--ray-address", help="a Ray cluster to join (default: start a local Ray)")
    p.add_argument(
        "--spark-master", help="a Spark master URL to join (default: local[N], N the cores this process may use)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_score)


def reading(kind: str) -> str:
    """The tasks whose scored rows give the call ``kind`` of input (the registry's ``score_inputs``)."""
    return ", ".join(name for name, spec in TASKS.items() if spec.score_inputs == kind)


def cmd_score(a: argparse.Namespace) -> int:
    try:
        from ..scale.score import score_local
    except ImportError as e:
        raise OnnxPipeError(
            f"onnxpipe score needs the score extra (missing: {e.name}): "
            "pip install '.[score]' (from the onnxpipe repository)"
        ) from e
    from ..default import ensure_default
    from ..scale.results import Inputs
    from ..tasks import canonical_task

    task = canonical_task(a.task) if a.task else None
    model = a.model or ensure_default(task if task and TASKS[task].default_model else DEFAULT_TASK)
    inputs = Inputs(a.column, a.pair_column, a.question_column)
    options = dict(chunk_rows=a.chunk_rows, progress=not a.no_progress, params=a.params)
    job = (a.input, a.output, model, task, inputs, a.prefix, a.variant)  # the distributed engines' positional part
    if a.engine == "ray":
        try:
            from ..scale.ray import score_ray
        except ImportError as e:
            raise OnnxPipeError(f"--engine ray needs the ray extra (missing: {e.name}): pip install '.[ray]'") from e
        summary = score_ray(*job, address=a.ray_address, num_cpus=a.threads, batch_size=a.batch_size, **options)
    elif a.engine == "spark":
        try:
            from ..scale.spark import score_spark
        except ImportError as e:
            raise OnnxPipeError(
                f"--engine spark needs the spark extra (missing: {e.name}): pip install '.[spark]' and a Java runtime"
            ) from e
        summary = score_spark(*job, master=a.spark_master, threads=a.threads, batch_size=a.batch_size, **options)
    else:
        from .. import pipeline

        pipe = pipeline(task, model=model, variant=a.variant, threads=a.threads, batch_size=a.batch_size)
        summary = score_local(a.input, a.output, pipe, inputs, a.prefix, model_id=str(Path(model)), **options)
    print(
        json.dumps(
            {
                "output": str(a.output),
                "rows": summary.rows,
                "errors": summary.errors,
                "seconds": round(summary.seconds, 3),
                "rows_per_second": round(summary.rows_per_second, 1),
                "resumed_chunks": summary.resumed_chunks,
                "engine": a.engine,
            }
        )
    )
    return EXIT_SOME_FAILED if summary.errors else 0
