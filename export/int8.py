"""The quantize stage: the float graph → ``model_quantized.onnx`` by :mod:`.quantize`'s recipes, calibrated on
fixed texts, and, with an accuracy budget, nodes kept in float until the int8 graph holds it (:mod:`.budget`,
measured on training data with the calibration texts left out). Returns the recipe the manifest records."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from onnxpipe.errors import InputTypeError, InputValueError
from onnxpipe.tasks import TaskSpec
from onnxpipe.tokenize import TextEncoder

from . import budget
from .errors import Log
from .quantize import CALIBRATION_TEXTS, Int8Options, canonical_mode, quantizable_nodes, quantize_graph, read_texts
from .validate import graph_logits
from .variants import FILES


def int8_options(quantize: str | Int8Options | None, spec: TaskSpec) -> Int8Options | None:
    """``export``'s quantize argument (a mode name or Int8Options) checked against the task, mode canonical."""
    if quantize is None:
        return None
    if isinstance(quantize, str):
        quantize = Int8Options(mode=quantize)
    if not isinstance(quantize, Int8Options):
        raise InputTypeError(f"quantize must be a mode name, Int8Options or None, got {type(quantize).__name__}")
    quantize = dataclasses.replace(quantize, mode=canonical_mode(quantize.mode))
    if quantize.max_drop is not None and quantize.eval_data is None:
        raise InputValueError("an accuracy budget (max_drop, --max-drop) needs data to measure it on (--eval DATA)")
    if quantize.max_drop is not None and spec.head.budget_metric is None:
        raise InputValueError(
            f"an accuracy budget (--max-drop) is measured on labels or sentence vectors; {spec.name} "
            "has neither yet: quantize without it and read the agreement the manifest records"
        )
    return quantize


def build_int8(
    folder: Path, base: str, encoder: TextEncoder, opts: Int8Options, log: Log, pooling: list[str] | None = None
) -> dict | None:
    """Quantize the ``base`` graph; with a budget, keep nodes in float until it holds (None: nothing did).
    ``pooling`` (sentence embeddings) measures the budget as cosine to fp32's pooled vectors."""
    src, dst = folder / FILES[base], folder / FILES["int8"]
    texts, _, calibration = read_texts(opts.calibration, "train")
    texts = texts[:CALIBRATION_TEXTS]
    calibration = f"{calibration} ({len(texts)} texts)"
    recipes: list[dict] = []
    # One unpadded feed per text, so padding never enters a range; encoded once for every build.
    feeds = [encoder.collate([e]) for e in encoder.encode(texts)]

    def build(excluded: list[str]) -> Path:
        recipes.append(
            quantize_graph(
                src,
                dst,
                opts.mode,
                feeds=feeds,
                calibration_name=calibration,
                method=opts.method,
                alpha=opts.alpha,
                exclude=[*opts.exclude, *excluded],
                isa=opts.isa,
                reduce_range=opts.reduce_range,
                rounding=opts.rounding,
                center=opts.center,
                asymmetric=opts.asymmetric,
                sequential=opts.sequential,
                residual=opts.residual,
                rotate=opts.rotate,
                damp=opts.damp,
                fixed=opts.fixed,
                word_table=opts.word_table,
            )
        )
        return dst

    log(
        f"quantizing the {base} graph: {opts.mode} int8"
        + (f", calibrated on {calibration}" if opts.mode == "static" else "")
    )
    if opts.max_drop is None:
        build([])
        return {**recipes[-1], **provenance(opts)}
    fitted = within_budget(folder, encoder, opts, texts, build, src, log, pooling)
    if fitted is None:
        dst.unlink(missing_ok=True)
        return None
    return {**recipes[-1], **provenance(opts), "budget": fitted}


def within_budget(
    folder: Path,
    encoder: TextEncoder,
    opts: Int8Options,
    calibrated: list[str],
    build: Callable[[list[str]], Path],
    src: Path,
    log: Log,
    pooling: list[str] | None,
) -> dict | None:
    """The budget's search (:func:`budget.fit`) on the evaluation texts the graph was not calibrated on, and what
    the manifest records of it; None when no graph holds it."""
    assert opts.max_drop is not None
    # A folder's train.tsv, as for calibration: recipes are chosen on training data, never on the dev split
    # that reports them. Texts that calibrated the graph are left out, so the budget is measured on unseen text.
    eval_texts, labels, eval_name = read_texts(opts.eval_data, "train")
    seen = set(calibrated)
    kept = [i for i, t in enumerate(eval_texts) if t not in seen]
    eval_texts, labels = [eval_texts[i] for i in kept], None if labels is None else [labels[i] for i in kept]
    log(f"measuring the int8 graph against fp32 on {eval_name} ({len(eval_texts)} texts)")
    reference = graph_logits(folder / FILES["fp32"], encoder, eval_texts, pooling=pooling)
    score = budget.scorer(reference, labels) if pooling is None else budget.cosine_scorer(reference)
    fitted = budget.fit(
        build,
        lambda path: score(graph_logits(path, encoder, eval_texts, pooling=pooling)),
        quantizable_nodes(src),
        opts.max_drop,
        log,
    )
    if fitted is None:
        log(
            f"no int8 graph holds the budget of {opts.max_drop:g} points on {eval_name}, even with all but one "
            "node kept in float: the artifact gets no int8 variant and its default stays in float"
        )
        return None
    _, measured, excluded = fitted
    return {
        "max_drop": opts.max_drop,
        "eval": f"{eval_name} ({len(eval_texts)} texts)",
        "measured": measured.figures(),
        "excluded_by_budget": excluded,
    }


def provenance(opts: Int8Options) -> dict:
    """Where the recipe was chosen, and whether it was the project's own choice (``auto``)."""
    return {**({"chosen_on": opts.chosen_on} if opts.chosen_on else {}), **({} if opts.auto else {"auto": False})}
