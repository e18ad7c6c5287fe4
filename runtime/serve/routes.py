"""The routes: each turns its request shape (the Python call's, TEI's, OpenAI's) into a pipeline call through
:meth:`Server.run` and its answer back into that shape. Bodies are pydantic models: a wrong type is a 422
naming the field."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from ..explain import jsonable, page_data
from ..inputs import raise_on_invalid_unicode
from ..tasks.sparse_embeddings import as_pairs
from ..tasks.text_classification import TextClassificationPipeline, rank
from .errors import Error, HTTPError, responses
from .server import Server

PAGE = Path(__file__).with_name("page.html")
router = APIRouter(responses=responses(Error))


def of(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


class Answer(JSONResponse):
    """A JSON answer written by orjson: the values Starlette's ``json.dumps`` writes (each float in its shortest
    round-trip form; orjson spells a few otherwise, 0.00001 for 1e-05), 15-20x faster on an embedding (384
    floats: ~30 µs against ~550 µs, measured here), which is event-loop time every request pays."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def answer(body: Any, headers: dict[str, str]) -> JSONResponse:
    return Answer(jsonable(body), headers=headers)


Text = str | list[str] | list[list[str]]


class PipelineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: Any = Field(description="what the Python pipeline takes: a text, a list, a {question, context} dict...")
    parameters: dict[str, Any] = Field(default_factory=dict, description="call parameters (top_k, ...)")
    model: str | None = None
    task: str | None = Field(
        None,
        description="a task that runs the model's graph (zero-shot-classification on an "
        "NLI classifier, sentence-embeddings on a base encoder); default: "
        "the model's own",
    )


# TEI spells it "Left" / "Right"; either case is taken.
Direction = Literal["left", "right", "Left", "Right"]


class PredictRequest(BaseModel):
    inputs: Text
    raw_scores: StrictBool = False
    truncate: StrictBool = True
    truncation_direction: Direction = "right"
    model: str | None = None


class EmbedRequest(BaseModel):
    inputs: str | list[str]
    normalize: StrictBool = True
    truncate: StrictBool = True
    truncation_direction: Direction = "right"
    prompt_name: str | None = None
    model: str | None = None
    # onnxpipe's own: the Python call's embeddings options (README, "Embeddings: precision, ...")
    precision: Literal["float32", "int8", "uint8", "binary", "ubinary"] = "float32"
    ranges: list[list[float]] | None = None
    truncate_dim: StrictInt | None = Field(None, ge=1)
    long: Literal["truncate", "chunk"] = "truncate"


class RerankRequest(BaseModel):
    query: str
    texts: list[str]
    return_text: StrictBool = False
    raw_scores: StrictBool = False
    truncate: StrictBool = True
    truncation_direction: Direction = "right"
    model: str | None = None


class TokenizeRequest(BaseModel):
    inputs: str | list[str]
    add_special_tokens: StrictBool = True
    model: str | None = None


@router.post("/v1/pipeline", summary="Any task: the Python pipeline's call and JSON")
async def pipeline_route(body: PipelineRequest, request: Request) -> JSONResponse:
    server = of(request)
    s = server.model(body.model)
    result, headers = await server.run(s, server.pipe_for(s, body.task), body.inputs, body.parameters)
    return answer(result, headers)


@router.post("/predict", summary="TEI: classify texts or [text, pair]s")
async def predict(body: PredictRequest, request: Request) -> JSONResponse:
    server = of(request)
    s = server.model(body.model, "text-classification")
    pipe = s.task_pipe("text-classification")
    inputs = body.inputs
    # TEI's reading: [a, b] of two strings is one pair; a list of them (or of texts) a batch.
    single = isinstance(inputs, str) or (
        isinstance(inputs, list) and len(inputs) == 2 and all(isinstance(x, str) for x in inputs)
    )
    batch = [inputs] if single else inputs
    # TEI's batch: each input a text, a [text], or a [text, pair]
    items = [{"text": x[0], "text_pair": x[1]} if isinstance(x, list) and len(x) == 2 else x for x in batch]
    items = [x[0] if isinstance(x, list) and len(x) == 1 else x for x in items]
    if any(isinstance(x, list) for x in items):
        raise HTTPError(422, "inputs: each input is a text or a [text, pair] of two texts", "bad_input")
    params = {"top_k": None, **({"function_to_apply": "none"} if body.raw_scores else {})}
    result, headers = await server.run(s, pipe, items, params, body.truncate, body.truncation_direction.lower())
    return answer(result[0] if single else result, headers)


@router.post("/embed", summary="TEI: one vector per text")
async def embed(body: EmbedRequest, request: Request) -> JSONResponse:
    server = of(request)
    s = server.model(body.model, "sentence-embeddings")
    pipe = s.task_pipe("sentence-embeddings")
    texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    params = {"normalize": body.normalize, **({"prompt_name": body.prompt_name} if body.prompt_name else {})}
    options = {"precision": body.precision, "ranges": body.ranges, "truncate_dim": body.truncate_dim, "long": body.long}
    params.update({k: v for k, v in options.items() if v is not None})
    chunked = body.long == "chunk"  # nothing is cut: truncate=false has nothing to refuse
    result, headers = await server.run(
        s, pipe, texts, params, body.truncate or chunked, body.truncation_direction.lower()
    )
    return answer(result, headers)


