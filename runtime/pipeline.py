"""The pipeline: load once, then per call preprocess → _forward → postprocess → aggregate, batched by length.

Task classes (``tasks/``) supply the stages and the call's parameters; this base class owns what every
encoder task shares: input checks, length-sorted batching and returning results in the caller's order.

An input becomes one or more *features* (an encoding plus what postprocess needs to read its outputs:
zero-shot makes one per candidate label, span tasks one per window). Features of all inputs are sorted
by length and batched together; postprocess turns each batch's outputs into one value per feature; the
task's aggregate builds each input's result from its own features' values, as transformers'
``ChunkPipeline`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol

import numpy as np
from tokenizers import Encoding

from .artifact import Artifact
from .errors import OnnxPipeError
from .session import Session
from .tokenize import ENCODER_OUTPUTS, TextEncoder

DEFAULT_BATCH_SIZE = 32


@dataclass
class Feature:
    """One encoding the graph runs, and where its outputs belong."""

    encoding: Encoding
    owner: int  # index of the input (in the call's list) this feature belongs to
    length: int  # tokens before padding (collate pads the encoding in place)
    context: Any = None  # what the task's postprocess / aggregate needs besides the encoding


class Engine(Protocol):
    """What runs the graph: onnxruntime's :class:`Session` by default; the benchmark hands in others
    (OpenVINO, CTranslate2) so that tokenization and postprocessing stay onnxpipe's own."""

    input_names: list[str]
    threads: int

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


STRATEGIES = ("longest_first", "only_first", "only_second")


def truncation_params(truncation: bool | str | None, max_length: int | None) -> dict[str, Any]:
    """Tokenizer options as transformers' pipelines take them → :meth:`Pipeline.encode`'s.

    Deliberate difference: text past the model's limit is always truncated (transformers raises); a
    shorter ``max_length`` and a strategy apply as the transformers tokenizer applies them."""
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                   or max_length < 1):
        raise ValueError(f"max_length must be a positive int, got {max_length!r}")
    if truncation is False or truncation == "do_not_truncate" or max_length is None:
        return {}
    strategy = "longest_first" if truncation in (None, True) else truncation
    if strategy not in STRATEGIES:
        raise ValueError(f"truncation must be a bool or one of {STRATEGIES}, got {truncation!r}")
    return {"max_length": max_length, "strategy": strategy}


def _is_stream(inputs: Any) -> bool:
    return not isinstance(inputs, (str, bytes, dict, list, tuple)) and isinstance(inputs, Iterable)


def _pair(item: dict, where: str) -> str | tuple[str, str]:
    unknown = set(item) - {"text", "text_pair"}
    if "text" not in item or unknown:
        raise ValueError(f"{where} must be a dict with 'text' and optionally 'text_pair', got keys {sorted(item)}")
    text, pair = item["text"], item.get("text_pair")
    for key, value in (("text", text), ("text_pair", pair)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{where}[{key!r}] is a {type(value).__name__}, not a str")
    # An empty pair encodes the text alone, as the transformers tokenizer does (`if text_pair` there).
    return (text, pair) if pair else text


def raise_on_invalid_unicode(texts: list) -> None:
    """Name the first text that is not valid Unicode (a lone surrogate, from undecodable bytes).

    Checked only after the tokenizer refused a batch, so valid input pays nothing for it."""
    for i, item in enumerate(texts):
        try:
            for text in (item if isinstance(item, tuple) else (item,)):
                text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"inputs[{i}] is not valid Unicode text: {e.reason} {e.object[e.start]!r} at character "
                             f"{e.start} (undecodable bytes?); decode the input strictly as UTF-8 first") from None


