"""The ``onnxpipe`` command: one module a sub-command (export, run, explain, tune, score, serve; bench is the
benchmark harness's own parser), each adding its parser and holding its thin handler; the work itself lives
in the modules each handler calls.

argparse (standard library) rather than click/typer: the runtime's install stays at three
dependencies, and these sub-commands need nothing more.

Exit status: 0 success; 1 some inputs could not be answered (each has an error record); 2 a usage,
model or file error (one line on stderr: an :class:`InputError`, an :class:`OnnxPipeError` or an ``OSError``;
any other exception is a bug and keeps its traceback); 130 interrupted; 141 the reader closed stdout (``| head``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from .. import __version__
from ..errors import InputError, OnnxPipeError
from . import explain, export, run, score, serve, tune
from .common import EXIT_ERROR, EXIT_SIGPIPE

COMMANDS = (export, run, explain, tune, score, serve)


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
    except (OnnxPipeError, InputError, OSError) as e:  # a model, usage or file error, as the docstring lists
        print(f"onnxpipe: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onnxpipe", description="Hugging Face pipelines on ONNX Runtime.")
    parser.add_argument("--version", action="version", version=f"onnxpipe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add(sub)
    # Listed for --help only: main() hands `bench ...` to the harness's own parser.
    sub.add_parser(
        "bench", help="benchmark speed and accuracy against PyTorch, optimum and peers (onnxpipe bench --help)"
    )
    return parser


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