class EmbedSparseRequest(BaseModel):
    inputs: str | list[str]
    truncate: StrictBool = True
    truncation_direction: Direction = "right"
    top_k: StrictInt | None = Field(None, ge=1)  # onnxpipe's own: only the k largest weights
    model: str | None = None


@router.post("/embed_sparse", summary="TEI: one sparse (SPLADE) vector per text")
async def embed_sparse(body: EmbedSparseRequest, request: Request) -> JSONResponse:
    server = of(request)
    s = server.model(body.model, "sparse-embeddings")
    pipe = s.task_pipe("sparse-embeddings")
    texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    params = {} if body.top_k is None else {"top_k": body.top_k}
    results, headers = await server.run(s, pipe, texts, params, body.truncate, body.truncation_direction.lower())
    return answer([as_pairs(r) for r in results], headers)


@router.post("/rerank", summary="TEI: texts ranked by a cross-encoder for the query")
async def rerank(body: RerankRequest, request: Request) -> JSONResponse:
    server = of(request)
    s = server.model(body.model, "text-classification")
    pipe = s.task_pipe("text-classification")
    params = {"top_k": None, **({"function_to_apply": "none"} if body.raw_scores else {})}
    pairs = [{"text": body.query, "text_pair": t} for t in body.texts]
    results, headers = await server.run(s, pipe, pairs, params, body.truncate, body.truncation_direction.lower())
    assert isinstance(pipe, TextClassificationPipeline)
    return answer(rank(results, pipe.relevant_label, body.texts if body.return_text else None), headers)


class SimilarityInputs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_sentence: str
    sentences: list[str]


class SimilarityRequest(BaseModel):
    inputs: SimilarityInputs
    truncate: StrictBool = True
    truncation_direction: Direction = "right"
    prompt_name: str | None = None
    model: str | None = None


@router.post("/similarity", summary="TEI: cosine of the source sentence's vector with each sentence's")
async def similarity(body: SimilarityRequest, request: Request) -> JSONResponse:
    server = of(request)
    s = server.model(body.model, "sentence-embeddings")
    pipe = s.task_pipe("sentence-embeddings")
    texts = [body.inputs.source_sentence, *body.inputs.sentences]
    params = {"normalize": True, **({"prompt_name": body.prompt_name} if body.prompt_name else {})}
    vectors, headers = await server.run(s, pipe, texts, params, body.truncate, body.truncation_direction.lower())
    source, *others = (np.asarray(v, dtype=np.float32) for v in vectors)
    return answer([float(source @ v) for v in others], headers)


@router.post("/tokenize", summary="TEI: the tokens of each text")
async def tokenize(body: TokenizeRequest, request: Request) -> list[list[dict[str, Any]]]:
    server = of(request)
    s = server.model(body.model)
    texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    limit = server.settings.max_client_batch
    if len(texts) > limit:
        raise HTTPError(413, f"{len(texts)} inputs; at most {limit} (--max-client-batch)", "too_many_inputs")
    tok = s.loaded.encoder.tokenizer
    try:
        encodings = await server.in_pool(
            server.tokenizer_pool,
            functools.partial(tok.encode_batch, texts, add_special_tokens=body.add_special_tokens),
        )
    except TypeError:  # tokenizers' only word for text it cannot take (a lone surrogate): name it
        raise_unicode_422(texts)
        raise
    return [
        [
            {"id": i, "text": t, "special": bool(m), "start": a, "stop": b}
            for i, t, m, (a, b) in zip(e.ids, e.tokens, e.special_tokens_mask, e.offsets)
        ]
        for e in encodings
    ]


@router.post("/v1/explain", summary="The four stages of one call, with data and timings (the page's)")
async def explain_route(body: PipelineRequest, request: Request) -> dict[str, Any]:
    server = of(request)
    # The same limits, pool and timeout as the other routes; its graph runs are its own (it shows them).
    s = server.model(body.model)
    pipe = server.pipe_for(s, body.task)
    plan = server.read(pipe, body.inputs, body.parameters)
    result: dict[str, Any] = await server.in_pool(server.explain_pool, page_data, pipe, plan)
    return result


@router.get("/health")
async def health(request: Request) -> Any:
    server = of(request)
    if server.ready:
        return {"status": "ok"}
    return JSONResponse({"status": "error" if server.error else "loading", "error": server.error}, status_code=503)


@router.get("/info")
async def info(request: Request) -> dict[str, Any]:
    return of(request).info()


@router.get("/metrics")
async def prometheus(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(of(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)


# POST / (and each model's /models/{name}) is in .model_routes.


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> str:
    return PAGE.read_text(encoding="utf-8")


def raise_unicode_422(texts: list[Any]) -> None:
    try:
        raise_on_invalid_unicode(texts)
    except ValueError as e:
        raise HTTPError(422, str(e), "bad_input") from None
