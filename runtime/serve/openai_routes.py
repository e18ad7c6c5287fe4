"""OpenAI's routes, as its official client calls them: ``/v1/embeddings`` (float or base64 vectors, ``dimensions``,
token usage) and ``/v1/models``; their errors are OpenAI's shape (:mod:`.errors`)."""

from __future__ import annotations

import base64
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from ..tasks.feature_extraction import SentenceEmbeddingsPipeline
from .errors import HTTPError, OpenAIError, responses
from .routes import answer, of

router = APIRouter(responses=responses(OpenAIError))


class OpenAIEmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request, as its clients send it (token-id inputs aside)."""

    model_config = ConfigDict(extra="forbid")
    input: str | list[str] = Field(description="a text or a list of texts (not empty; see --max-embeddings-inputs)")
    model: str | None = Field(None, description="a served model; default: the first that gives embeddings")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = Field(None, ge=1)
    user: str | None = None  # accepted, as OpenAI accepts it; nothing is logged by user
    long: Literal["truncate", "chunk"] = "truncate"  # onnxpipe's extension: "chunk" embeds long text by windows


@router.post("/v1/embeddings", summary="OpenAI-style embeddings")
async def openai_embeddings(body: OpenAIEmbeddingsRequest, request: Request) -> JSONResponse:
    server = of(request)
    if server.ready and body.model is not None and body.model not in server.served:
        raise HTTPError(
            404,
            f"The model `{body.model}` does not exist: this server has {', '.join(server.served)}",
            "model_not_found",
            param="model",
        )
    if isinstance(body.input, list) and not body.input:  # OpenAI's 400 for input=[]
        raise HTTPError(
            400, "'$.input' is invalid: an empty list; give at least one text", "invalid_input", param="input"
        )
    # No model: the first that gives embeddings, as infinity and TEI's OpenAI route answer a request without one.
    s = server.model(body.model, "sentence-embeddings")
    pipe = s.task_pipe("sentence-embeddings")
    assert isinstance(pipe, SentenceEmbeddingsPipeline)
    sizes = pipe.config.matryoshka_dims
    check_dimensions(s.name, body.dimensions, pipe.dimension, sizes)  # before running, where the manifest knows it
    texts = [body.input] if isinstance(body.input, str) else body.input
    params: dict[str, Any] = {"long": body.long} if body.long != "truncate" else {}
    if body.dimensions is not None and body.dimensions in sizes:  # cut, then normalised if the model normalises
        params.update(truncate_dim=body.dimensions, **({"normalize": True} if pipe.config.normalize else {}))
    limit = (server.settings.max_embeddings_inputs, "--max-embeddings-inputs")
    result, headers = await server.run(s, pipe, texts, params, limit=limit)
    vectors = np.asarray(result, dtype=np.float32).reshape(len(texts), -1)
    check_dimensions(s.name, body.dimensions, vectors.shape[1], sizes)
    tokens = int(headers.get("x-prompt-tokens", 0))  # counted when tokenized, not tokenized again
    encode = (
        (lambda v: base64.b64encode(v.astype("<f4").tobytes()).decode())
        if body.encoding_format == "base64"
        else (lambda v: v.tolist())
    )  # base64: little-endian float32, as OpenAI encodes it
    data = [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)]
    return answer(
        {"object": "list", "data": data, "model": s.name, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
        headers,
    )


@router.get("/v1/models", summary="OpenAI: the models this server has")
async def models(request: Request) -> dict[str, Any]:
    server = of(request)
    return {"object": "list", "data": [model_card(name) for name in server.served]}


@router.get("/v1/models/{name}", summary="OpenAI: one model")
async def model(name: str, request: Request) -> dict[str, Any]:
    if name not in of(request).served:
        raise HTTPError(404, f"The model `{name}` does not exist", "model_not_found", param="model")
    return model_card(name)


def model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "onnxpipe"}


def check_dimensions(model: str, asked: int | None, dimension: int | None, sizes: list[int]) -> None:
    """Refuse ``dimensions`` other than the model's own and the Matryoshka sizes its manifest lists (the export's
    --matryoshka-dims): only those were trained to be shortened."""
    if asked is not None and dimension is not None and asked != dimension and asked not in sizes:
        also = f" or the Matryoshka sizes {', '.join(map(str, sizes))}" if sizes else ""
        raise HTTPError(
            400,
            f"model {model!r} gives {dimension}-dimensional vectors{also} and cannot shorten them to {asked} "
            "(it was not trained for it)",
            "unsupported_dimensions",
            param="dimensions",
        )
