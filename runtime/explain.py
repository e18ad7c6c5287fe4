"""``onnxpipe explain``: the four stages of one call, shown with their data and their time, for any task."""

from __future__ import annotations

import json
import time
from typing import Any, TextIO

import numpy as np

from .artifact import graph_size
from .errors import InputValueError
from .executor import streams_of
from .graph_nodes import node_counts
from .arrays import Outputs
from .pipeline import Pipeline, Plan

SHOWN_FEATURES = 8  # zero-shot makes one feature per label; show the first few
READABLE_WIDTH = 16  # outputs with at most this many values a row (classifier logits) are shown, not only shaped


def readable(value: np.ndarray) -> bool:
    return value.ndim == 2 and value.shape[-1] <= READABLE_WIDTH


def _fmt(values: Any) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in np.asarray(values).ravel()) + "]"


def jsonable(result: Any) -> Any:
    """Results as JSON values: numpy arrays (embeddings, feature tensors) become lists."""
    if isinstance(result, np.ndarray):
        return result.tolist()
    if isinstance(result, list):
        return [jsonable(r) for r in result]
    if isinstance(result, dict):
        return {k: jsonable(v) for k, v in result.items()}
    return result


def stages(pipe: Pipeline[Any, Any, Any], plan: Plan[Any]) -> dict[str, Any]:
    """One call's stages (``plan`` as :meth:`Pipeline.read` gave it), their data and their times: what
    `onnxpipe explain` prints and the serve page draws. The call runs as every call does
    (:meth:`Pipeline.execute`); explain only watches its graph runs."""
    if not plan.items:
        raise InputValueError("inputs is empty: give one input to explain")
    t0 = time.perf_counter()
    pipe.featurize(plan)
    t1 = time.perf_counter()
    runs: list[tuple[list[int], Outputs]] = []
    seconds: list[float] = []

    def observe(idx: list[int], outputs: Outputs, run_s: float) -> None:
        runs.append((idx, outputs))
        seconds.append(run_s)

    values = pipe.execute(plan, observe=observe)
    result = pipe.complete(plan, values)
    t2 = time.perf_counter()
    forward = sum(seconds)  # the graph runs alone; the rest of execute and complete is postprocess
    # (features, padded width) of each graph run
    shape = [(len(idx), max(plan.features[i].length for i in idx)) for idx, _ in runs]
    return {
        "features": plan.features,
        "runs": shape,
        "outputs": shown(runs, len(plan.features)),
        "post": plan.post,
        "result": result,
        "ms": {"preprocess": (t1 - t0) * 1e3, "forward": forward * 1e3, "postprocess": (t2 - t1 - forward) * 1e3},
    }


def shown(runs: list[tuple[list[int], Outputs]], count: int) -> Outputs:
    """The graph runs' outputs as one array per output, a row per feature in feature order, for display only
    (the answer never goes through this): rows of runs of different widths are zero-padded to the widest."""
    where = {i: (outputs, r) for idx, outputs in runs for r, i in enumerate(idx)}
    rows = [where[i] for i in range(count)]
    out: Outputs = {}
    for name in rows[0][0]:
        arrays = [o[name][r] for o, r in rows]
        width = max(a.shape[0] for a in arrays)
        out[name] = np.stack([np.pad(a, [(0, width - a.shape[0])] + [(0, 0)] * (a.ndim - 1)) for a in arrays])
    return out


def page_data(pipe: Pipeline[Any, Any, Any], plan: Plan[Any]) -> dict[str, Any]:
    """One call's four stages as JSON (:func:`stages`' data): what the serve explain page draws."""
    run = stages(pipe, plan)
    features, outputs = run["features"], run["outputs"]
    return {
        "task": pipe.task,
        "variant": pipe.variant,
        "features": [
            {"tokens": f.encoding.tokens[: f.length], "ids": f.encoding.ids[: f.length]}
            for f in features[:SHOWN_FEATURES]
        ],
        "outputs": {n: list(o.shape) for n, o in outputs.items()},
        "logits": {n: o.tolist() for n, o in outputs.items() if readable(o)},
        "decision": pipe.explain_lines(features, outputs, run["post"]),
        "result": jsonable(run["result"]),
        "ms": run["ms"],
    }


def explain(
    pipe: Pipeline[Any, Any, Any], inputs: Any, load_seconds: float, out: TextIO | None = None, **params: Any
) -> Any:
    import sys

    out = out or sys.stdout

    def say(*lines: str) -> None:
        print(*lines, sep="\n", file=out)

    a = pipe.artifact
    size_mb = graph_size(pipe.model_path) / 1e6  # with its weights file
    nodes, in_float = node_counts(pipe.model_path)  # what batch 1 pays per node; an int8 graph's float fallbacks
    say(
        f"1. load        {load_seconds * 1e3:8.1f} ms   {a.path}",
        f"                              task {pipe.task}, variant {pipe.variant}: {pipe.model_path.name} "
        f"({size_mb:.1f} MB), {pipe.session.threads} threads{_streams(pipe)}; tokenizer.json, max {a.max_length} tokens",
        f"                              why {pipe.variant}: {pipe.choice.reason}",
        f"                              graph: {nodes} nodes, {in_float} weight products "
        "(MatMul, Gemm, Attention) left in float",
        *(
            ["                              last layer: row 0 only (the head reads no other; cut at export)"]
            if a.variants[pipe.variant].get("last_layer", {}).get("applied")
            else []
        ),
    )

    run = stages(pipe, pipe.read(inputs, **params))
    features, outputs, ms = run["features"], run["outputs"], run["ms"]
    runs = ", ".join(f"{n} x {width}" for n, width in run["runs"])
    say(
        f"2. preprocess  {ms['preprocess']:8.2f} ms   input  {json.dumps(inputs, ensure_ascii=False)}",
        f"                              {len(features)} feature(s) in {len(run['runs'])} graph run(s) "
        f"(features x padded tokens: {runs})",
    )
    for f in features[:SHOWN_FEATURES]:
        say(
            f"                              tokens {f.encoding.tokens[: f.length]}",
            f"                              ids    {f.encoding.ids[: f.length]}",
        )

    say(f"3. forward     {ms['forward']:8.2f} ms   feed   {', '.join(pipe.session.input_names)} (int64)")
    for name, value in outputs.items():
        say(
            f"                              {name} {tuple(value.shape)}"
            + (f" {_fmt(value[:SHOWN_FEATURES])}" if readable(value) else "")
        )

    post, result = run["post"], run["result"]
    say(f"4. postprocess {ms['postprocess']:8.2f} ms   {pipe.describe_postprocess(post)}")
    for line in pipe.explain_lines(features, outputs, post):
        say("                              " + line)
    say("", json.dumps(jsonable(result), ensure_ascii=False))
    return result


def _streams(pipe: Any) -> str:
    streams = streams_of(pipe.session)
    return f" (a list's runs: {streams} at a time, 1 thread each)" if streams > 1 else ""
