"""A call's inputs and options checked as the transformers pipelines read them, with errors that name the
problem: shared by every task and entry point (the Python call, the server, ``run``, ``score``)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Iterable

from .errors import InputError, InputTypeError, InputValueError

# What a bad input raises (runtime/errors.py): only these are taken for a client's mistake; a built-in
# TypeError or KeyError from a bug is not.
INPUT_ERRORS = (InputError,)


def check_int(value: Any, name: str, minimum: int = 1, none: bool = False) -> Any:
    """``value`` if it is an int (a bool is not) of at least ``minimum`` (0 or 1), or None where ``none``;
    otherwise an error naming the parameter: the one check behind every count a call takes."""
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = ("a positive int" if minimum == 1 else f"an int >= {minimum}") if minimum else "a non-negative int"
        raise InputValueError(f"{name} must be {kind}{' or None' if none else ''}, got {value!r}")
    return value


@functools.cache
def _signature(function: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(function)


@functools.cache
def _all_optional(function: Callable[..., Any]) -> bool:
    """Whether ``function`` (unbound: its first parameter is self) can be called with no keywords at all."""
    params = list(_signature(function).parameters.values())[1:]
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)


def check_keywords(function: Callable[..., Any], params: dict[str, Any]) -> None:
    """A call's keywords against the parameters ``function`` (a task's unbound ``sanitize_parameters``) takes:
    an unknown one is the caller's mistake, an :class:`InputTypeError` in Python's own words, never a bug's
    ``TypeError`` from inside the task."""
    if not params and _all_optional(function):  # nothing to check; binding costs ~30 us a call
        return
    try:
        _signature(function).bind(None, **params)
    except TypeError as e:
        raise InputTypeError(str(e)) from None


def check_batch_size(batch_size: Any) -> int:
    size: int = check_int(batch_size, "batch_size")
    return size


STRATEGIES = ("longest_first", "only_first", "only_second")
DIRECTIONS = ("right", "left")


@dataclass(frozen=True, kw_only=True)
class Pre:
    """Base of every task's preprocess parameters: a frozen dataclass that the task's ``sanitize_parameters``
    builds once per call, in :meth:`Pipeline.read`, and that its ``preprocess`` reads by name."""

    def cut_from(self, direction: str) -> Pre:
        """These parameters with overlong text cut from ``direction``'s end (TEI's ``truncation_direction``);
        tasks without a :class:`Truncation` of their own (question answering's windows, zero-shot's hypotheses,
        token classification's words) refuse it; TEI's routes, which take it, run only tasks that have one."""
        raise InputValueError(f"truncation_direction is not an option of this task, got {direction!r}")


@dataclass(frozen=True, kw_only=True)
class Post:
    """Base of every task's postprocess (and aggregate) parameters: a frozen dataclass, built with the
    preprocess ones; ``explain`` prints its fields."""


@dataclass(frozen=True)
class Truncation:
    """How text past the limit is cut: the tokenizer options :meth:`Pipeline.encode` takes, checked when made.

    ``max_length`` None is the model's limit; ``direction`` is which end an overlong text loses (right, as the
    transformers tokenizers cut by default; left for TEI's ``truncation_direction``)."""

    max_length: int | None = None
    strategy: str = "longest_first"
    direction: str = "right"

    def __post_init__(self) -> None:
        check_int(self.max_length, "max_length", none=True)
        if self.strategy not in STRATEGIES:
            raise InputValueError(f"truncation strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.direction not in DIRECTIONS:
            raise InputValueError(f"truncation direction must be one of {DIRECTIONS}, got {self.direction!r}")

    def options(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`TextEncoder.encode`."""
        return {"max_length": self.max_length, "strategy": self.strategy, "direction": self.direction}


AT_LIMIT = Truncation()  # the default: longest_first at the model's limit, from the right


@dataclass(frozen=True, kw_only=True)
class TruncatedPre(Pre):
    """Preprocess parameters of the tasks that cut text at a limit (one feature per input)."""

    truncation: Truncation = AT_LIMIT

    def cut_from(self, direction: str) -> TruncatedPre:
        return dataclasses.replace(self, truncation=dataclasses.replace(self.truncation, direction=direction))


def check_truncation(truncation: bool | str | None, max_length: int | None) -> Truncation:
    """Tokenizer options as transformers' pipelines take them → :class:`Truncation`, with the transformers
    tokenizer's semantics: the strategy is checked whether or not ``max_length`` is given, and applies at the
    model's limit when it is not (``only_second`` cuts only the pair there, as transformers cuts it at
    ``model_max_length``); ``max_length`` without ``truncation`` truncates ``longest_first``.

    Deliberate difference: text past the model's limit is always truncated (transformers raises), so
    ``truncation=False`` keeps only that cut."""
    check_int(max_length, "max_length", none=True)
    if truncation is None or truncation is True:
        return Truncation(max_length)
    if truncation is False or truncation == "do_not_truncate":
        return Truncation()
    if isinstance(truncation, str) and truncation in STRATEGIES:
        return Truncation(max_length, truncation)
    raise InputValueError(f"truncation must be a bool or one of {(*STRATEGIES, 'do_not_truncate')}, got {truncation!r}")


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
