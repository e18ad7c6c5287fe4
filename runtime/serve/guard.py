"""The server's door: API key, body size (counted as it is read, so a chunked body is bounded too) and
per-route counts, before FastAPI sees a request."""

from __future__ import annotations

import hmac
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body
from .metrics import Metrics
from .settings import Settings


class Guard:
    """API key, body size and per-route counts, before FastAPI sees the request. A plain ASGI middleware:
    Starlette's BaseHTTPMiddleware costs about a millisecond a request on these machines."""

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics, known: set[str]):
        self.app, self.settings, self.metrics, self.known = app, settings, metrics, known
        self.key = f"Bearer {settings.api_key}".encode() if settings.api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = path if path in self.known else "other"
        headers = dict(scope["headers"])
        refusal = None
        if self.key and path != "/health" and not hmac.compare_digest(headers.get(b"authorization", b""), self.key):
            refusal = (401, "missing or wrong API key (Authorization: Bearer KEY)", "unauthorized")
        size = headers.get(b"content-length", b"")
        if refusal is None and size.isdigit() and int(size) > self.settings.max_body_bytes:
            refusal = (
                413,
                f"body of {int(size)} bytes; the limit is {self.settings.max_body_bytes} (--max-body-bytes)",
                "body_too_large",
            )
        if refusal:
            status, message, kind = refusal
            self.metrics.failures.labels(kind).inc()
            self.metrics.requests.labels(route, str(status)).inc()
            await JSONResponse(error_body(path, status, message, kind), status_code=status)(scope, receive, send)
            return
        code = {"status": 500}

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                code["status"] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.metrics.sent[route] += 1  # the whole answer handed to the connection

        limit, read = self.settings.max_body_bytes, {"bytes": 0}

        async def counted_body() -> Message:
            # A body sent chunked has no Content-Length to refuse it by: count it as it is read.
            message = await receive()
            if message["type"] == "http.request":
                read["bytes"] += len(message.get("body", b""))
                if read["bytes"] > limit:  # the app's HTTPException handler answers it in the error shape
                    raise HTTPException(
                        413, f"body of more than {limit} bytes; the limit is {limit} (--max-body-bytes)"
                    )
            return message

        try:
            await self.app(scope, counted_body, counted)
        finally:
            self.metrics.requests.labels(route, str(code["status"])).inc()
