"""``onnxpipe serve``: the pipelines over HTTP (FastAPI on uvicorn), micro-batched by a token budget.

Routes (:mod:`.routes`): ``POST /v1/pipeline`` (any task: the Python pipeline's JSON), the shapes TEI clients
send (``/predict``, ``/embed``, ``/rerank``, ``/tokenize``), OpenAI's ``/v1/embeddings``, ``GET /health``
(503 until loaded), ``/info``, ``/metrics`` (Prometheus), ``/`` (a live explain page) and the OpenAPI
document at ``/openapi.json``. Every answer that ran the model carries its timing in headers. The request
path is :class:`.server.Server`'s; the door (key, body size) is :class:`.guard.Guard`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import OnnxPipeError
from .guard import Guard
from .routes import router
from .server import HTTPError, Server
from .settings import Settings

__all__ = ["HTTPError", "Server", "Settings", "create_app"]


def create_app(models: dict[str, str | Path], settings: Settings | None = None) -> FastAPI:
    server = Server(models, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server.start()
        yield
        server.close()

    app = FastAPI(
        title="onnxpipe",
        version=__version__,
        lifespan=lifespan,
        description="Hugging Face pipelines on ONNX Runtime, micro-batched.",
    )
    app.state.server = server
    metrics = server.metrics

    # -- errors: one JSON shape, counted by kind ----------------------------------------------------
    @app.exception_handler(HTTPError)
    async def http_error(request: Request, e: HTTPError) -> JSONResponse:
        metrics.failures.labels(e.kind).inc()
        return JSONResponse({"error": str(e), "error_type": e.kind}, status_code=e.status, headers=e.headers)

    @app.exception_handler(HTTPException)
    async def starlette_error(request: Request, e: HTTPException) -> JSONResponse:  # 404, 405, body too large
        kind = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(e.status_code, "http")
        metrics.failures.labels(kind).inc()
        return JSONResponse(
            {"error": str(e.detail), "error_type": kind}, status_code=e.status_code, headers=getattr(e, "headers", None)
        )

    @app.exception_handler(OnnxPipeError)
    async def model_error(request: Request, e: OnnxPipeError) -> JSONResponse:
        metrics.failures.labels("model").inc()
        return JSONResponse({"error": str(e), "error_type": "model"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        metrics.failures.labels("validation").inc()
        where = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:5])
        return JSONResponse({"error": where, "error_type": "validation"}, status_code=422)

    app.include_router(router)
    app.add_middleware(Guard, settings=server.settings, metrics=metrics, known=route_paths(app))
    return app


def route_paths(app: FastAPI) -> set[str]:
    """Every path the app answers (its own routes and the included router's), for per-route counts."""
    paths = {getattr(r, "path", None) for r in [*app.routes, *router.routes]}
    return {p for p in paths if isinstance(p, str)}
