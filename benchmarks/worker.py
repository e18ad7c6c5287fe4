"""One contender in a process of its own (``python -m onnxpipe.bench.worker``), driven by the harness's
:class:`~onnxpipe.bench.harness.Worker` over stdin/stdout (JSON lines).

Engines sharing a process on 2 cores disturb each other's thread pools (the transformers pipeline read
9.9 ms beside the others and 5.8 ms alone), so each contender gets a fresh interpreter; the harness
still interleaves their turns so that the machine's drift lands on all alike. Each command does a
whole timed block inside the worker, so no pipe round trip is inside a timer.

    harness → {"contender": NAME, "spec": {...}, "texts": [...], "task": T}   worker → {"ok": true, ...} | {"ok": false, ...}
    harness → {"cmd": "latency", "rounds": N}                      worker → {"latency_s": {length: [s, ...]}}
    harness → {"cmd": "throughput", "batch_size": B}               worker → {"seconds": s, "probs": [[...]]}
    harness → {"cmd": "quit"}
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from . import measure
from .contenders import BY_NAME, Spec


def serve() -> None:
    # The protocol keeps the real stdout; anything a library prints (C or Python) goes to stderr.
    stdout = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    stdin = sys.stdin
    init = json.loads(stdin.readline())
    spec_fields = init["spec"]
    spec = Spec(
        **{
            **spec_fields,
            "artifact": Path(spec_fields["artifact"]),
            "checkpoint": Path(spec_fields["checkpoint"]),
            "id2label": {int(k): v for k, v in spec_fields["id2label"].items()},
        }
    )
    texts = init["texts"]

    def say(obj: dict[str, Any]) -> None:
        stdout.write(json.dumps(obj) + "\n")
        stdout.flush()

    try:
        import importlib

        from onnxpipe.tasks import DEFAULT_TASK, TASKS

        module = TASKS[init.get("task") or DEFAULT_TASK].bench  # the task's contenders, by the registry
        registry = importlib.import_module(module).BY_NAME if module else BY_NAME
        runner = registry[init["contender"]].load(spec)
    except Exception as e:  # a peer that fails to load is reported, never silently dropped
        say({"ok": False, "reason": f"{type(e).__name__}: {e}"})
        return
    say({"ok": True, "note": runner.note, "size_bytes": runner.size_bytes, "pid": os.getpid()})
    for line in stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "latency":
            say({"latency_s": measure.latency_block(runner.call_one, cmd["rounds"])})
        elif cmd["cmd"] == "warmup":
            for _ in range(cmd["rounds"]):
                for text in measure.LENGTH_MIX.values():
                    runner.call_one(text)
            say({})
        elif cmd["cmd"] == "throughput":
            seconds, probs = measure.run_throughput(runner.predict, texts, cmd["batch_size"])
            say({"seconds": seconds, "probs": probs.tolist()})  # object arrays (spans) become lists too
        elif cmd["cmd"] == "quit":
            return


if __name__ == "__main__":
    serve()
