"""``onnxpipe explain``: the four stages of one call, with their data and their time."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..errors import InputValueError
from .common import add_call_options, add_model_options, load


def add(sub: Any) -> None:
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


def cmd_explain(a: argparse.Namespace) -> int:
    from ..explain import explain

    t0 = time.perf_counter()
    pipe = load(a)
    if a.json:
        try:
            inputs = json.loads(a.text)
        except json.JSONDecodeError as e:
            raise InputValueError(f"--json: TEXT is not valid JSON ({e.msg} at column {e.colno})") from None
    explain(pipe, inputs if a.json else a.text, load_seconds=time.perf_counter() - t0, **a.params)
    return 0
