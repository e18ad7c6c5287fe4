"""``onnxpipe serve``: the pipelines over HTTP (FastAPI on uvicorn), micro-batched by a token budget.

Routes: ``POST /v1/pipeline`` (any task: the Python pipeline's JSON), the shapes TEI clients send
(``/predict``, ``/embed``, ``/rerank``, ``/tokenize``), OpenAI's ``/v1/embeddings``, ``GET /health``
(503 until loaded), ``/info``, ``/metrics`` (Prometheus), ``/`` (a live explain page) and the OpenAPI
document at ``/openapi.json``. Every answer that ran the model carries its timing in headers.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException
from pydantic import BaseModel, ConfigDict, Field

from .. import __version__
from ..errors import OnnxPipeError
from ..explain import jsonable
from ..inputs import INPUT_ERRORS, raise_on_invalid_unicode
from ..pipeline import Pipeline, Plan
from ..tasks import TASKS, canonical_task, runs_on
from .batcher import Batcher, QueueFull
from .metrics import Metrics

PAGE = Path(__file__).with_name("page.html")


@dataclass
class Settings:
    max_batch_tokens: int = 16384
    # 16, measured (embeddings default, 64 closed-loop clients, two interleaved passes): a request that arrives
    # while a batch runs waits for all of it, so the cap sets the tail. At 64 requests a batch p99 was 670-690 ms
    # against 490-570 ms one at a time; at 16 it was 500-550 ms, with requests/s still at or above one at a time
    # (153 and 172 vs 152 and 124). 64 gave ~10% more requests/s (168 and 191) for that tail.
    max_batch_requests: int = 16
    max_wait_ms: float = 2.0
    max_queue: int = 1024
    max_client_batch: int = 256  # inputs per request
    max_body_bytes: int = 2_000_000
    timeout_s: float = 30.0
    threads: int | None = None
    api_key: str | None = None


class HTTPError(Exception):
    def __init__(self, status: int, message: str, kind: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.kind, self.headers = status, kind, headers or {}


@dataclass
class Served:
    """One model: its pipeline, and the batcher that owns its graph runs."""

    name: str
    path: Path
    pipe: Pipeline | None = None
    batcher: Batcher | None = None
    others: dict[str, Pipeline] = field(default_factory=dict)  # other tasks on the same graph

    def task_pipe(self, task: str) -> Pipeline:
        """The pipeline for ``task`` on this model's graph (one session: the first pipeline's engine)."""
        from .. import pipeline

        if task == self.pipe.task:
            return self.pipe
        if not runs_on(task, self.pipe.task):
            raise HTTPError(400, f"model {self.name!r} runs {self.pipe.task} ({TASKS[self.pipe.task].head} head); "
                                 f"this route needs {task}", "wrong_task")
        if task not in self.others:
            self.others[task] = pipeline(task, model=self.path, variant=self.pipe.variant, engine=self.pipe.session,
                                         verify=False)
        return self.others[task]


# -- request bodies (pydantic: a wrong type is a 422 naming the field) ------------------------------
Text = Union[str, list[str], list[list[str]]]


class PipelineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: Any = Field(description="what the Python pipeline takes: a text, a list, a {question, context} dict...")
    parameters: dict[str, Any] = Field(default_factory=dict, description="call parameters (top_k, ...)")
    model: str | None = None
    task: str | None = Field(None, description="a task that runs the model's graph (zero-shot-classification on an "
                                               "NLI classifier, sentence-embeddings on a base encoder); default: "
                                               "the model's own")


class PredictRequest(BaseModel):
    inputs: Text
    raw_scores: bool = False
    truncate: bool = True
    model: str | None = None


class EmbedRequest(BaseModel):
    inputs: Union[str, list[str]]
    normalize: bool = True
    truncate: bool = True
    prompt_name: str | None = None
    model: str | None = None


class RerankRequest(BaseModel):
    query: str
    texts: list[str]
    return_text: bool = False
    raw_scores: bool = False
    truncate: bool = True
    model: str | None = None


class TokenizeRequest(BaseModel):
    inputs: Union[str, list[str]]
    add_special_tokens: bool = True
    model: str | None = None


class OpenAIEmbeddingsRequest(BaseModel):
    input: Union[str, list[str]]
    model: str | None = None
    encoding_format: str = "float"


def create_app(models: dict[str, str | Path], settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    served = {name: Served(name, Path(path)) for name, path in models.items()}
    default = next(iter(served))
    state = {"ready": False, "error": None}
    # Tokenization off the event loop, in one thread of its own: a request's text is a fraction of a
    # millisecond of work, and a pool of many threads (Starlette's 40) only adds GIL hand-offs under load.
    tokenizer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxpipe-tokenize")
    # explain runs its own graph runs (it shows their outputs): one at a time, beside the batcher, never
    # holding up the tokenizer thread.
    explain_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxpipe-explain")

    def load() -> None:
        from .. import load_artifact, pipeline
        from ..session import Session

        try:
            for s in served.values():
                artifact = load_artifact(s.path)
                artifact.verify(artifact.variant_file(None).name, "tokenizer.json")  # before loading anything
                # Serving options: no memory arena (RSS would grow with lengths), no spinning threads.
                engine = Session(artifact.variant_file(None), settings.threads, serving=True)
                s.pipe = pipeline(model=s.path, engine=engine, verify=False)
                s.batcher = Batcher(s.pipe, settings.max_batch_tokens, settings.max_batch_requests,
                                    settings.max_wait_ms, settings.max_queue, metrics, s.name)
            state["ready"] = True
        except Exception as e:  # reported by /health and every route, never a crash loop
            state["error"] = f"{type(e).__name__}: {e}"

    async def lifespan(app: FastAPI):
        threading.Thread(target=load, name="onnxpipe-load", daemon=True).start()
        yield
        for s in served.values():  # uvicorn has stopped accepting and answered what it accepted
            if s.batcher:
                s.batcher.close()
        tokenizer_pool.shutdown(wait=True)
        explain_pool.shutdown(wait=True)
        # What an operator (and the drain test) checks: every request the app took was answered.
        sent = ", ".join(f"{route} {n}" for route, n in sorted(metrics.sent.items())) or "none"
        print(f"onnxpipe serve: stopped; responses sent: {sent}", file=sys.stderr, flush=True)

    app = FastAPI(title="onnxpipe", version=__version__, lifespan=lifespan,
                  description="Hugging Face pipelines on ONNX Runtime, micro-batched.")

    def model(name: str | None, task: str | None = None) -> Served:
        """The named model; unnamed, the first that runs ``task`` (a route's), else the default."""
        if not state["ready"]:
            raise HTTPError(503, state["error"] or "the model is loading", "not_ready", {"Retry-After": "1"})
        if name is None and task is not None:
            name = next((n for n, s in served.items() if runs_on(task, s.pipe.task)), None)
        if (name or default) not in served:
            raise HTTPError(404, f"no model {name!r}: this server has {', '.join(served)}", "unknown_model")
        return served[name or default]

    def request_pipe(s: Served, task: str | None) -> Pipeline:
        if task is None:
            return s.pipe
        try:
            return s.task_pipe(canonical_task(task))
        except (TypeError, ValueError) as e:
            raise HTTPError(422, str(e), "bad_input") from None

    def read(pipe: Pipeline, inputs: Any, params: dict) -> Plan:
        """The request read as the Python call ``pipe(inputs, **params)`` reads it, within the input limit."""
        try:
            plan = pipe.read(inputs, **params)
        except INPUT_ERRORS as e:
            raise HTTPError(422, str(e), "bad_input") from None
        if len(plan.items) > settings.max_client_batch:
            raise HTTPError(413, f"{len(plan.items)} inputs in one request; this server takes at most "
                                 f"{settings.max_client_batch} (--max-client-batch)", "too_many_inputs")
        return plan

    async def in_pool(pool: ThreadPoolExecutor, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on ``pool``, under the request timeout; input errors become 422s."""
        try:
            return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(pool, fn, *args),
                                          settings.timeout_s)
        except INPUT_ERRORS as e:
            raise HTTPError(422, str(e), "bad_input") from None
        except asyncio.TimeoutError:
            raise HTTPError(504, f"no answer within {settings.timeout_s:g} s", "timeout") from None

    async def run(s: Served, pipe: Pipeline, inputs: Any, params: dict, truncate: bool = True
                  ) -> tuple[Any, dict[str, str]]:
        """One request through read and featurize (a worker thread) → the batcher → complete, timed."""
        t0 = time.perf_counter()
        plan = read(pipe, inputs, params)
        if not plan.items:
            return pipe.complete(plan, []), {}
        await in_pool(tokenizer_pool, pipe.featurize, plan)
        if not truncate and any(f.encoding.overflowing for f in plan.features):
            raise HTTPError(422, f"an input is longer than the model's {pipe.encoder.max_length} tokens and "
                                 "truncate is false", "too_long")
        t_tok = time.perf_counter() - t0
        try:
            values, job = await asyncio.wait_for(s.batcher.submit(plan, pipe), settings.timeout_s)
        except QueueFull as e:
            raise HTTPError(429, f"{e}: retry shortly", "queue_full", {"Retry-After": "1"}) from None
        except asyncio.TimeoutError:
            raise HTTPError(504, f"no answer within {settings.timeout_s:g} s", "timeout") from None
        result = pipe.complete(plan, values)
        for hist, value in ((metrics.tokenization, t_tok), (metrics.queue, job.queue_s),
                            (metrics.inference, job.inference_s)):
            hist.labels(s.name).observe(value)
        headers = {"x-tokenization-time": f"{t_tok * 1e3:.3f}", "x-queue-time": f"{job.queue_s * 1e3:.3f}",
                   "x-inference-time": f"{job.inference_s * 1e3:.3f}", "x-batch-requests": str(job.batch_requests),
                   "x-total-time": f"{(time.perf_counter() - t0) * 1e3:.3f}", "x-model": s.name,
                   "x-prompt-tokens": str(plan.tokens)}
        return result, headers

    def answer(body: Any, headers: dict[str, str]) -> JSONResponse:
        return JSONResponse(jsonable(body), headers=headers)

    # -- errors: one JSON shape, counted by kind ----------------------------------------------------
    @app.exception_handler(HTTPError)
    async def http_error(request: Request, e: HTTPError):
        metrics.failures.labels(e.kind).inc()
        return JSONResponse({"error": str(e), "error_type": e.kind}, status_code=e.status, headers=e.headers)

    @app.exception_handler(HTTPException)
    async def starlette_error(request: Request, e: HTTPException):  # 404, 405, a body past the limit
        kind = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(e.status_code, "http")
        metrics.failures.labels(kind).inc()
        return JSONResponse({"error": str(e.detail), "error_type": kind}, status_code=e.status_code,
                            headers=getattr(e, "headers", None))

    @app.exception_handler(OnnxPipeError)
    async def model_error(request: Request, e: OnnxPipeError):
        metrics.failures.labels("model").inc()
        return JSONResponse({"error": str(e), "error_type": "model"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, e: RequestValidationError):
        metrics.failures.labels("validation").inc()
        where = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:5])
        return JSONResponse({"error": where, "error_type": "validation"}, status_code=422)

    # -- routes ------------------------------------------------------------------------------------
    @app.post("/v1/pipeline", summary="Any task: the Python pipeline's call and JSON")
    async def pipeline_route(body: PipelineRequest):
        s = model(body.model)
        result, headers = await run(s, request_pipe(s, body.task), body.inputs, body.parameters)
        return answer(result, headers)

    @app.post("/predict", summary="TEI: classify texts or [text, pair]s")
    async def predict(body: PredictRequest):
        s = model(body.model, "text-classification")
        pipe = s.task_pipe("text-classification")
        inputs = body.inputs
        # TEI's reading: [a, b] of two strings is one pair; a list of them (or of texts) a batch.
        single = isinstance(inputs, str) or (isinstance(inputs, list) and len(inputs) == 2
                                              and all(isinstance(x, str) for x in inputs))
        batch = [inputs] if single else inputs
        items = [{"text": x[0], "text_pair": x[1]} if isinstance(x, list) and len(x) == 2 else x for x in batch]
        if any(isinstance(x, list) for x in items):
            raise HTTPError(422, "inputs: each input is a text or a [text, pair] of two texts", "bad_input")
        params = {"top_k": None, **({"function_to_apply": "none"} if body.raw_scores else {})}
        result, headers = await run(s, pipe, items, params, body.truncate)
        return answer(result[0] if single else result, headers)

    @app.post("/embed", summary="TEI: one vector per text")
    async def embed(body: EmbedRequest):
        s = model(body.model, "sentence-embeddings")
        pipe = s.task_pipe("sentence-embeddings")
        texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
        params = {"normalize": body.normalize, **({"prompt_name": body.prompt_name} if body.prompt_name else {})}
        result, headers = await run(s, pipe, texts, params, body.truncate)
        return answer(result, headers)

    @app.post("/v1/embeddings", summary="OpenAI-style embeddings")
    async def openai_embeddings(body: OpenAIEmbeddingsRequest):
        if body.encoding_format != "float":
            raise HTTPError(422, "encoding_format: only 'float' is served", "bad_input")
        # OpenAI clients name their own models: an unknown name means "the embeddings model here".
        s = model(body.model if body.model in served else None, "sentence-embeddings")
        pipe = s.task_pipe("sentence-embeddings")
        texts = [body.input] if isinstance(body.input, str) else body.input
        result, headers = await run(s, pipe, texts, {})
        tokens = int(headers.get("x-prompt-tokens", 0))  # counted when tokenized, not tokenized again
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(jsonable(result))]
        return answer({"object": "list", "data": data, "model": s.name,
                       "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}, headers)

    @app.post("/rerank", summary="TEI: texts ranked by a cross-encoder for the query")
    async def rerank(body: RerankRequest):
        s = model(body.model, "text-classification")
        pipe = s.task_pipe("text-classification")
        params = {"top_k": None, **({"function_to_apply": "none"} if body.raw_scores else {})}
        pairs = [{"text": body.query, "text_pair": t} for t in body.texts]
        results, headers = await run(s, pipe, pairs, params, body.truncate)
        label = pipe.artifact.id2label[max(pipe.artifact.id2label)]
        ranked = sorted(({"index": i, "score": next(d["score"] for d in r if d["label"] == label)}
                         for i, r in enumerate(results)), key=lambda d: d["score"], reverse=True)
        if body.return_text:
            ranked = [{**d, "text": body.texts[d["index"]]} for d in ranked]
        return answer(ranked, headers)

    @app.post("/tokenize", summary="TEI: the tokens of each text")
    async def tokenize(body: TokenizeRequest):
        s = model(body.model)
        texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
        if len(texts) > settings.max_client_batch:
            raise HTTPError(413, f"{len(texts)} inputs; at most {settings.max_client_batch}", "too_many_inputs")
        tok = s.pipe.encoder.tokenizer
        try:
            encodings = await in_pool(tokenizer_pool, functools.partial(
                tok.encode_batch, texts, add_special_tokens=body.add_special_tokens))
        except HTTPError:  # tokenizers' TypeError for text it cannot take: a lone surrogate; name it
            raise_unicode_422(texts)
            raise
        return [[{"id": i, "text": t, "special": bool(m), "start": a, "stop": b}
                 for i, t, m, (a, b) in zip(e.ids, e.tokens, e.special_tokens_mask, e.offsets)] for e in encodings]

    @app.post("/v1/explain", summary="The four stages of one call, with data and timings (the page's)")
    async def explain_route(body: PipelineRequest):
        # The same limits, pool and timeout as the other routes; its graph runs are its own (it shows them).
        s = model(body.model)
        pipe = request_pipe(s, body.task)
        plan = read(pipe, body.inputs, body.parameters)
        return await in_pool(explain_pool, stages, pipe, plan)

    @app.get("/health")
    async def health():
        if state["ready"]:
            return {"status": "ok"}
        return JSONResponse({"status": "error" if state["error"] else "loading", "error": state["error"]},
                            status_code=503)

    @app.get("/info")
    async def info():
        return {"version": __version__, "ready": state["ready"], "default_model": default,
                "models": {n: {"path": str(s.path), **({"task": s.pipe.task, "variant": s.pipe.variant,
                                                         "max_length": s.pipe.encoder.max_length} if s.pipe else {})}
                           for n, s in served.items()},
                "limits": {k: v for k, v in vars(settings).items() if k != "api_key"}}

    @app.get("/metrics")
    async def prometheus():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return PAGE.read_text(encoding="utf-8")

    app.add_middleware(Guard, settings=settings, metrics=metrics, known={r.path for r in app.routes})
    app.state.served, app.state.metrics, app.state.settings, app.state.ready = served, metrics, settings, state
    return app


class Guard:
    """API key, body size and per-route counts, before FastAPI sees the request. A plain ASGI middleware:
    Starlette's BaseHTTPMiddleware costs about a millisecond a request on these machines."""

    def __init__(self, app, settings: Settings, metrics: Metrics, known: set[str]):
        self.app, self.settings, self.metrics, self.known = app, settings, metrics, known
        self.key = f"Bearer {settings.api_key}".encode() if settings.api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        route = path if path in self.known else "other"
        headers = dict(scope["headers"])
        refusal = None
        if self.key and path != "/health" and not hmac.compare_digest(headers.get(b"authorization", b""), self.key):
            refusal = (401, "missing or wrong API key (Authorization: Bearer KEY)", "unauthorized")
        size = headers.get(b"content-length", b"")
        if refusal is None and size.isdigit() and int(size) > self.settings.max_body_bytes:
            refusal = (413, f"body of {int(size)} bytes; the limit is {self.settings.max_body_bytes} "
                            "(--max-body-bytes)", "body_too_large")
        if refusal:
            status, message, kind = refusal
            self.metrics.failures.labels(kind).inc()
            self.metrics.requests.labels(route, str(status)).inc()
            return await JSONResponse({"error": message, "error_type": kind}, status_code=status)(scope, receive, send)
        status = {"code": 500}

        async def counted(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.metrics.sent[route] += 1  # the whole answer handed to the connection

        limit, read = self.settings.max_body_bytes, {"bytes": 0}

        async def counted_body():
            # A body sent chunked has no Content-Length to refuse it by: count it as it is read.
            message = await receive()
            if message["type"] == "http.request":
                read["bytes"] += len(message.get("body", b""))
                if read["bytes"] > limit:  # the app's HTTPException handler answers it in the error shape
                    raise HTTPException(413, f"body of more than {limit} bytes; the limit is {limit} "
                                             "(--max-body-bytes)")
            return message

        try:
            await self.app(scope, counted_body, counted)
        finally:
            self.metrics.requests.labels(route, str(status["code"])).inc()


def raise_unicode_422(texts: list) -> None:
    try:
        raise_on_invalid_unicode(texts)
    except ValueError as e:
        raise HTTPError(422, str(e), "bad_input") from None


def stages(pipe: Pipeline, plan: Plan) -> dict:
    """One call's four stages as JSON: what the explain page draws (`onnxpipe explain`'s own data)."""
    from ..explain import stages as run_stages

    run = run_stages(pipe, plan)
    features, outputs = run["features"], run["outputs"]
    small = {n: o.tolist() for n, o in outputs.items() if o.ndim == 2 and o.shape[-1] <= 16}
    return {"task": pipe.task, "variant": pipe.variant,
            "features": [{"tokens": f.encoding.tokens[:f.length], "ids": f.encoding.ids[:f.length]}
                         for f in features[:8]],
            "outputs": {n: list(o.shape) for n, o in outputs.items()}, "logits": small,
            "decision": pipe.explain_lines(features, outputs, run["post"]), "result": jsonable(run["result"]),
            "ms": run["ms"]}
