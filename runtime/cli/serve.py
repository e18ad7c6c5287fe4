"""``onnxpipe serve``: models over HTTP with micro-batching."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..errors import InputValueError, OnnxPipeError
from ..serve.settings import Settings
from .common import artifact_dir, positive_int


def add(sub: Any) -> None:
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


def cmd_serve(a: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..serve.app import create_app
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
            raise InputValueError(f"-m: {e}") from None
    if not models:
        from ..default import ensure_default

        models["default"] = ensure_default()
    settings = Settings.from_arguments(a)
    options: dict[str, Any] = {
        "host": a.host,
        "port": a.port,
        "log_level": "info" if a.access_log else "warning",
        "access_log": a.access_log,
        "timeout_graceful_shutdown": int(settings.timeout_s) + 5,
    }
    # uvicorn drains on SIGTERM / SIGINT: it stops accepting, answers what it accepted, then the app's
    # shutdown lets the inference thread finish its queue (in every worker, with --workers).
    if settings.workers == 1:
        uvicorn.run(create_app(models, settings), **options)
        return 0
    from .. import load_artifact, tune
    from ..serve.app import CONFIG_ENV, environment

    for path in models.values():  # timed once here, not by N workers at once on the cores they share
        tune.choose(load_artifact(path), settings.session_threads())
    os.environ[CONFIG_ENV] = environment(models, settings)
    uvicorn.run("onnxpipe.serve.app:from_environment", factory=True, workers=settings.workers, **options)
    return 0
