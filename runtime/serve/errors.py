"""The server's errors, one shape per family of routes: OpenAI's under ``/v1`` (so its clients show the
message), and ``{"error", "error_type"}`` (TEI's shape, also onnxpipe's own) everywhere else."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

# onnxpipe's own routes under /v1; every other path there (a route or not) answers in OpenAI's shape.
OWN_V1_ROUTES = frozenset({"/v1/pipeline", "/v1/explain"})


class HTTPError(Exception):
    def __init__(
        self, status: int, message: str, kind: str, headers: dict[str, str] | None = None, param: str | None = None
    ):
        super().__init__(message)
        self.status, self.kind, self.headers, self.param = status, kind, headers or {}, param


def is_openai(path: str) -> bool:
    """Whether ``path`` is in OpenAI's family: ``/v1/embeddings``, ``/v1/models...``, and any other ``/v1`` path
    (a 404 there is read by OpenAI's clients)."""
    return (path == "/v1" or path.startswith("/v1/")) and path not in OWN_V1_ROUTES


def error_body(
    path: str, status: int, message: str, kind: str, param: str | None = None, request_id: str | None = None
) -> dict[str, Any]:
    if is_openai(path):
        kind_of = "invalid_request_error" if status < 500 else "server_error"
        if status == 401:
            kind_of = "authentication_error"
        return {"error": {"message": message, "type": kind_of, "param": param, "code": kind}}
    return {"error": message, "error_type": kind, **({"request_id": request_id} if request_id else {})}


def openai_status(path: str, status: int) -> int:
    """OpenAI answers a request it cannot read with 400, where FastAPI would say 422."""
    return 400 if is_openai(path) and status == 422 else status


# The error shapes as the OpenAPI document declares them (every 4xx and 5xx of a route family).
class Error(BaseModel):
    error: str
    error_type: str
    request_id: str | None = None


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    error: OpenAIErrorDetail


def responses(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """A route family's error responses for the OpenAPI document (FastAPI's default 422 schema is not ours)."""
    return {
        "4XX": {"model": model, "description": "the request was refused; the body says why"},
        "5XX": {"model": model, "description": "the server failed (500, with a request id) or is not ready (503)"},
    }
