"""``onnxpipe explain``: the four stages of one call, shown with their data and their time."""

from __future__ import annotations

import json
import time
from typing import TextIO

import numpy as np

from .pipeline import Pipeline


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in np.asarray(values).ravel()) + "]"


def explain(pipe: Pipeline, text: str, load_seconds: float, out: TextIO | None = None) -> list[dict]:
    import sys

    out = out or sys.stdout
    say = lambda *lines: print(*lines, sep="\n", file=out)  # noqa: E731
    a = pipe.artifact
    size_mb = pipe.model_path.stat().st_size / 1e6
    say(f"1. load        {load_seconds * 1e3:8.1f} ms   {a.path}",
        f"                              variant {pipe.variant}: {pipe.model_path.name} ({size_mb:.1f} MB), "
        f"{pipe.session.threads} threads; tokenizer.json, max {a.max_length} tokens")

    t = time.perf_counter()
    pipe.check_inputs(text)
    encodings = pipe.preprocess([text])
    feed = pipe.encoder.collate(encodings)
    t_pre = time.perf_counter() - t
    say(f"2. preprocess  {t_pre * 1e3:8.2f} ms   text   {text!r}",
        f"                              tokens {encodings[0].tokens}",
        f"                              ids    {encodings[0].ids}")

    t = time.perf_counter()
    outputs = pipe._forward(feed)
    t_fwd = time.perf_counter() - t
    shapes = ", ".join(f"{n} {tuple(feed[n].shape)}" for n in pipe.session.input_names)
    say(f"3. forward     {t_fwd * 1e3:8.2f} ms   feed   {shapes}",
        f"                              logits {_fmt(outputs['logits'])}")

    t = time.perf_counter()
    params = pipe.sanitize_parameters(top_k=None)[1]
    ranked = pipe.postprocess(outputs, **params)[0]
    result = pipe.postprocess(outputs, **pipe.sanitize_parameters()[1])
    t_post = time.perf_counter() - t
    probs = ", ".join(f"{d['label']} {d['score']:.4f}" for d in ranked)
    say(f"4. postprocess {t_post * 1e3:8.2f} ms   {params['function']:<6} {probs}",
        f"                              label  {result[0]['label']}",
        "", json.dumps(result, ensure_ascii=False))
    return result
