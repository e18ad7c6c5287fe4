"""One contender in a process of its own, driven by the harness over stdin/stdout (JSON lines).

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
import subprocess
import sys
from dataclasses import asdict
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
    spec = Spec(**{**spec_fields, "artifact": Path(spec_fields["artifact"]),
                   "checkpoint": Path(spec_fields["checkpoint"]),
                   "id2label": {int(k): v for k, v in spec_fields["id2label"].items()}})
    texts = init["texts"]
    say = lambda obj: (stdout.write(json.dumps(obj) + "\n"), stdout.flush())  # noqa: E731
    try:
        from . import embeddings, spans

        registry = {"sentence-embeddings": embeddings.BY_NAME, "token-classification": spans.BY_NAME,
                    "question-answering": spans.BY_NAME}.get(init.get("task"), BY_NAME)
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


class Worker:
    """The harness's handle on one contender's process."""

    def __init__(self, name: str, spec: Spec, texts: list[str], task: str = "text-classification"):
        self.name = name
        self.proc = subprocess.Popen([sys.executable, "-m", "onnxpipe.bench.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, encoding="utf-8")
        fields = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(spec).items()}
        self.ready = self._ask({"contender": name, "spec": fields, "texts": texts, "task": task})

    def _ask(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} worker process exited (status {self.proc.wait()})")
        return json.loads(line)

    def warmup(self, rounds: int) -> None:
        self._ask({"cmd": "warmup", "rounds": rounds})

    def latency(self, rounds: int) -> dict[str, list[float]]:
        return self._ask({"cmd": "latency", "rounds": rounds})["latency_s"]

    def throughput(self, batch_size: int) -> tuple[float, list]:
        reply = self._ask({"cmd": "throughput", "batch_size": batch_size})
        return reply["seconds"], reply["probs"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()


if __name__ == "__main__":
    serve()
