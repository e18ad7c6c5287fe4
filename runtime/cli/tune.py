"""``onnxpipe tune``: time an artifact's variants on this machine and cache which one runs."""

from __future__ import annotations

import argparse
from typing import Any

from ..tasks import DEFAULT_TASK
from .common import artifact_dir, positive_int


def add(sub: Any) -> None:
    p = sub.add_parser("tune", help="time an artifact's variants on this machine and cache which one runs")
    p.add_argument("-m", "--model", type=artifact_dir, metavar="ARTIFACT", help="default: the embedded default model")
    p.add_argument("--task", help=f"without -m: the default model of this task (default {DEFAULT_TASK})")
    p.add_argument("--threads", type=positive_int, help="intra-op threads (default: every core this process may use)")
    p.add_argument("--rounds", type=positive_int, default=7, help="turns of each variant (default 7)")
    p.set_defaults(func=cmd_tune)


def cmd_tune(a: argparse.Namespace) -> int:
    from .. import load_artifact, tune
    from ..default import ensure_default
    from ..session import default_threads
    from ..tasks import canonical_task

    path = a.model or ensure_default(canonical_task(a.task or DEFAULT_TASK))
    artifact, threads = load_artifact(path), a.threads or default_threads()
    choice = tune.choose(
        artifact, threads, retime=True, timer=lambda art, names, n: tune.measure(art, names, n, rounds=a.rounds)
    )
    print(f"{path}: {choice.machine}")
    for name, t in choice.timings.items():
        print(f"  {name:10} " + "  ".join(f"{b.replace('_', ' ')} {ms:7.2f} ms" for b, ms in t.items()))
    print(f"runs {tune.describe(choice)}")
    return 0
