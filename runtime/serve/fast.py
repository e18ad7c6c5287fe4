"""The routes that carry traffic, taken straight to their endpoint: FastAPI's per-request machinery (its routing,
dependency solving, body parsing and exception middleware) cost about half of the event loop's CPU per request
here (py-spy, 16 callers on ``/predict``), and on 2 cores that CPU comes out of onnxruntime's threads.

:class:`Direct` is a plain ASGI layer inside :class:`.guard.Guard` (so the key, the body limit, the request
id and the counts apply as to any route). For a ``POST`` to a route whose endpoint takes one JSON body and the
request and returns its own response (``/predict``, ``/embed``, ``/rerank``, ``/v1/embeddings``, ``/v1/pipeline``, ...), it parses and
validates the body with the route's own pydantic model in one pass (``model_validate_json``: pydantic-core's
JSON parser, no ``json.loads`` then a second walk), calls the route's own endpoint function and sends its
response. The route stays declared in FastAPI, so the OpenAPI document (and the fuzzing generated from it)
describe exactly what runs. Whatever this path does not take as it is, a body that is not JSON or that the model
refuses, goes to FastAPI with its bytes replayed, so every refusal keeps FastAPI's words and shape.

Written by hand because FastAPI has no switch for a leaner per-route path, and replacing FastAPI would lose the
schema-described contract the clients and tests rely on.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, cast, get_type_hints

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Endpoint = Callable[..., Awaitable[Response]]


class Direct:
    def __init__(self, app: ASGIApp, fastapi: FastAPI):
        self.app = app
        self.fastapi = fastapi
        # Starlette builds its middleware when the app first runs (lifespan start-up), every route included by then.
        self.routes = self._table()

    def _table(self) -> dict[str, tuple[type[BaseModel], Endpoint, str, str]]:
        """path → (body model, endpoint, its body parameter's name, its request parameter's name), for every
        POST route of the app whose endpoint takes exactly one pydantic body and the request, and nothing else,
        and returns a Response."""
        table = {}
        described = self.fastapi.openapi()["paths"]  # what the document says is what runs
        for route in _routes(self.fastapi.router.routes):
            if (
                not isinstance(route, APIRoute)
                or route.methods != {"POST"}
                or "post" not in described.get(route.path, {})
            ):
                continue
            d = route.dependant
            if d.path_params or d.query_params or d.header_params or d.cookie_params or d.dependencies:
                continue
            body = d.body_params[0] if len(d.body_params) == 1 else None
            model = body.field_info.annotation if body is not None else None
            if body is None or d.request_param_name is None or not _is_model(model) or not _answers(route.endpoint):
                continue
            table[route.path] = (cast("type[BaseModel]", model), route.endpoint, body.name, d.request_param_name)
        return table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hit = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if hit is None or not _json(scope):
            await self.app(scope, receive, send)
            return
        model, endpoint, body_name, request_name = hit
        try:
            raw = await _body(receive)  # the Guard's counted receive refuses past the size limit
            body = model.model_validate_json(raw)
        except ValidationError:  # FastAPI's words for it: replay the body to the declared route
            await self.app(scope, _replay(raw, receive), send)
            return
        except Exception as e:
            await self._error(scope, receive, send, e)
            return
        try:
            response = await endpoint(**{body_name: body, request_name: Request(scope, receive)})
        except Exception as e:
            await self._error(scope, receive, send, e)
            return
        await response(scope, receive, send)

    async def _error(self, scope: Scope, receive: Receive, send: Send, error: Exception) -> None:
        """The app's own handler for the error (HTTPError, the body limit's 413, a model error); none: the
        Guard's 500."""
        for kind in type(error).__mro__:
            handler = self.fastapi.exception_handlers.get(kind)
            if handler is not None:
                response = handler(Request(scope, receive), error)
                await (await response if inspect.isawaitable(response) else response)(scope, receive, send)
                return
        raise error


def _routes(routes: list[Any]) -> list[Any]:
    """Every route, included routers' too (FastAPI keeps an included router whole, as ``original_router``)."""
    found = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        found += _routes(inner.routes) if inner is not None else [route]
    return found


def _answers(endpoint: Callable[..., Any]) -> bool:
    """The endpoint returns its own Response (others return values FastAPI serializes by a response model)."""
    returned = get_type_hints(endpoint).get("return")
    return isinstance(returned, type) and issubclass(returned, Response)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _json(scope: Scope) -> bool:
    """A JSON body, as the header says (FastAPI's reading of anything else is left to FastAPI)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == b"application/json")
    return False


async def _body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
