"""``onnxpipe explain``: the four stages of one call, shown with their data and their time, for any task."""

from __future__ import annotations

import json
import time
from typing import Any, TextIO

import numpy as np

from .errors import InputValueError
from .batching import gather
from .pipeline import Pipeline, Plan

SHOWN_FEATURES = 8  # zero-shot makes one feature per label; show the first few


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
    `onnxpipe explain` prints and the serve page draws. The graph runs are the pipeline's own."""
    if not plan.items:
        raise InputValueError("inputs is empty: give one input to explain")
    t0 = time.perf_counter()
    pipe.featurize(plan)
    t1 = time.perf_counter()
    runs = list(pipe.runs(plan.features, plan.batch_size))
    t2 = time.perf_counter()
    outputs = gather(runs, len(plan.features))  # one row per feature, in feature order
    values = pipe.postprocess(plan.features, outputs, **plan.post)
    result = pipe.complete(plan, values)
    t3 = time.perf_counter()
    # (features, padded width) of each graph run
    shape = [(len(idx), max(plan.features[i].length for i in idx)) for idx, _ in runs]
    return {
        "features": plan.features,
        "runs": shape,
        "outputs": outputs,
        "post": plan.post,
        "result": result,
        "ms": {"preprocess": (t1 - t0) * 1e3, "forward": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3},
    }


def explain(
    pipe: Pipeline[Any, Any, Any], inputs: Any, load_seconds: float, out: TextIO | None = None, **params: Any
) -> Any:
    import sys

    out = out or sys.stdout

    def say(*lines: str) -> None:
        print(*lines, sep="\n", file=out)

    a = pipe.artifact
    size_mb = pipe.model_path.stat().st_size / 1e6
    say(
        f"1. load        {load_seconds * 1e3:8.1f} ms   {a.path}",
        f"                              task {pipe.task}, variant {pipe.variant}: {pipe.model_path.name} "
        f"({size_mb:.1f} MB), {pipe.session.threads} threads; tokenizer.json, max {a.max_length} tokens",
        f"                              why {pipe.variant}: {pipe.choice.reason}",
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
        small = value.ndim == 2 and value.shape[-1] <= 16  # classifier logits: worth reading
        say(
            f"                              {name} {tuple(value.shape)}"
            + (f" {_fmt(value[:SHOWN_FEATURES])}" if small else "")
        )

    post, result = run["post"], run["result"]
    say(f"4. postprocess {ms['postprocess']:8.2f} ms   {pipe.describe_postprocess(post)}")
    for line in pipe.explain_lines(features, outputs, post):
        say("                              " + line)
    say("", json.dumps(jsonable(result), ensure_ascii=False))
    return result
