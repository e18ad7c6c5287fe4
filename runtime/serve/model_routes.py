"""Each model's own address: ``POST /models/{name}`` answers as ``POST /`` does for the default model (the
model's task read from the body's shape, as TEI's root does), and ``/models/{name}/predict`` (``embed``,
``embed_sparse``, ``rerank``, ``similarity``, ``tokenize``) as the TEI route does with that model. So a client that posts every
task to one URL (huggingface_hub's ``InferenceClient(model=url)``) can be pointed at any model of a
multi-model server."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from ..tasks import BASE, CLASSIFIER, TASKS
from .errors import Error, HTTPError, responses
from .routes import (
    EmbedRequest,
    EmbedSparseRequest,
    PipelineRequest,
    PredictRequest,
    RerankRequest,
    SimilarityRequest,
    TokenizeRequest,
    embed,
    embed_sparse,
    of,
    pipeline_route,
    predict,
    rerank,
    similarity,
    tokenize,
)

router = APIRouter(responses=responses(Error))
Body = TypeVar("Body", bound=BaseModel)

# What the root takes, for the OpenAPI document (and so the schema-driven tests send every shape).
ROOT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": f"#/components/schemas/{m.__name__}"}
                        for m in (PredictRequest, RerankRequest, EmbedRequest, SimilarityRequest, PipelineRequest)
                    ]
                }
            }
        },
    }
}


def named(body: Body, name: str | None) -> Body:
    """``body`` for the model the path names (a body naming another model is refused, not overridden)."""
    if name is not None:
        given = getattr(body, "model", None)
        if given not in (None, name):
            raise HTTPError(422, f"the path names model {name!r} and the body {given!r}: name one", "bad_input")
        body.model = name  # type: ignore[attr-defined]  # every route's body has a model field
    return body


async def dispatch(request: Request, name: str | None) -> Any:
    """TEI's root: predict or rerank for a classifier, embed or similarity for an encoder, else the pipeline
    call; the body's shape says which."""
    server = of(request)
    task = server.model(name).loaded.task
    try:
        body = await request.json()
    except ValueError as e:  # not JSON (or not UTF-8)
        raise HTTPError(422, f"the body is not JSON: {e}", "bad_input") from None
    try:
        if TASKS[task].head is CLASSIFIER:
            if isinstance(body, dict) and "query" in body:
                return await rerank(named(RerankRequest.model_validate(body), name), request)
            return await predict(named(PredictRequest.model_validate(body), name), request)
        if TASKS[task].head is BASE:
            inputs = body.get("inputs") if isinstance(body, dict) else None
            if isinstance(inputs, dict) and "source_sentence" in inputs:  # InferenceClient.sentence_similarity
                return await similarity(named(SimilarityRequest.model_validate(body), name), request)
            return await embed(named(EmbedRequest.model_validate(body), name), request)
        return await pipeline_route(named(PipelineRequest.model_validate(body), name), request)
    except ValidationError as e:
        raise RequestValidationError(e.errors()) from None


@router.post(
    "/",
    summary="TEI: the default model's own route (predict or rerank for a classifier, embed for an encoder)",
    openapi_extra=ROOT_BODY,
)
async def default_route(request: Request) -> Any:
    """What TEI answers at its root, and what huggingface_hub's InferenceClient posts to a server's URL."""
    return await dispatch(request, None)


@router.post(
    "/models/{name}", summary="One model's root: as POST / answers for the default model", openapi_extra=ROOT_BODY
)
async def model_root(name: str, request: Request) -> Any:
    return await dispatch(request, name)


@router.post("/models/{name}/predict", summary="TEI's /predict with this model")
async def model_predict(name: str, body: PredictRequest, request: Request) -> JSONResponse:
    return await predict(named(body, name), request)


@router.post("/models/{name}/embed", summary="TEI's /embed with this model")
async def model_embed(name: str, body: EmbedRequest, request: Request) -> JSONResponse:
    return await embed(named(body, name), request)


@router.post("/models/{name}/embed_sparse", summary="TEI's /embed_sparse with this model")
async def model_embed_sparse(name: str, body: EmbedSparseRequest, request: Request) -> JSONResponse:
    return await embed_sparse(named(body, name), request)


@router.post("/models/{name}/rerank", summary="TEI's /rerank with this model")
async def model_rerank(name: str, body: RerankRequest, request: Request) -> JSONResponse:
    return await rerank(named(body, name), request)


@router.post("/models/{name}/similarity", summary="TEI's /similarity with this model")
async def model_similarity(name: str, body: SimilarityRequest, request: Request) -> JSONResponse:
    return await similarity(named(body, name), request)


@router.post("/models/{name}/tokenize", summary="TEI's /tokenize with this model")
async def model_tokenize(name: str, body: TokenizeRequest, request: Request) -> list[list[dict[str, Any]]]:
    return await tokenize(named(body, name), request)
