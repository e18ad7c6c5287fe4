"""A call's inputs and options checked as the transformers pipelines read them, with errors that name the
problem: shared by every task and entry point (the Python call, the server, ``run``, ``score``)."""

from __future__ import annotations

from typing import Any
from collections.abc import Iterable

from .errors import InputError, InputTypeError, InputValueError

# What a bad input raises (runtime/errors.py): only these are taken for a client's mistake; a built-in
# TypeError or KeyError from a bug is not.
INPUT_ERRORS = (InputError,)


def check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


STRATEGIES = ("longest_first", "only_first", "only_second")


def truncation_params(truncation: bool | str | None, max_length: int | None) -> dict[str, Any]:
    """Tokenizer options as transformers' pipelines take them → :meth:`Pipeline.encode`'s.

    Deliberate difference: text past the model's limit is always truncated (transformers raises); a
    shorter ``max_length`` and a strategy apply as the transformers tokenizer applies them."""
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise InputValueError(f"max_length must be a positive int, got {max_length!r}")
    if truncation is False or truncation == "do_not_truncate" or max_length is None:
        return {}
    strategy = "longest_first" if truncation in (None, True) else truncation
    if strategy not in STRATEGIES:
        raise InputValueError(f"truncation must be a bool or one of {STRATEGIES}, got {truncation!r}")
    return {"max_length": max_length, "strategy": strategy}


def is_stream(inputs: Any) -> bool:
    return not isinstance(inputs, (str, bytes, dict, list, tuple)) and isinstance(inputs, Iterable)


def _pair(item: dict[str, Any], where: str) -> str | tuple[str, str]:
    unknown = set(item) - {"text", "text_pair"}
    if "text" not in item or unknown:
        raise InputValueError(f"{where} must be a dict with 'text' and optionally 'text_pair', got keys {sorted(item)}")
    text, pair = item["text"], item.get("text_pair")
    for key, value in (("text", text), ("text_pair", pair)):
        if value is not None and not isinstance(value, str):
            raise InputTypeError(f"{where}[{key!r}] is a {type(value).__name__}, not a str")
    # An empty pair encodes the text alone, as the transformers tokenizer does (`if text_pair` there).
    return (text, pair) if pair else text


def raise_on_invalid_unicode(texts: list[Any]) -> None:
    """Name the first text that is not valid Unicode (a lone surrogate, from undecodable bytes).

    Checked only after the tokenizer refused a batch, so valid input pays nothing for it."""
    for i, item in enumerate(texts):
        try:
            for text in item if isinstance(item, tuple) else (item,):
                text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InputValueError(
                f"inputs[{i}] is not valid Unicode text: {e.reason} {e.object[e.start]!r} at character "
                f"{e.start} (undecodable bytes?); decode the input strictly as UTF-8 first"
            ) from None


def check_texts(inputs: Any) -> tuple[list[str], str | None]:
    """For tasks that take text only (no pairs): a ``str`` (kind "str") or a list or tuple of them."""
    if isinstance(inputs, str):
        return [inputs], "str"
    if not isinstance(inputs, (list, tuple)):
        raise InputTypeError(f"inputs must be a str or a list of str, got {type(inputs).__name__}")
    for i, item in enumerate(inputs):
        if not isinstance(item, str):
            raise InputTypeError(f"inputs[{i}] is a {type(item).__name__}, not a str: every input must be text")
    return list(inputs), None


def check_texts_or_pairs(inputs: Any) -> tuple[list[str | tuple[str, str]], str | None]:
    """``str`` or ``{"text", "text_pair"}`` → one input (its kind returned); a list or tuple of them
    (or of the legacy ``[[text, pair]]``) → a batch (kind None). Anything else is refused."""
    if isinstance(inputs, str):
        return [inputs], "str"
    if isinstance(inputs, dict):
        return [_pair(inputs, "inputs")], "dict"
    if not isinstance(inputs, (list, tuple)):
        raise InputTypeError(
            f"inputs must be a str, a {{'text', 'text_pair'}} dict or a list of them, got {type(inputs).__name__}"
        )
    items: list[str | tuple[str, str]] = []
    for i, item in enumerate(inputs):
        if isinstance(item, str):
            items.append(item)
        elif isinstance(item, dict):
            items.append(_pair(item, f"inputs[{i}]"))
        elif isinstance(item, list) and len(item) == 1 and isinstance(item[0], list) and len(item[0]) == 2:
            items.append(_pair({"text": item[0][0], "text_pair": item[0][1]}, f"inputs[{i}]"))  # legacy form
        elif isinstance(item, (list, tuple)):
            raise InputValueError(
                f"inputs[{i}] is a {type(item).__name__}: to send a text pair, send a dict "
                '{"text": "My text", "text_pair": "My pair"} (as transformers asks)'
            )
        else:
            raise InputTypeError(f"inputs[{i}] is a {type(item).__name__}, not a str: every input must be text")
    return items, None
