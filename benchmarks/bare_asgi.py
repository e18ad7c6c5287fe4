"""The floor under ``onnxpipe serve``: what HTTP costs on this machine before any of onnxpipe's server code.

A bare ASGI app, run by uvicorn with the server's own loop and parser (uvloop, httptools), that reads the body,
calls the in-process pipeline inline and writes its answer with orjson (numpy arrays directly): no FastAPI, no
batcher, no thread hand-off. ``serve_speed --serve-args bare`` measures it beside the real server, so the one-caller gap of the real
server splits into what any Python HTTP server pays here (this app's gap) and what onnxpipe's server adds.

    ONNXPIPE_BARE_TASK=text-classification ONNXPIPE_BARE_MODEL=DIR uvicorn onnxpipe.bench.bare_asgi:app ...

With ``ONNXPIPE_BARE_CONSTANT=1`` it answers every request with the bytes of one answer computed at start
(``serve_speed --serve-args http``): HTTP's round trip alone, the same size of answer, no graph run.

Not for traffic: one request at a time holds the event loop for its whole graph run.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from onnxpipe import pipeline

_pipe = pipeline(os.environ["ONNXPIPE_BARE_TASK"], model=os.environ["ONNXPIPE_BARE_MODEL"])


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


_CONSTANT = _json(_pipe("A gripping, beautifully shot film.")) if os.environ.get("ONNXPIPE_BARE_CONSTANT") else b""


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/health":
        answer = b'{"status":"ok"}'
    else:
        answer = _CONSTANT or _json(_pipe(orjson.loads(body)["inputs"]))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": answer})
