"""The server's errors, one shape per family of routes: OpenAI's on the OpenAI routes (so its clients show the
message), and ``{"error", "error_type"}`` (TEI's shape, also onnxpipe's own) everywhere else."""

from __future__ import annotations

from typing import Any

# OpenAI's routes: their clients read {"error": {"message", "type", "param", "code"}}.
OPENAI_ROUTES = frozenset({"/v1/embeddings", "/v1/models"})


class HTTPError(Exception):
    def __init__(
        self, status: int, message: str, kind: str, headers: dict[str, str] | None = None, param: str | None = None
    ):
        super().__init__(message)
        self.status, self.kind, self.headers, self.param = status, kind, headers or {}, param


def error_body(path: str, status: int, message: str, kind: str, param: str | None = None) -> dict[str, Any]:
    if path in OPENAI_ROUTES:
        kind_of = "invalid_request_error" if status < 500 else "server_error"
        if status == 401:
            kind_of = "authentication_error"
        return {"error": {"message": message, "type": kind_of, "param": param, "code": kind}}
    return {"error": message, "error_type": kind}


def openai_status(path: str, status: int) -> int:
    """OpenAI answers a request it cannot read with 400, where FastAPI would say 422."""
    return 400 if path in OPENAI_ROUTES and status == 422 else status
