"""The pipeline: load once, then per call read → featurize → execute → complete, batched by length.

Every entry point (a Python call, ``results()``, the server, ``run``, ``score``, ``explain``) drives a call
through the same public steps: :meth:`Pipeline.read` parses the call as transformers' argument handlers
do and validates its parameters; :meth:`Pipeline.featurize` tokenizes it into *features* (zero-shot makes
one per candidate label, span tasks one per window); :meth:`Pipeline.execute` runs the features in graph
runs cut by the one batching policy (:mod:`.batching`) and postprocesses each run; :meth:`Pipeline.complete`
builds each input's result from its own features' values (the task's aggregate, as transformers'
``ChunkPipeline`` does) and gives the call the shape transformers gives it. Task classes (``tasks/``)
supply the stages; the server's batcher only decides which requests share a graph run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar, cast
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

import numpy as np
from tokenizers import Encoding

from .arrays import Outputs
from .artifact import Artifact
from .executor import Feature as Feature  # the tasks' stages take features: importable from here too
from .executor import Observer, Work, execute, streams_of
from .inputs import AT_LIMIT, INPUT_ERRORS, Post, Pre, Truncation, check_batch_size, check_keywords
from .inputs import check_texts_or_pairs, is_stream, raise_on_invalid_unicode
from .errors import InputTypeError, InputValueError, OnnxPipeError
from . import tune
from .session import Engine, Session, check_threads, default_threads
from .tokenize import ENCODER_OUTPUTS, NO_PAD_TOKEN, TextEncoder

DEFAULT_BATCH_SIZE = 32

# The task contract: each task is a Pipeline[Item, Value, Result] and its stages must agree with it, which
# the type checker holds them to. Item: one input as check_inputs gives it (a text, a (text, pair), a
# (question, context), a list of words); Value: what postprocess makes of one feature; Result: what
# aggregate makes of one input's values. Parameters (top_k, ...): each task's keywords, which its sanitize_parameters
# turns into its own frozen Pre and Post dataclasses (inputs.py); typed Any here, so each task's stages name its own.
ItemT = TypeVar("ItemT")
ValueT = TypeVar("ValueT")
ResultT = TypeVar("ResultT")


@dataclass
class Plan(Generic[ItemT]):
    """One call, parsed and validated (:meth:`Pipeline.read`) and tokenized (:meth:`Pipeline.featurize`)."""

    items: list[ItemT]  # the inputs, one per result
    shape: str | None  # how the call was shaped: "str" / "dict" for one input, None for a list
    pre: Pre  # preprocess parameters (the task's own subclass)
    post: Post  # postprocess and aggregate parameters (the task's own subclass)
    params: dict[str, Any]  # the call's own keyword parameters (some answer shapes depend on what was named)
    batch_size: int | None = None
    features: list[Feature] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(f.length for f in self.features)


class Pipeline(Generic[ItemT, ValueT, ResultT]):
    """Base of every task pipeline; subclasses set ``task`` and implement the stages."""

    task: str = ""
    result_key = "result"  # `onnxpipe run`'s JSON key for a result that is not a dict

    def __init__(
        self,
        artifact: Artifact,
        variant: str | None = None,
        threads: int | None = None,
        batch_size: int | None = None,
        verify: bool = True,
        engine: Engine | None = None,
        **defaults: Any,
    ):
        self.artifact = artifact
        threads = check_threads(threads)
        if variant is not None:
            self.choice = tune.named(artifact, variant)
        elif engine is not None:  # the caller loaded a graph (the server chooses first, then sets .choice)
            self.choice = tune.Choice(artifact.default_variant, "the artifact's default (engine given)")
        else:
            self.choice = tune.choose(artifact, threads or default_threads())
        self.variant = self.choice.variant
        model_file = artifact.variant_file(self.variant)
        files = [*artifact.graph_files(model_file), "tokenizer.json"]
        artifact.verify(*files) if verify else artifact.require(*files)
        # Without a pad token, inputs run one at a time (transformers' default batch_size), and a larger
        # batch_size is refused with transformers' words.
        default = DEFAULT_BATCH_SIZE if artifact.pad_id is not None else 1
        self.batch_size = default if batch_size is None else self.check_batch(batch_size)
        self.encoder = TextEncoder(
            artifact.path / "tokenizer.json", artifact.max_length, artifact.pad_id, artifact.pad_token
        )
        self.sanitize_parameters(**defaults)  # refuse bad defaults now, not at the first call
        self.defaults = defaults  # parameters given to pipeline(...): every call's, unless it overrides them
        self.session = engine if engine is not None else Session(model_file, threads)
        unknown = [n for n in self.session.input_names if n not in ENCODER_OUTPUTS]
        if unknown:
            raise OnnxPipeError(
                f"{model_file} takes inputs {unknown} that the tokenizer does not produce "
                f"(it produces {', '.join(ENCODER_OUTPUTS)}): not a supported encoder graph"
            )

    @property
    def token_limit(self) -> int:
        """The most tokens an input runs with: the model's position limit, or the task's own lower one."""
        return self.encoder.max_length

    @property
    def model_path(self) -> Path:
        return self.artifact.variant_file(self.variant)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={str(self.artifact.path)!r}, variant={self.variant!r})"

    # -- one call, in three public steps, whatever the entry point -----------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        inputs, params = self.parse(args, dict(kwargs))
        if is_stream(inputs):  # a generator: results as they are ready, as transformers does
            return self._iterate(inputs, params.pop("batch_size", None), params)
        plan = self.featurize(self.check(inputs, params))
        return self.complete(plan, self.execute(plan))

    def plan(self, *args: Any, **kwargs: Any) -> Plan[ItemT]:
        """A call's arguments → its plan: parsed, validated and tokenized (:meth:`read` then :meth:`featurize`)."""
        return self.featurize(self.read(*args, **kwargs))

    def read(self, *args: Any, **kwargs: Any) -> Plan[ItemT]:
        """A call's arguments parsed and validated, as transformers' argument handlers and
        ``_sanitize_parameters`` read them, before any tokenizing (the server counts inputs here)."""
        inputs, params = self.parse(args, dict(kwargs))
        if is_stream(inputs):
            raise InputTypeError("a generator or other iterator is answered by calling the pipeline itself; pass a list")  # fmt: skip
        return self.check(inputs, params)

    def check(self, inputs: Any, params: dict[str, Any]) -> Plan[ItemT]:
        """Parsed inputs and parameters validated: the plan, not yet tokenized."""
        batch_size = params.pop("batch_size", None)
        if batch_size is not None:
            self.check_batch(batch_size)
        items, shape = self.check_inputs(inputs)
        check_keywords(type(self).sanitize_parameters, params)
        pre, post = self.sanitize_parameters(**{**self.defaults, **params})
        return Plan(items, shape, pre, post, params, batch_size)

    def featurize(self, plan: Plan[ItemT]) -> Plan[ItemT]:
        """The plan's features (one or more encodings per input); the tokenizer's work, done once."""
        plan.features = self.preprocess(plan.items, plan.pre) if plan.items else []
        return plan

    def execute(
        self, plan: Plan[ItemT], batch_size: int | None = None, observe: Observer | None = None
    ) -> list[ValueT]:
        """The graph runs of a plan and their postprocess (:func:`executor.execute`): one value per feature, in
        feature order. ``observe`` sees each graph run's feature indices and outputs (``explain``)."""
        size = batch_size or plan.batch_size
        size = self.batch_size if size is None else self.check_batch(size)
        values: list[ValueT] = execute(self.session, self.encoder, [self.work(plan)], size, observe)[0]
        return values

    def work(
        self,
        plan: Plan[ItemT],
        answer: Callable[[list[Any]], None] | None = None,
        fail: Callable[[BaseException], None] | None = None,
    ) -> Work:
        """A plan as the executor takes it: its features, postprocessed with its own parameters."""
        post = plan.post
        return Work(plan.features, lambda features, outputs: self.postprocess(features, outputs, post), answer, fail)

    def complete(self, plan: Plan[ItemT], values: list[ValueT]) -> Any:
        """The call's answer from its features' values: each input's result (the task's aggregate), in the
        shape transformers gives for that call."""
        return self.finish(self.assemble(plan, values), plan.shape, plan.params)

    def results(self, inputs: list[Any], batch_size: int | None = None, **params: Any) -> list[ResultT]:
        """One result per input of the list, without the call-shape rules a call applies for
        transformers' sake (fill-mask unwraps a list of one; embeddings stack into one array)."""
        if not isinstance(inputs, (list, tuple)):
            raise InputTypeError(f"inputs must be a list, got {type(inputs).__name__}")
        plan = self.plan(list(inputs), batch_size=batch_size, **params)
        return self.assemble(plan, self.execute(plan))

    def parse(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The call's positional and keyword arguments → (inputs, parameters); tasks whose transformers
        pipeline reads more call forms (zero-shot's labels, question answering's argument handler) override it."""
        if len(args) > 1:
            raise InputValueError(f"Unable to understand extra arguments {args[1:]!r}: pass parameters by name")
        if args:
            return args[0], kwargs
        if "inputs" in kwargs:
            return kwargs.pop("inputs"), kwargs
        raise InputTypeError(f"{type(self).__name__} needs its inputs: pipe(inputs, **parameters)")

    def assemble(self, plan: Plan[ItemT], values: list[ValueT]) -> list[ResultT]:
        """Each input's result from its own features' values (in feature order), by the task's aggregate."""
        grouped: list[list[ValueT]] = [[] for _ in plan.items]
        for feature, value in zip(plan.features, values):
            grouped[feature.owner].append(value)
        return [self.aggregate(item, own, plan.post) for item, own in zip(plan.items, grouped)]

    def check_batch(self, batch_size: Any) -> int:
        size = check_batch_size(batch_size)
        if size > 1 and self.artifact.pad_id is None:
            raise InputValueError(NO_PAD_TOKEN)
        return size

    def _iterate(self, inputs: Iterable[Any], batch_size: int | None, params: dict[str, Any]) -> Iterator[ResultT]:
        size = self.batch_size if batch_size is None else self.check_batch(batch_size)
        take = size * streams_of(self.session)  # a batch per stream: they run side by side here too
        items = iter(inputs)
        while chunk := list(islice(items, take)):
            yield from self.results(chunk, size, **params)

    # -- the stages ----------------------------------------------------------------------------
    def encode(self, texts: list[Any], truncation: Truncation = AT_LIMIT, **options: Any) -> list[Encoding]:
        """Encodings of texts or (text, pair) tuples, truncated to the model's limit (or a shorter max_length)
        as ``truncation`` says; ``options`` (stride, pretokenized) go to :meth:`TextEncoder.encode`."""
        try:
            encodings = self.encoder.encode(texts, **truncation.options(), **options)
        except TypeError:  # tokenizers' only word on a str it cannot take: "TextInputSequence must be str"
            raise_on_invalid_unicode(texts)
            raise
        except BaseException as panic:  # a Rust panic (pyo3's PanicException is no Exception): name the cause
            if type(panic).__name__ != "PanicException" or "stride" not in str(panic):
                raise
            # transformers crashes with the same panic; the window has no room left beside the fixed part
            raise InputValueError(
                f"stride={options.get('stride')} leaves the windows no room beside the special tokens "
                "(and, for a pair, the part that is not cut): lower the stride or raise the length "
                f"(tokenizers: {str(panic).split(' (note')[0]})"
            ) from None
        for i, e in enumerate(encodings):
            if len(e) == 0:  # only a tokenizer without special tokens can do this, on an empty text
                raise InputValueError(f"inputs[{i}] encodes to no tokens at all; pass non-empty text")
        return encodings

    def check_inputs(self, inputs: Any) -> tuple[list[ItemT], str | None]:
        """The call's inputs → (items, shape): text or text pairs by default (:func:`check_texts_or_pairs`);
        tasks that take other inputs override it."""
        items, shape = check_texts_or_pairs(inputs)
        return cast("list[ItemT]", items), shape

    def preprocess(self, items: list[ItemT], pre: Any) -> list[Feature]:
        """One feature per input, cut as ``pre.truncation`` says; tasks with other features or parameters override it."""
        return [Feature(e, i, len(e)) for i, e in enumerate(self.encode(items, pre.truncation))]

    def sanitize_parameters(self, *args: Any, **params: Any) -> tuple[Pre, Post]:
        """A call's keyword arguments (transformers' names) → the task's typed (preprocess, postprocess)
        parameters, each checked; its signature is the set of keywords a call may name."""
        raise NotImplementedError

    def postprocess(self, features: list[Feature], outputs: Outputs, post: Any) -> list[ValueT]:
        """One value per feature of the batch, from the graph's outputs (rows in the features' order)."""
        raise NotImplementedError

    def aggregate(self, item: ItemT, values: list[ValueT], post: Any) -> ResultT:
        """One input's result from its features' values; one feature, one result by default."""
        return cast(ResultT, values[0])  # (tasks that keep this default have one type for Value and Result)

    def finish(self, results: list[ResultT], single: str | None, params: dict[str, Any]) -> Any:
        return results[0] if single else results

    def explain_lines(self, features: list[Feature], outputs: Outputs, post: Any) -> list[str]:
        """What ``explain`` shows of the postprocess decision beyond the result (each task its own)."""
        return []

    def describe_postprocess(self, post: Any) -> str:
        """One line for ``explain``: the postprocess parameters in force (long sequences left out)."""
        values = ((f.name, getattr(post, f.name)) for f in dataclasses.fields(post))
        return ", ".join(f"{k}={v!r}" for k, v in values if not isinstance(v, (list, tuple, np.ndarray)) or len(v) < 9)


def call_each(pipe: Pipeline[Any, Any, Any], inputs: list[Any], **params: Any) -> list[Any]:
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
