"""``onnxpipe serve``: the pipelines over HTTP (FastAPI on uvicorn), micro-batched by a token budget.

Routes (:mod:`.routes`): ``POST /v1/pipeline`` (any task: the Python pipeline's JSON), the shapes TEI clients
send (``/predict``, ``/embed``, ``/rerank``, ``/tokenize``; each model's at ``/models/{name}/...``, its root at
``POST /models/{name}``: :mod:`.model_routes`), OpenAI's ``/v1/embeddings``, ``GET /health``
(503 until loaded), ``/info``, ``/metrics`` (Prometheus), ``/`` (a live explain page) and the OpenAPI
document at ``/openapi.json``. Every answer that ran the model carries its timing in headers. The request
path is :class:`.server.Server`'s; the door (key, body size) is :class:`.guard.Guard`.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import OnnxPipeError
from .fast import Direct
from .guard import Guard
from .metrics import Metrics
from .model_routes import router as model_router
from .openai_routes import router as openai_router
from .routes import router
from .errors import HTTPError, error_body, openai_status
from .server import Server
from .settings import Settings

__all__ = ["HTTPError", "Server", "Settings", "create_app", "from_environment"]

# How `onnxpipe serve --workers N` hands each worker process its models and settings: uvicorn starts workers
# from an import string, so the app is built again in each, from this variable.
CONFIG_ENV = "ONNXPIPE_SERVE_CONFIG"


def from_environment() -> FastAPI:
    """The app of one worker process, as ``onnxpipe serve`` configured it (uvicorn's factory)."""
    config = json.loads(os.environ[CONFIG_ENV])
    return create_app(config["models"], Settings(**config["settings"]))


def environment(models: dict[str, str | Path], settings: Settings) -> str:
    """``from_environment``'s variable for these models and settings."""
    return json.dumps({"models": {k: str(v) for k, v in models.items()}, "settings": asdict(settings)})


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
    answer_errors(app, server.metrics)
    app.include_router(router)
    app.include_router(openai_router)
    app.include_router(model_router)
    app.add_middleware(Direct, fastapi=app)  # inside the Guard: the traffic routes without FastAPI's overhead
    app.add_middleware(
        Guard, settings=server.settings, metrics=server.metrics, known=route_paths(app), callers=server.callers
    )
    return app


def answer_errors(app: FastAPI, metrics: Metrics) -> None:
    """Every error in one JSON shape (its route family's: OpenAI's on its routes), counted by kind."""

    def error(
        request: Request,
        status: int,
        message: str,
        kind: str,
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> JSONResponse:
        metrics.of(metrics.failures, kind).inc()
        path = request.url.path
        request_id = request.scope.get("request_id") if status >= 500 else None
        return JSONResponse(
            error_body(path, status, message, kind, param, request_id),
            status_code=openai_status(path, status),
            headers=headers,
        )

    @app.exception_handler(HTTPError)
    async def http_error(request: Request, e: HTTPError) -> JSONResponse:
        return error(request, e.status, str(e), e.kind, e.headers, e.param)

    @app.exception_handler(HTTPException)
    async def starlette_error(request: Request, e: HTTPException) -> JSONResponse:  # 404, 405, body too large
        kind = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(e.status_code, "http")
        detail = str(e.detail)
        if e.status_code in (404, 405):  # Starlette says only "Not Found": name what was not found
            detail = f"{detail}: {request.method} {request.url.path}"
        return error(request, e.status_code, detail, kind, getattr(e, "headers", None))

    @app.exception_handler(OnnxPipeError)
    async def model_error(request: Request, e: OnnxPipeError) -> JSONResponse:
        return error(request, 500, str(e), "model")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:5])
        first: tuple[Any, ...] = tuple(e.errors()[0]["loc"]) if e.errors() else ()
        return error(request, 422, where, "validation", param=str(first[1]) if len(first) > 1 else None)


def route_paths(app: FastAPI) -> set[str]:
    """Every path the app answers (its own routes and the included router's), for per-route counts."""
    paths = {
        getattr(r, "path", None) for r in [*app.routes, *router.routes, *openai_router.routes, *model_router.routes]
    }
    return {p for p in paths if isinstance(p, str)}
