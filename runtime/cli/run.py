"""``onnxpipe run``: a pipeline on texts given as arguments or lines on stdin, JSON lines out."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from collections.abc import Iterable

from .. import stream
from ..explain import jsonable
from ..pipeline import Pipeline
from ..errors import InputValueError
from .common import EXIT_SOME_FAILED, add_call_options, add_model_options, load, positive_int


def add(sub: Any) -> None:
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


def cmd_run(a: argparse.Namespace) -> int:
    pipe = load(a, batch_size=a.batch_size)  # before reading: a bad model fails at once, not at line one
    params = {**a.params, **({} if a.top_k is None else {"top_k": a.top_k})}
    source: Iterable[list[stream.Line]]
    if a.texts:
        source = [stream.from_arguments(a.texts)]
    elif sys.stdin is None or sys.stdin.isatty():
        raise InputValueError("no text given: pass texts as arguments or pipe lines to stdin")
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
        raise InputValueError("no text given: pass texts as arguments or non-blank lines on stdin")
    return EXIT_SOME_FAILED if failed else 0


def answer(pipe: Pipeline[Any, Any, Any], batch: list[stream.Line], params: dict[str, Any]) -> list[dict[str, Any]]:
    """One JSON row per line: the result (a dict merged in, anything else under the task's result key:
    labels, predictions, embedding, features), or ``{"line", "error"}`` for a line that has none."""
    from ..pipeline import call_each

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