class Pipeline:
    """Base of every task pipeline; subclasses set ``task`` and implement the three stages."""

    task: str = ""
    result_key = "result"  # `onnxpipe run`'s JSON key for a result that is not a dict

    def __init__(self, artifact: Artifact, variant: str | None = None, threads: int | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, verify: bool = True, engine: Engine | None = None,
                 **defaults: Any):
        self.artifact = artifact
        self.variant = variant or artifact.default_variant
        model_file = artifact.variant_file(self.variant)
        if verify:
            artifact.verify(model_file.name, "tokenizer.json")
        self.batch_size = check_batch_size(batch_size)
        self.encoder = TextEncoder(artifact.path / "tokenizer.json", artifact.max_length,
                                   artifact.pad_id, artifact.pad_token)
        self.sanitize_parameters(**defaults)  # refuse bad defaults now, not at the first call
        self.defaults = defaults  # parameters given to pipeline(...): every call's, unless it overrides them
        self.session = engine if engine is not None else Session(model_file, threads)
        unknown = [n for n in self.session.input_names if n not in ENCODER_OUTPUTS]
        if unknown:
            raise OnnxPipeError(f"{model_file} takes inputs {unknown} that the tokenizer does not produce "
                                f"(it produces {', '.join(ENCODER_OUTPUTS)}): not a supported encoder graph")

    @property
    def model_path(self) -> Path:
        return self.artifact.variant_file(self.variant)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={str(self.artifact.path)!r}, variant={self.variant!r})"

    def __call__(self, inputs: Any, batch_size: int | None = None, **params: Any) -> Any:
        if _is_stream(inputs):  # a generator or other iterable: results as they are ready, as transformers does
            return self._iterate(inputs, batch_size, params)
        items, single = self.check_inputs(inputs)
        return self.finish(self._results(items, batch_size, params), single, params)

    def results(self, inputs: list[Any], batch_size: int | None = None, **params: Any) -> list[Any]:
        """One result per input of the list, without the call-shape rules ``__call__`` applies for
        transformers' sake (fill-mask unwraps a list of one; embeddings stack into one array)."""
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(f"inputs must be a list, got {type(inputs).__name__}")
        items, _ = self.check_inputs(list(inputs))
        return self._results(items, batch_size, params)

    def _results(self, items: list[Any], batch_size: int | None, params: dict[str, Any]) -> list[Any]:
        size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        pre, post = self.sanitize_parameters(**{**self.defaults, **params})
        if not items:
            return []
        features = self.preprocess(items, **pre)
        values: list[Any] = [None] * len(features)
        # Sorting by token count keeps padding (wasted compute) low inside each batch.
        order = sorted(range(len(features)), key=lambda i: features[i].length)
        for start in range(0, len(order), size):
            idx = order[start:start + size]
            batch = [features[i] for i in idx]
            outputs = self._forward(self.encoder.collate([f.encoding for f in batch]))
            for i, value in zip(idx, self.postprocess(batch, outputs, **post)):
                values[i] = value
        return self.assemble(items, features, values, post)

    def assemble(self, items: list[Any], features: list[Feature], values: list[Any], post: dict[str, Any]
                 ) -> list[Any]:
        """Each input's result from its own features' values (in feature order), by the task's aggregate."""
        grouped: list[list[Any]] = [[] for _ in items]
        for feature, value in zip(features, values):
            grouped[feature.owner].append(value)
        return [self.aggregate(item, own, **post) for item, own in zip(items, grouped)]

    def _iterate(self, inputs, batch_size: int | None, params: dict[str, Any]) -> Iterator[Any]:
        size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        chunk: list[Any] = []
        for item in inputs:
            chunk.append(item)
            if len(chunk) == size:
                yield from self.results(chunk, size, **params)
                chunk = []
        if chunk:
            yield from self.results(chunk, size, **params)

    # -- input checks shared by the text tasks -------------------------------------------------
    @staticmethod
    def check_texts(inputs: Any) -> tuple[list[str], str | None]:
        """For tasks that take text only (no pairs): a ``str`` (kind "str") or a list or tuple of them."""
        if isinstance(inputs, str):
            return [inputs], "str"
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(f"inputs must be a str or a list of str, got {type(inputs).__name__}")
        for i, item in enumerate(inputs):
            if not isinstance(item, str):
                raise TypeError(f"inputs[{i}] is a {type(item).__name__}, not a str: every input must be text")
        return list(inputs), None

    @staticmethod
    def check_inputs(inputs: Any) -> tuple[list[str | tuple[str, str]], str | None]:
        """``str`` or ``{"text", "text_pair"}`` → one input (its kind returned); a list or tuple of them
        (or of the legacy ``[[text, pair]]``) → a batch (kind None). Anything else is refused."""
        if isinstance(inputs, str):
            return [inputs], "str"
        if isinstance(inputs, dict):
            return [_pair(inputs, "inputs")], "dict"
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(f"inputs must be a str, a {{'text', 'text_pair'}} dict or a list of them, "
                            f"got {type(inputs).__name__}")
        items: list[str | tuple[str, str]] = []
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                items.append(item)
            elif isinstance(item, dict):
                items.append(_pair(item, f"inputs[{i}]"))
            elif isinstance(item, list) and len(item) == 1 and isinstance(item[0], list) and len(item[0]) == 2:
                items.append(_pair({"text": item[0][0], "text_pair": item[0][1]}, f"inputs[{i}]"))  # legacy form
            elif isinstance(item, (list, tuple)):
                raise ValueError(f"inputs[{i}] is a {type(item).__name__}: to send a text pair, send a dict "
                                 '{"text": "My text", "text_pair": "My pair"} (as transformers asks)')
            else:
                raise TypeError(f"inputs[{i}] is a {type(item).__name__}, not a str: every input must be text")
        return items, None

    # -- the stages ----------------------------------------------------------------------------
    def encode(self, texts: list, max_length: int | None = None, strategy: str = "longest_first",
               **options: Any) -> list[Encoding]:
        """Encodings of texts or (text, pair) tuples, truncated to the model's limit (or a shorter max_length);
        ``options`` (stride, pretokenized) go to :meth:`TextEncoder.encode`."""
        try:
            encodings = self.encoder.encode(texts, max_length, strategy, **options)
        except TypeError:  # tokenizers' only word on a str it cannot take: "TextInputSequence must be str"
            raise_on_invalid_unicode(texts)
            raise
        for i, e in enumerate(encodings):
            if len(e) == 0:  # only a tokenizer without special tokens can do this, on an empty text
                raise ValueError(f"inputs[{i}] encodes to no tokens at all; pass non-empty text")
        return encodings

    def preprocess(self, items: list[Any], **params: Any) -> list[Feature]:
        """One feature per input, by default; tasks that need several per input override this."""
        return [Feature(e, i, len(e)) for i, e in enumerate(self.encode(items, **params))]

    def _forward(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.session.run(feed)

    def sanitize_parameters(self, **params: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(preprocess parameters, postprocess parameters) from a call's keyword arguments."""
        raise NotImplementedError

    def postprocess(self, features: list[Feature], outputs: dict[str, np.ndarray], **params: Any) -> list[Any]:
        """One value per feature of the batch, from the graph's outputs (rows in the features' order)."""
        raise NotImplementedError

    def aggregate(self, item: Any, values: list[Any], **params: Any) -> Any:
        """One input's result from its features' values; one feature, one result by default."""
        return values[0]

    def finish(self, results: list[Any], single: str | None, params: dict[str, Any]) -> Any:
        return results[0] if single else results

    def explain_lines(self, features: list[Feature], outputs: dict[str, np.ndarray], params: dict[str, Any]
                      ) -> list[str]:
        """What ``explain`` shows of the postprocess decision beyond the result (each task its own)."""
        return []

    def describe_postprocess(self, params: dict[str, Any]) -> str:
        """One line for ``explain``: the postprocess parameters in force."""
        return ", ".join(f"{k}={v!r}" for k, v in params.items() if not isinstance(v, (list, np.ndarray)) or len(v) < 9)


INPUT_ERRORS = (ValueError, TypeError, KeyError)


def call_each(pipe: Pipeline, inputs: list[str], **params: Any) -> list[Any]:
    """One result per input, or the input error (ValueError, TypeError, or transformers' KeyError for a
    question-answering dict without its keys) that input alone raises: the list is
    batched as usual, and only when the batch is refused are its inputs run one by one, so a bad
    input costs its own answer and never the others'."""
    if not inputs:
        return []
    try:
        return pipe.results(list(inputs), **params)
    except INPUT_ERRORS:
        pass
    results: list[Any] = []
    for text in inputs:
        try:
            results.append(pipe.results([text], **params)[0])
        except INPUT_ERRORS as e:
            results.append(e)
    return results
