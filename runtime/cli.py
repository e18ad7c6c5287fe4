"""The ``onnxpipe`` command: export, run, explain, score, bench.

argparse (standard library) rather than click/typer: the runtime's install stays at three
dependencies, and these sub-commands need nothing more.

Exit status: 0 success; 1 some inputs could not be answered (each has an error record); 2 a usage,
model or file error (one line on stderr); 130 interrupted; 141 the reader closed stdout (``| head``).

Longer than 300 lines because it is five sub-commands' parsers and their thin handlers, each read top to
bottom; the work itself lives in the modules each handler calls.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable

from . import __version__, stream
from .artifact import MANIFEST
from .errors import INSTALL_EXPORT, OnnxPipeError
from .explain import jsonable
from .pipeline import Pipeline
from .serve.settings import Settings

EXIT_SOME_FAILED, EXIT_ERROR, EXIT_SIGPIPE = 1, 2, 141


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the harness parses its own options
        return run_guarded(lambda: cmd_bench(argv[1:]))
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: args.func(args))


def run_guarded(command: Callable[[], int | None]) -> int:
    try:
        return command() or 0
    # Errors the user can act on get one line; anything else is a bug and keeps its traceback.
    except BrokenPipeError:
        # The reader went away (`| head -1`): stop quietly. Point stdout at /dev/null so that the
        # interpreter's own flush at exit does not complain about the pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_SIGPIPE
    except (OnnxPipeError, ValueError, TypeError, OSError, RuntimeError) as e:
        print(f"onnxpipe: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {value!r}")
    return n


def artifact_dir(value: str) -> Path:
    """-m/--model: checked when parsed, so a wrong path is an error naming it, never a text."""
    path = Path(value).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: no such folder (an artifact folder written by onnxpipe export)")
    if not (path / MANIFEST).is_file():
        raise argparse.ArgumentTypeError(f"{value}: not an onnxpipe artifact ({MANIFEST} is missing)")
    return path


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-m",
        "--model",
        type=artifact_dir,
        metavar="ARTIFACT",
        help="artifact folder written by `onnxpipe export` (default: the embedded default model)",
    )
    p.add_argument(
        "--variant",
        help="which graph of the artifact: fp32, optimized or int8 (default: the one that pays on this machine, "
        "timed once and cached; see `onnxpipe tune`)",
    )
    p.add_argument("--threads", type=positive_int, help="intra-op threads (default: every core this process may use)")


def add_call_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--task",
        help="the pipeline task (default: the artifact's; text-classification without -m). "
        "sentence-embeddings without -m uses the embedded embeddings model",
    )
    p.add_argument(
        "--params",
        type=json_object,
        default={},
        metavar="JSON",
        help='call parameters as a JSON object, e.g. \'{"candidate_labels": ["film", "food"]}\' '
        "for zero-shot-classification or '{\"top_k\": 3}'",
    )


def json_object(value: str) -> dict[str, Any]:
    try:
        params = json.loads(value)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e.msg} at column {e.colno}): {value!r}") from None
    if not isinstance(params, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object of call parameters, got {value!r}")
    return params


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onnxpipe", description="Hugging Face pipelines on ONNX Runtime.")
    parser.add_argument("--version", action="version", version=f"onnxpipe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="export a checkpoint (hub id or folder) to an artifact folder")
    p.add_argument("source", nargs="?", help="hub id or local checkpoint folder")
    p.add_argument("outdir", nargs="?", type=Path, help="artifact folder to write")
    p.add_argument(
        "--default",
        action="store_true",
        help="build the embedded default model of --task (text-classification or sentence-embeddings) into the "
        "cache, and copy it to OUTDIR when one is given: onnxpipe export --default [--task T] [OUTDIR]",
    )
    p.add_argument("--task", default="text-classification", help="the pipeline task (default: text-classification)")
    p.add_argument("--optimize", action="store_true", help="add onnxruntime's fused graph (model_optimized.onnx)")
    p.add_argument(
        "--whole-last-layer",
        action="store_true",
        help="with --optimize, keep every row of a classifier's last layer (by default it computes only the row "
        "its head reads: the same answer, less work)",
    )
    p.add_argument(
        "--matryoshka-dims",
        type=lambda v: tuple(positive_int(d) for d in v.split(",")),
        default=(),
        metavar="N,N,...",
        help="sentence embeddings: the sizes the model was trained to be cut to, e.g. 768,512,256 (recorded in "
        "the manifest; OpenAI's `dimensions` is honoured for these)",
    )
    q = p.add_argument_group("int8 (model_quantized.onnx)")
    q.add_argument(
        "--quantize",
        choices=["int8", "static", "dynamic", "dynamic-per-tensor", "blockwise8"],
        help="add an int8 graph: int8 = static (calibrated, batch-invariant: the default variant); "
        "dynamic scales per batch (never the default); blockwise8 = MatMulNBits 8-bit weights",
    )
    q.add_argument(
        "--calibration",
        metavar="FILE_OR_DIR",
        help="text to calibrate static int8 on: a file (one text a line), a label<TAB>sentence TSV, "
        "or a folder with train.tsv (default: a bundled general English set)",
    )
    q.add_argument(
        "--calibration-method",
        choices=["minmax", "percentile"],
        default="minmax",
        help="activation range per tensor: min/max over the calibration text, or the 99.9th "
        "percentile of per-text extremes (default: minmax)",
    )
    q.add_argument(
        "--smooth",
        type=float,
        default=0.8,
        metavar="ALPHA",
        help="SmoothQuant strength moving activation outliers into weights, 0 to turn off (default 0.8, chosen on SST-2 train)",
    )
    q.add_argument(
        "--isa",
        choices=["auto", "avx2", "avx512", "avx512-vnni", "arm64"],
        default="auto",
        help="CPU the int8 graph is for, recorded in the manifest (default: this one, detected)",
    )
    q.add_argument(
        "--reduce-range",
        action="store_true",
        help="7-bit weights, onnxruntime's advice against u8 x s8 saturation on x86 without VNNI "
        "(off: on MiniLM-SST2 it lowered agreement with PyTorch)",
    )
    q.add_argument(
        "--exclude", action="append", default=[], metavar="NODE", help="keep this graph node in float (repeatable)"
    )
    q.add_argument(
        "--max-drop",
        type=float,
        metavar="POINTS",
        help="accuracy budget: keep nodes in float, most sensitive first, until the int8 graph loses "
        "at most POINTS accuracy (or agreement, unlabelled) against fp32 on --eval",
    )
    q.add_argument(
        "--eval",
        metavar="FILE_OR_DIR",
        help="data for --max-drop: a label<TAB>sentence TSV, a folder with train.tsv (calibration texts left "
        "out; dev is for reporting, never for choosing), or a text file",
    )
    p.add_argument("--revision", help="hub revision (branch, tag or commit)")
    p.add_argument("--opset", type=positive_int, help="ONNX opset (default: optimum's choice for the model)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTDIR if it exists")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "run", help="run a pipeline on texts (arguments, or lines on stdin as they arrive); JSON lines out"
    )
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to run (none: read lines from stdin)")
    add_model_options(p)
    add_call_options(p)
    p.add_argument("--top-k", type=positive_int, help="return the k best labels instead of the best one")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        help="most lines per graph run (default: 32; 1 for a model without a pad token)",
    )
    p.add_argument(
        "--jsonl",
        action="store_true",
        help='stdin lines are JSON: a string, or an object with "text" (and "text_pair")',
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("explain", help="show each of the four stages for one text")
    p.add_argument("text", help="the text to walk through the pipeline (with --json: a JSON input)")
    p.add_argument(
        "--json",
        action="store_true",
        help='TEXT is JSON: e.g. \'{"question": "...", "context": "..."}\' for question-answering',
    )
    add_model_options(p)
    add_call_options(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("tune", help="time an artifact's variants on this machine and cache which one runs")
    p.add_argument("-m", "--model", type=artifact_dir, metavar="ARTIFACT", help="default: the embedded default model")
    p.add_argument("--task", help="without -m: the default model of this task (default text-classification)")
    p.add_argument("--threads", type=positive_int, help="intra-op threads (default: every core this process may use)")
    p.add_argument("--rounds", type=positive_int, default=7, help="turns of each variant (default 7)")
    p.set_defaults(func=cmd_tune)

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
        help="the column holding the text (question-answering: the context) (default: text)",
    )
    p.add_argument("--pair-column", help="text-classification: the column of each text's pair (e.g. NLI hypotheses)")
    p.add_argument("--question-column", help="question-answering: the column of questions")
    p.add_argument(
        "--task",
        help="the pipeline task (default: the artifact's; without -m, text-classification's or --task's default model)",
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

    p = sub.add_parser("serve", help="serve models over HTTP with micro-batching (pip install '.[serve]')")
    p.add_argument(
        "-m",
        "--model",
        action="append",
        default=[],
        metavar="[NAME=]ARTIFACT",
        help="an artifact to serve, optionally named (repeatable; the first is the default; "
        "none: the embedded default sentiment model)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=positive_int, default=8080)
    Settings.add_arguments(p)  # one flag per server setting, from the settings themselves
    p.add_argument("--access-log", action="store_true", help="log each request on stderr (uvicorn's access log)")
    p.set_defaults(func=cmd_serve)

    # Listed for --help only: main() hands `bench ...` to the harness's own parser.
    sub.add_parser(
        "bench", help="benchmark speed and accuracy against PyTorch, optimum and peers (onnxpipe bench --help)"
    )
    return parser


def load(a: argparse.Namespace, **kw: Any) -> Pipeline[Any, Any, Any]:
    from . import pipeline

    task = a.task or ("text-classification" if a.model is None else None)
    return pipeline(task, model=a.model, variant=a.variant, threads=a.threads, **kw)


def export_default(a: argparse.Namespace, log: Callable[[str], None]) -> int:
    """The embedded default of --task, built into the cache once; copied to OUTDIR (its one folder argument)."""
    import shutil

    from .default import DEFAULT_MODELS, default_artifact_dir, ensure_default
    from .tasks import canonical_task

    if a.source and a.outdir:
        raise ValueError("--default takes one folder, OUTDIR (the default model is its own source)")
    out = Path(a.outdir or a.source) if (a.outdir or a.source) else None
    task = canonical_task(a.task)
    if task not in DEFAULT_MODELS:
        raise ValueError(f"no default model for task {task!r} (defaults exist for {', '.join(DEFAULT_MODELS)})")
    path = default_artifact_dir(task)
    if a.overwrite and out is None and (path / MANIFEST).is_file():
        shutil.rmtree(path)  # rebuild the cached default
    if (path / MANIFEST).is_file():
        log(f"the default {task} model is already built: {path}")
    path = ensure_default(task, log=log)
    if out is not None:
        if out.exists() and (not out.is_dir() or any(out.iterdir())) and not a.overwrite:
            raise ValueError(f"{out} already exists and is not empty: choose another folder or pass --overwrite")
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(path, out)
        path = out
    print(path)
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    def log(msg: str) -> None:
        print(f"onnxpipe: {msg}", file=sys.stderr, flush=True)

    try:
        import torch  # noqa: F401  (the one check that tells a runtime-only install apart)
        from onnxpipe.export import export
    except ImportError as e:
        raise OnnxPipeError(f"onnxpipe export needs the export extra (missing: {e.name}): {INSTALL_EXPORT}") from e
    if a.default:
        return export_default(a, log)
    if not (a.source and a.outdir):
        raise ValueError("export needs SOURCE and OUTDIR (or --default)")
    int8 = None
    if a.quantize:
        from onnxpipe.export.quantize import Int8Options

        int8 = Int8Options(
            mode=a.quantize,
            calibration=a.calibration,
            method=a.calibration_method,
            alpha=a.smooth or None,
            isa=a.isa,
            reduce_range=a.reduce_range,
            exclude=tuple(a.exclude),
            max_drop=a.max_drop,
            eval_data=a.eval,
        )
    elif a.max_drop is not None or a.eval or a.calibration:
        raise ValueError("--max-drop, --eval and --calibration go with --quantize")
    print(
        export(
            a.source,
            a.outdir,
            a.task,
            optimize=a.optimize,
            quantize=int8,
            one_row=not a.whole_last_layer,
            matryoshka_dims=a.matryoshka_dims,
            revision=a.revision,
            opset=a.opset,
            overwrite=a.overwrite,
            log=log,
        )
    )
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    pipe = load(a, batch_size=a.batch_size)  # before reading: a bad model fails at once, not at line one
    params = {**a.params, **({} if a.top_k is None else {"top_k": a.top_k})}
    source: Iterable[list[stream.Line]]
    if a.texts:
        source = [stream.from_arguments(a.texts)]
    elif sys.stdin is None or sys.stdin.isatty():
        raise ValueError("no text given: pass texts as arguments or pipe lines to stdin")
    else:
        source = stream.batches(sys.stdin.buffer, pipe.batch_size, jsonl=a.jsonl)
    answered = failed = 0
    for batch in source:
        for row in answer(pipe, batch, params):
            print(json.dumps(jsonable(row), ensure_ascii=False))
            if "error" in row:
                failed += 1
                print(f"onnxpipe: {row['error']}", file=sys.stderr)
            else:
                answered += 1
        sys.stdout.flush()  # each batch as soon as it is answered: a live stdin gets live answers
    if answered + failed == 0:
        raise ValueError("no text given: pass texts as arguments or non-blank lines on stdin")
    return EXIT_SOME_FAILED if failed else 0


def answer(pipe: Pipeline[Any, Any, Any], batch: list[stream.Line], params: dict[str, Any]) -> list[dict[str, Any]]:
    """One JSON row per line: the result (a dict merged in, anything else under the task's result key:
    labels, predictions, embedding, features), or ``{"line", "error"}`` for a line that has none."""
    from .pipeline import call_each

    good = [line for line in batch if line.error is None]
    results = dict(zip((line.number for line in good), call_each(pipe, [line.input for line in good], **params)))
    rows = []
    for line in batch:
        result = results.get(line.number, line.error)
        if isinstance(result, (str, Exception)):
            message = result if isinstance(result, str) else f"line {line.number}: {result}"
            rows.append({"line": line.number, "error": message})
        else:
            given = (
                line.obj
                if isinstance(line.obj, dict)
                else {"inputs": line.obj}
                if line.obj is not None
                else {"text": line.text}
                if line.pair is None
                else {"text": line.text, "text_pair": line.pair}
            )
            rows.append({**given, **result} if isinstance(result, dict) else {**given, pipe.result_key: result})
    return rows


def cmd_explain(a: argparse.Namespace) -> int:
    from .explain import explain

    t0 = time.perf_counter()
    pipe = load(a)
    if a.json:
        try:
            inputs = json.loads(a.text)
        except json.JSONDecodeError as e:
            raise ValueError(f"--json: TEXT is not valid JSON ({e.msg} at column {e.colno})") from None
    explain(pipe, inputs if a.json else a.text, load_seconds=time.perf_counter() - t0, **a.params)
    return 0


def cmd_tune(a: argparse.Namespace) -> int:
    from . import load_artifact, tune
    from .default import ensure_default
    from .session import default_threads
    from .tasks import canonical_task

    path = a.model or ensure_default(canonical_task(a.task or "text-classification"))
    artifact, threads = load_artifact(path), a.threads or default_threads()
    choice = tune.choose(
        artifact, threads, retime=True, timer=lambda art, names, n: tune.measure(art, names, n, rounds=a.rounds)
    )
    print(f"{path}: {choice.machine}")
    for name, t in choice.timings.items():
        print(f"  {name:10} " + "  ".join(f"{b.replace('_', ' ')} {ms:7.2f} ms" for b, ms in t.items()))
    print(f"runs {tune.describe(choice)}")
    return 0


def cmd_score(a: argparse.Namespace) -> int:
    try:
        from .scale.score import score_local
    except ImportError as e:
        raise OnnxPipeError(
            f"onnxpipe score needs the score extra (missing: {e.name}): "
            "pip install '.[score]' (from the onnxpipe repository)"
        ) from e
    from .default import ensure_default
    from .scale.results import Inputs
    from .tasks import TASKS, canonical_task

    task = canonical_task(a.task) if a.task else None
    model = a.model or ensure_default(task if task and TASKS[task].default_model else "text-classification")
    inputs = Inputs(a.column, a.pair_column, a.question_column)
    options = dict(chunk_rows=a.chunk_rows, progress=not a.no_progress, params=a.params)
    if a.engine == "ray":
        try:
            from .scale.ray import score_ray
        except ImportError as e:
            raise OnnxPipeError(f"--engine ray needs the ray extra (missing: {e.name}): pip install '.[ray]'") from e
        summary = score_ray(
            a.input,
            a.output,
            model,
            task,
            inputs,
            a.prefix,
            a.variant,
            address=a.ray_address,
            num_cpus=a.threads,
            batch_size=a.batch_size,
            **options,
        )
    elif a.engine == "spark":
        try:
            from .scale.spark import score_spark
        except ImportError as e:
            raise OnnxPipeError(
                f"--engine spark needs the spark extra (missing: {e.name}): pip install '.[spark]' and a Java runtime"
            ) from e
        summary = score_spark(
            a.input,
            a.output,
            model,
            task,
            inputs,
            a.prefix,
            a.variant,
            master=a.spark_master,
            threads=a.threads,
            batch_size=a.batch_size,
            **options,
        )
    else:
        from . import pipeline

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


def cmd_serve(a: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .serve.app import create_app
    except ImportError as e:
        raise OnnxPipeError(
            f"onnxpipe serve needs the serve extra (missing: {e.name}): "
            "pip install '.[serve]' (from the onnxpipe repository)"
        ) from e
    models: dict[str, str | Path] = {}
    for spec in a.model:
        name, _, path = spec.partition("=") if "=" in spec else ("", "", spec)
        try:
            models[name or Path(path).name] = artifact_dir(path)
        except argparse.ArgumentTypeError as e:
            raise ValueError(f"-m: {e}") from None
    if not models:
        from .default import ensure_default

        models["default"] = ensure_default("text-classification")
    settings = Settings.from_arguments(a)
    # uvicorn drains on SIGTERM / SIGINT: it stops accepting, answers what it accepted, then the app's
    # shutdown lets the inference thread finish its queue.
    uvicorn.run(
        create_app(models, settings),
        host=a.host,
        port=a.port,
        log_level="info" if a.access_log else "warning",
        access_log=a.access_log,
        timeout_graceful_shutdown=int(settings.timeout_s) + 5,
    )
    return 0


def cmd_bench(argv: list[str]) -> int:
    try:
        from onnxpipe.bench.cli import main as bench_main
    except ImportError as e:
        raise OnnxPipeError(
            f"the benchmark needs the bench extra (missing: {e.name}): "
            "pip install '.[bench]' (from the onnxpipe repository)"
        ) from e
    code: int = bench_main(argv)
    return code


if __name__ == "__main__":
    sys.exit(main())
