"""What ``onnxpipe score`` writes for each task: its result columns, their types, and which part of a result
each holds, as a function of the call's parameters (a ``top_k`` or an aggregation strategy changes the
shape of an answer, so it changes the column type; one type per run).

Plain data, no pyarrow: the registry stays importable by the lean runtime, and ``onnxpipe.scale.columns``
turns a description into Arrow types and arrays. A type is ``"string"``, ``"float64"``, ``"int64"``,
``"float32"``, ``"int32"``, ``"int8"``, ``"uint8"``, ``("list", T)``, ``("struct", ((name, T), ...))`` or ``("vector", T)``: a fixed-size list
whose size is the model's (embedding or hidden width), read off a result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InputValueError

Type = str | tuple[Any, ...]  # the grammar above (recursive, so Any inside)


@dataclass(frozen=True)
class ScoreColumn:
    name: str
    type: Type
    # which part of a result the column holds: "field" (result[name]), "all" (the result itself),
    # "first" (result[0]: feature-extraction's batch of one), "masks" (fill-mask: always one list per mask),
    # "listed" (the result, a lone dict made a list of one: transformers' QA answers one dict when only
    # one answer is found, even for top_k > 1), "sparse" ({indices, values} as a list of {index, value}: TEI's
    # /embed_sparse shape, one struct a non-zero weight)
    take: str = "field"


def _struct(*fields: tuple[str, Type]) -> Type:
    return ("struct", fields)


LABEL_SCORE = _struct(("label", "string"), ("score", "float64"))
ANSWER_FIELDS: tuple[tuple[str, Type], ...] = (
    ("answer", "string"),
    ("score", "float64"),
    ("start", "int64"),
    ("end", "int64"),
)
ANSWER = _struct(*ANSWER_FIELDS)
PROPOSAL = _struct(("score", "float64"), ("token", "int64"), ("token_str", "string"), ("sequence", "string"))


def text_classification(params: dict[str, Any]) -> tuple[ScoreColumn, ...]:
    # transformers returns every label (or the top k) as a list once top_k is named, even top_k=None
    if "top_k" in params or params.get("return_all_scores"):
        return (ScoreColumn("labels", ("list", LABEL_SCORE), "all"),)
    return ScoreColumn("label", "string"), ScoreColumn("score", "float64")


def zero_shot_classification(params: dict[str, Any]) -> tuple[ScoreColumn, ...]:
    if not params.get("candidate_labels"):
        raise InputValueError(
            "zero-shot-classification needs its labels for every row: "
            """--params '{"candidate_labels": ["film", "food"]}'"""
        )
    return ScoreColumn("labels", ("list", "string")), ScoreColumn("scores", ("list", "float64"))


def feature_extraction(params: dict[str, Any]) -> tuple[ScoreColumn, ...]:
    return (ScoreColumn("features", ("list", ("vector", "float32")), "first"),)  # one vector per token


# sentence-embeddings' precision → the vector's element type: the bits kept (binary: packed sign bits, 8 a byte)
PRECISION_TYPES = {"float32": "float32", "int8": "int8", "uint8": "uint8", "binary": "int8", "ubinary": "uint8"}


def sentence_embeddings(params: dict[str, Any]) -> tuple[ScoreColumn, ...]:
    precision = params.get("precision") or "float32"
    if precision not in PRECISION_TYPES:
        raise InputValueError(f"precision must be one of {', '.join(PRECISION_TYPES)}, got {precision!r}")
    return (ScoreColumn("embedding", ("vector", PRECISION_TYPES[precision]), "all"),)


def fill_mask(params: dict[str, Any]) -> tuple[ScoreColumn, ...]:
    # One type per run, whatever each text's number of masks: a list per mask, in order (a text with one
    # mask has one list; transformers returns that list bare, and a list of lists for several masks).
    return (ScoreColumn("predictions", ("list", ("list", PROPOSAL)), "masks"),)


def token_classification(params: dict[str, Any]) -> tuple[ScoreColumn, ...]:
    if "grouped_entities" in params or "ignore_subwords" in params:  # transformers' deprecated switches
        grouped = bool(params.get("grouped_entities"))
    else:
        grouped = str(params.get("aggregation_strategy") or "none").lower() != "none"
    head: tuple[tuple[str, Type], ...] = (("entity", "string"), ("score", "float64"), ("index", "int64"))
    if grouped:  # one entity per group, without a token index
        head = (("entity_group", "string"), ("score", "float64"))
    entity = _struct(*head, ("word", "string"), ("start", "int64"), ("end", "int64"))
    return (ScoreColumn("entities", ("list", entity), "all"),)


def question_answering(params: dict[str, Any]) -> tuple[ScoreColumn, ...]:
    top_k = params.get("top_k", params.get("topk"))
    if isinstance(top_k, int) and top_k > 1:  # transformers: a list of answers for top_k > 1, else one
        return (ScoreColumn("answers", ("list", ANSWER), "listed"),)
    return tuple(ScoreColumn(name, t) for name, t in ANSWER_FIELDS)


def sparse_embeddings(params: dict[str, Any]) -> tuple[ScoreColumn, ...]:
    return (ScoreColumn("sparse", ("list", _struct(("index", "int32"), ("value", "float32"))), "sparse"),)
