"""The server's door: a request id, the API key, the body size (counted as it is read, so a chunked body is
bounded too), per-route counts, and the last word on a failure no handler expected (a 500 with the request
id, its traceback logged), before and after FastAPI sees a request."""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from typing import Any

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body
from .metrics import Metrics
from .settings import Settings

# uvicorn's own error logger: it has a handler wherever uvicorn runs, and is where operators look.
log = logging.getLogger("uvicorn.error")

# A refused body is still read (and thrown away) up to this much before the refusal is sent: a client that
# sends its whole body before reading (urllib, requests) sees the status, not a connection reset. Past it, the
# connection is closed: reading without end is what the limit is there to prevent.
DRAIN_FLOOR = 8 * 2**20


class Callers:
    """Client connections seen lately, on the event loop: whether one caller alone is talking to the server.
    Arrival times cannot tell one caller from many (each sends again within ~0.1 ms of its answer here); the
    connections can."""

    WINDOW = 0.25  # seconds: many callers' connections all show within it (16 callers: ~50 requests)

    def __init__(self) -> None:
        self.last: dict[Any, float] = {}
        self.in_flight = 0

    def enter(self, client: Any) -> None:
        now = time.monotonic()
        self.last[client] = now
        self.in_flight += 1
        if len(self.last) > 256:
            self.last = {c: t for c, t in self.last.items() if now - t < self.WINDOW}

    def leave(self) -> None:
        self.in_flight -= 1

    def alone(self) -> bool:
        """One request in flight, from the only connection active within the window."""
        if self.in_flight != 1:
            return False
        now = time.monotonic()
        return sum(now - t < self.WINDOW for t in self.last.values()) <= 1


class Guard:
    """API key, body size, request id and per-route counts, before FastAPI sees the request. A plain ASGI
    middleware: Starlette's BaseHTTPMiddleware costs about a millisecond a request on these machines."""

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics, known: set[str], callers: Callers):
        self.app, self.settings, self.metrics, self.known, self.callers = app, settings, metrics, known, callers
        self.key = f"Bearer {settings.api_key}".encode() if settings.api_key else None
        self.drain_cap = max(DRAIN_FLOOR, 4 * settings.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = path if path in self.known else "other"
        request_id = scope["request_id"] = uuid.uuid4().hex
        refusal = self.refusal(path, dict(scope["headers"]))
        if refusal:
            await self.refuse(scope, receive, send, route, request_id, *refusal)
            return
        code = {"status": 500}
        started = {"yes": False}

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                code["status"] = message["status"]
                started["yes"] = True
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
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
                    if message.get("more_body"):
                        await drain(receive, self.drain_cap - read["bytes"])
                    raise HTTPException(
                        413, f"body of more than {limit} bytes; the limit is {limit} (--max-body-bytes)"
                    )
            return message

        self.callers.enter(scope.get("client"))
        try:
            await self.app(scope, counted_body, counted)
        except Exception as e:  # a bug, not the client's doing: the traceback for the operator, an id for both
            log.error("request %s (%s %s) failed", request_id, scope["method"], path, exc_info=e)
            if started["yes"]:
                raise  # the answer is half sent: only closing the connection can say it failed
            self.metrics.of(self.metrics.failures, "internal").inc()
            message = f"internal error (request id {request_id}); the server log has its traceback"
            body = error_body(path, 500, message, "internal", request_id=request_id)
            await JSONResponse(body, status_code=500, headers={"x-request-id": request_id})(scope, receive, send)
        finally:
            self.callers.leave()
            self.metrics.of(self.metrics.requests, route, str(code["status"])).inc()

    def refusal(self, path: str, headers: dict[bytes, bytes]) -> tuple[int, str, str] | None:
        """(status, message, kind) for a request refused at the door: no key, or a declared body too large."""
        if self.key and path != "/health" and not hmac.compare_digest(headers.get(b"authorization", b""), self.key):
            return 401, "missing or wrong API key (Authorization: Bearer KEY)", "unauthorized"
        size = headers.get(b"content-length", b"")
        if size.isdigit() and int(size) > self.settings.max_body_bytes:
            limit = self.settings.max_body_bytes
            return 413, f"body of {int(size)} bytes; the limit is {limit} (--max-body-bytes)", "body_too_large"
        return None

    async def refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: str,
        request_id: str,
        status: int,
        message: str,
        kind: str,
    ) -> None:
        self.metrics.of(self.metrics.failures, kind).inc()
        self.metrics.of(self.metrics.requests, route, str(status)).inc()
        drained = await drain(receive, self.drain_cap)
        refused = {"x-request-id": request_id, **({} if drained else {"connection": "close"})}
        body = error_body(scope["path"], status, message, kind)
        await JSONResponse(body, status_code=status, headers=refused)(scope, receive, send)


async def drain(receive: Receive, cap: int) -> bool:
    """Read and discard the rest of the request body, up to ``cap`` bytes: whether all of it was read."""
    got = 0
    while got <= cap:
        message = await receive()
        if message["type"] != "http.request":
            return False  # the client left
        got += len(message.get("body", b""))
        if not message.get("more_body"):
            return True
    return False
