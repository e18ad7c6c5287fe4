"""The server's state and the one path every route's request takes: read (the Python call's parsing, under the
input limit) → the model's batcher (tokenize with the rest of its batch, run, postprocess) → complete, bounded
by the request timeout. Routes (:mod:`.routes`) only translate their request shape into a call and back."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from collections.abc import Callable

from ..inputs import INPUT_ERRORS
from ..pipeline import Pipeline, Plan
from ..tasks import TASKS, canonical_task, runs_on
from .batcher import Batcher, QueueFull
from .errors import HTTPError
from .guard import Callers
from .metrics import Metrics
from .settings import Settings


@dataclass
class Served:
    """One model: its pipeline, and the batcher that owns its graph runs."""

    name: str
    path: Path
    pipe: Pipeline[Any, Any, Any] | None = None
    batcher: Batcher | None = None
    others: dict[str, Pipeline[Any, Any, Any]] = field(default_factory=dict)  # other tasks on the same graph

    @property
    def loaded(self) -> Pipeline[Any, Any, Any]:
        assert self.pipe is not None, "served before load"  # the server answers 503 until every model loads
        return self.pipe

    def task_pipe(self, task: str | None) -> Pipeline[Any, Any, Any]:
        """The pipeline for ``task`` on this model's graph (one session: the first pipeline's engine)."""
        from .. import pipeline

        pipe = self.loaded
        if task is None or task == pipe.task:
            return pipe
        if not runs_on(task, pipe.task):
            raise HTTPError(
                400,
                f"model {self.name!r} runs {pipe.task} ({TASKS[pipe.task].head.name} head); this route needs {task}",
                "wrong_task",
            )
        if task not in self.others:
            other = pipeline(task, model=self.path, variant=pipe.variant, engine=pipe.session, verify=False)
            other.choice = pipe.choice  # the same graph, chosen for the same reason
            self.others[task] = other
        return self.others[task]


class Server:
    def __init__(self, models: dict[str, str | Path], settings: Settings | None = None):
        self.settings = settings or Settings()
        self.metrics = Metrics()
        self.callers = Callers()  # which connections are talking (the Guard counts them): --lone-inline's test
        self.served = {name: Served(name, Path(path)) for name, path in models.items()}
        self.default = next(iter(self.served))
        self.ready: bool = False
        self.error: str | None = None
        # /tokenize's work off the event loop, in one thread of its own (the model routes tokenize in the
        # batcher, a batch at a time); a pool of many threads (Starlette's 40) only adds GIL hand-offs.
        self.tokenizer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxpipe-tokenize")
        # explain runs its own graph runs (it shows their outputs): one at a time, beside the batcher.
        self.explain_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxpipe-explain")

    # -- life ---------------------------------------------------------------------------------
    def start(self) -> None:
        threading.Thread(target=self._load, name="onnxpipe-load", daemon=True).start()

    def _load(self) -> None:
        from .. import load_artifact, pipeline
        from .. import tune
        from ..session import Session

        s = self.settings
        threads = s.session_threads()
        try:
            for m in self.served.values():
                artifact = load_artifact(m.path)
                choice = tune.choose(artifact, threads)  # the variant that pays here
                graph = artifact.variant_file(choice.variant)
                artifact.verify(*artifact.graph_files(graph), "tokenizer.json")  # before loading
                # Serving sessions keep no memory arena (RSS would grow with lengths); --spin says which spin.
                engine = Session(graph, threads, serving=True, spin=s.spin == "on")
                streams = self._streams(graph, threads)
                # Under 'busy', a spinning session for runs with more right behind them: batches with requests
                # waiting (one stream), a lone caller's inline requests (each comes right after the last answer).
                # Not the pipe's own: its spinning would take a core from a stream under load.
                wants_busy = s.spin == "busy" and (not streams or s.lone_inline > 0)
                busy = Session(graph, threads, serving=True, spin=True) if wants_busy else None
                m.pipe = pipeline(model=m.path, variant=choice.variant, engine=engine, verify=False)
                m.pipe.choice = choice
                m.batcher = Batcher(
                    m.pipe,
                    s.max_batch_tokens,
                    s.max_batch_requests,
                    s.max_wait_ms,
                    s.max_queue,
                    self.metrics,
                    m.name,
                    busy,
                    streams,
                )
            # The loaded process holds many long-lived objects (FastAPI, pydantic, onnxruntime, numpy) that every
            # full collection would walk again; frozen, they are not. (One caller, two interleaved 10 s runs each:
            # mean 6.52 and 6.46 ms against 7.46 and 6.76 ms without; a small gain, within run-to-run noise.)
            gc.collect()
            gc.freeze()
            self.ready = True
            models = ", ".join(f"{m.name}={m.path} ({m.loaded.task}, {m.loaded.variant})" for m in self.served.values())
            print(
                f"onnxpipe serve: ready; models {models}; limits {self.settings.public()}", file=sys.stderr, flush=True
            )
        except Exception as e:  # reported by /health and every route, never a crash loop
            self.error = f"{type(e).__name__}: {e}"
            print(f"onnxpipe serve: could not load the models: {self.error}", file=sys.stderr, flush=True)

    def _streams(self, graph: Path, threads: int) -> list[Any]:
        """The sessions batches run on side by side under load (none for one stream). A one-thread session runs on
        its caller's thread, so the streams share one; wider streams each need their own intra-op pool."""
        from ..session import Session

        s = self.settings
        count = s.session_streams(threads)
        if count < 2:
            return []
        each = threads // count
        shared = Session(graph, 1, serving=True, spin=False) if each == 1 else None
        return [shared or Session(graph, each, serving=True, spin=s.spin != "off") for _ in range(count)]

    def close(self) -> None:
        for m in self.served.values():  # uvicorn has stopped accepting and answered what it accepted
            if m.batcher:
                m.batcher.close()
        self.tokenizer_pool.shutdown(wait=True)
        self.explain_pool.shutdown(wait=True)
        # What an operator (and the drain test) checks: every request the app took was answered.
        sent = ", ".join(f"{route} {n}" for route, n in sorted(self.metrics.sent.items())) or "none"
        print(f"onnxpipe serve: stopped; responses sent: {sent}", file=sys.stderr, flush=True)

    # -- one request ----------------------------------------------------------------------------
    def model(self, name: str | None, task: str | None = None) -> Served:
        """The named model; unnamed, the first that runs ``task`` (a route's), else the default."""
        if not self.ready:
            raise HTTPError(503, self.error or "the model is loading", "not_ready", {"Retry-After": "1"})
        if name is None and task is not None:
            name = next((n for n, m in self.served.items() if runs_on(task, m.loaded.task)), None)
        if (name or self.default) not in self.served:
            raise HTTPError(404, f"no model {name!r}: this server has {', '.join(self.served)}", "unknown_model")
        return self.served[name or self.default]

    def pipe_for(self, served: Served, task: str | None) -> Pipeline[Any, Any, Any]:
        """``served``'s pipeline for a request's task (canonical name or alias); its own task when None."""
        try:
            return served.task_pipe(None if task is None else canonical_task(task))
        except (TypeError, ValueError) as e:
            raise HTTPError(422, str(e), "bad_input") from None

    def read(
        self, pipe: Pipeline[Any, Any, Any], inputs: Any, params: dict[str, Any], limit: tuple[int, str] | None = None
    ) -> Plan[Any]:
        """The request read as the Python call ``pipe(inputs, **params)`` reads it, within the input limit
        (``limit``: a route's own (count, flag); else --max-client-batch)."""
        try:
            plan = pipe.read(inputs, **params)
        except INPUT_ERRORS as e:
            raise HTTPError(422, str(e), "bad_input") from None
        except TypeError as e:  # a parameter the task does not take: Python's own words, when binding the call
            if "sanitize_parameters() got an unexpected keyword argument" not in str(e):
                raise
            raise HTTPError(422, f"parameters: {str(e).split('sanitize_parameters() ')[1]}", "bad_input") from None
        most, flag = limit or (self.settings.max_client_batch, "--max-client-batch")
        if len(plan.items) > most:
            raise HTTPError(
                413,
                f"{len(plan.items)} inputs in one request; this route takes at most {most} ({flag})",
                "too_many_inputs",
            )
        return plan

    async def in_pool(self, pool: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on ``pool``, under the request timeout; input errors become 422s."""
        try:
            return await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(pool, fn, *args), self.settings.timeout_s
            )
        except INPUT_ERRORS as e:
            raise HTTPError(422, str(e), "bad_input") from None
        except asyncio.TimeoutError:
            raise HTTPError(504, f"no answer within {self.settings.timeout_s:g} s", "timeout") from None

    async def run(
        self,
        served: Served,
        pipe: Pipeline[Any, Any, Any],
        inputs: Any,
        params: dict[str, Any],
        truncate: bool = True,
        direction: str = "right",
        limit: tuple[int, str] | None = None,
    ) -> tuple[Any, dict[str, str]]:
        """One request through read → the batcher (tokenize, run, postprocess) → complete, timed.
        ``direction``: TEI's truncation_direction, which end of an overlong text is cut; ``limit``: see read."""
        t0 = time.perf_counter()
        plan = self.read(pipe, inputs, params, limit)
        if direction != "right":  # a typed field, checked when set (Truncation); the routes pass it for cutting tasks
            plan.pre = plan.pre.cut_from(direction)
        if not plan.items:
            return pipe.complete(plan, []), {}
        assert served.batcher is not None
        try:  # the batcher tokenizes (with the other requests of its batch), checks, runs and postprocesses
            check = None if truncate else partial(self.refuse_overlong, pipe)
            here = self.settings.lone_inline if self.settings.lone_inline and self.callers.alone() else 0
            submit = served.batcher.submit(plan, pipe, check, here)
            values, job = await asyncio.wait_for(submit, self.settings.timeout_s)
            result = pipe.complete(plan, values)
        except INPUT_ERRORS as e:  # a bad text, or what only the model's outputs can show (a vector size)
            raise HTTPError(422, str(e), "bad_input") from None
        except QueueFull as e:
            raise HTTPError(429, f"{e}: retry shortly", "queue_full", {"Retry-After": "1"}) from None
        except asyncio.TimeoutError:
            raise HTTPError(504, f"no answer within {self.settings.timeout_s:g} s", "timeout") from None
        t_tok = job.tokenize_s
        for hist, value in (
            (self.metrics.tokenization, t_tok),
            (self.metrics.queue, job.queue_s),
            (self.metrics.inference, job.inference_s),
        ):
            self.metrics.of(hist, served.name).observe(value)
        headers = {
            "x-tokenization-time": f"{t_tok * 1e3:.3f}",
            "x-queue-time": f"{job.queue_s * 1e3:.3f}",
            "x-inference-time": f"{job.inference_s * 1e3:.3f}",
            "x-batch-requests": str(job.batch_requests),
            "x-total-time": f"{(time.perf_counter() - t0) * 1e3:.3f}",
            "x-model": served.name,
            "x-prompt-tokens": str(plan.tokens),
        }
        return result, headers

    @staticmethod
    def refuse_overlong(pipe: Pipeline[Any, Any, Any], plan: Plan[Any]) -> None:
        """TEI's truncate=false: an input past the model's limit is refused, not cut."""
        if any(f.encoding.overflowing for f in plan.features):
            raise HTTPError(
                422,
                f"an input is longer than the model's {pipe.token_limit} tokens and truncate is false",
                "too_long",
            )

    def info(self) -> dict[str, Any]:
        from .. import __version__

        return {
            "version": __version__,
            "pid": os.getpid(),  # which worker answered, with --workers
            "ready": self.ready,
            "default_model": self.default,
            "models": {
                n: {
                    "path": str(m.path),
                    **(
                        {
                            "task": m.pipe.task,
                            "variant": m.pipe.variant,
                            "variant_reason": m.pipe.choice.reason,
                            "max_length": m.pipe.token_limit,
                        }
                        if m.pipe
                        else {}
                    ),
                }
                for n, m in self.served.items()
            },
            "limits": self.settings.public(),
        }
