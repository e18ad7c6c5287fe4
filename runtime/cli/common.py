"""What the sub-commands share: argument types that check as they parse, the model and call options, loading."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..artifact import MANIFEST
from ..pipeline import Pipeline
from ..serve.settings import positive
from ..tasks import DEFAULT_TASK, SPECS, TASKS

positive_int = positive  # the one argparse count check, the server's too

EXIT_SOME_FAILED, EXIT_ERROR, EXIT_SIGPIPE = 1, 2, 141


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
        help=f"the pipeline task: {', '.join(TASKS)} (default: the artifact's; {DEFAULT_TASK} without -m). "
        f"Without -m, {with_default_model()} run their embedded default model",
    )
    p.add_argument(
        "--params",
        type=json_object,
        default={},
        metavar="JSON",
        help='call parameters as a JSON object, e.g. \'{"candidate_labels": ["film", "food"]}\' '
        "for zero-shot-classification or '{\"top_k\": 3}'",
    )


def with_default_model() -> str:
    """The tasks the registry gives an embedded default model, for the help texts."""
    return ", ".join(spec.name for spec in SPECS if spec.default_model)


def json_object(value: str) -> dict[str, Any]:
    try:
        params = json.loads(value)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e.msg} at column {e.colno}): {value!r}") from None
    if not isinstance(params, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object of call parameters, got {value!r}")
    return params


def load(a: argparse.Namespace, **kw: Any) -> Pipeline[Any, Any, Any]:
    from .. import pipeline

    task = a.task or (DEFAULT_TASK if a.model is None else None)
    return pipeline(task, model=a.model, variant=a.variant, threads=a.threads, **kw)
