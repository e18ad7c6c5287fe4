"""``onnxpipe bench --task token-classification | question-answering``: the transformers pipeline on
PyTorch against onnxpipe's variants on the same checkpoint, each in a process of its own, turns interleaved.

No NER or QA model can be fetched here, so by default the checkpoint is the packaged all-MiniLM-L6-v2
encoder (real weights, real size) with a task head initialised at random (seeded): right for speed and
for span agreement with PyTorch, meaningless for accuracy on a dataset. Pass a fine-tuned checkpoint
folder to measure a real one. Figures: batch-1 p50 over the length mix, dev-set throughput, and the share
of inputs whose spans (entities: label, start, end; answers: start, end) equal PyTorch's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from . import machine
from onnxpipe.artifact import graph_size

from .contenders import Contender, Runner, Spec

REFERENCE = "transformers pipeline (pytorch fp32)"
QUESTION = "What is this about?"
NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def spans(task: str, results: list[Any]) -> np.ndarray:
    """Each input's result without scores, as JSON-ready lists: what agreement compares."""
    rows: list[Any]
    if task == "token-classification":
        rows = [[[e["entity_group"], int(e["start"]), int(e["end"])] for e in r] for r in results]
    else:
        rows = [[int(r["start"]), int(r["end"])] for r in results]
    out = np.empty(len(rows), dtype=object)
    out[:] = rows
    return out


def call(task: str, pipe, texts: list[str], **kw):
    if task == "token-classification":
        return pipe(texts, aggregation_strategy="simple", **kw)
    # QA: each text is the context of one fixed question; a list of one is answered as a dict by both.
    out = (
        pipe(question=[QUESTION] * len(texts), context=texts, **kw)
        if len(texts) > 1
        else [pipe(question=QUESTION, context=texts[0], **kw)]
    )
    return out


def load_transformers(spec: Spec) -> Runner:
    import torch
    from transformers import pipeline

    torch.set_num_threads(spec.threads)
    task = spec.task
    pipe = pipeline(task, model=str(spec.checkpoint), device="cpu")  # type: ignore[call-overload]  # task: one of two, not a Literal
    return Runner(
        call_one=lambda t: call(task, pipe, [t]),
        predict=lambda texts, bs: spans(task, call(task, pipe, texts, batch_size=bs)),
        size_bytes=sum(p.stat().st_size for p in spec.checkpoint.glob("*.safetensors")),
    )


def onnxpipe_spans(variant: str):
    def load(spec: Spec) -> Runner:
        import onnxpipe

        task = spec.task
        pipe = onnxpipe.pipeline(task, model=spec.artifact, variant=variant, threads=spec.threads)
        return Runner(
            call_one=lambda t: call(task, pipe, [t]),
            predict=lambda texts, bs: spans(task, call(task, pipe, texts, batch_size=bs)),
            size_bytes=graph_size(pipe.model_path),
            note=variant,
        )

    return load


LEAN = ("onnxruntime", "tokenizers", "numpy")
CONTENDERS = [
    Contender(REFERENCE, "pytorch", ("torch", "transformers"), load_transformers),
    Contender("onnxpipe fp32", "onnxpipe", LEAN, onnxpipe_spans("fp32")),
    Contender("onnxpipe optimized", "onnxpipe", LEAN, onnxpipe_spans("optimized")),
    Contender("onnxpipe int8", "onnxpipe", LEAN, onnxpipe_spans("int8")),
]
BY_NAME = {c.name: c for c in CONTENDERS}


def build_checkpoint(task: str, folder: Path) -> Path:
    """all-MiniLM-L6-v2's encoder with a seeded random ``task`` head (speed and agreement only)."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoModelForTokenClassification, AutoTokenizer

    from onnxpipe.export.default_model.base import base_model_dir

    base = base_model_dir()
    torch.manual_seed(0)
    if task == "token-classification":
        model = AutoModelForTokenClassification.from_pretrained(
            base,
            num_labels=len(NER_LABELS),
            id2label=dict(enumerate(NER_LABELS)),
            label2id={v: i for i, v in enumerate(NER_LABELS)},
        )
    else:
        model = AutoModelForQuestionAnswering.from_pretrained(base)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


def resolve(task: str, target: str | Path | None, out_dir: Path, threads: int, log) -> Spec:
    from onnxpipe.artifact import MANIFEST
    from onnxpipe.export import export

    checkpoint = Path(target) if target else out_dir / f"minilm-random-{task}"
    if target is None and not (checkpoint / "config.json").is_file():
        log(f"building {checkpoint}: the packaged MiniLM encoder with a random {task} head (speed only)")
        build_checkpoint(task, checkpoint)
    artifact = out_dir / f"artifact-{task}"
    if not (artifact / MANIFEST).is_file():
        export(checkpoint, artifact, task, optimize=True, quantize="int8", log=log, overwrite=True)
    return Spec(
        artifact=artifact,
        checkpoint=checkpoint,
        id2label={},
        max_length=0,
        threads=threads,
        best_variant="int8",
        calibration=None,
        task=task,
    )


def run(task: str, spec: Spec, texts: list[str], settings, progress: bool = True) -> dict[str, Any]:
    from .harness import measure_task

    rows = measure_task(CONTENDERS, spec, texts, settings, task, REFERENCE, progress)
    reference = rows[REFERENCE]["probs"]
    for row in rows.values():
        got = row.pop("probs", None)
        if got is not None:
            row["span_agreement"] = {
                b: float(np.mean([np.array_equal(a, r) for a, r in zip(got[b], reference[b])])) for b in got
            }
    return {
        "task": task,
        "machine": machine.describe(),
        "threads": spec.threads,
        "n_texts": len(texts),
        "checkpoint": str(spec.checkpoint),
        "isolation": "process",
        "settings": settings.__dict__,
        "contenders": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    rows = result["contenders"]
    ref = rows[REFERENCE]
    sizes = sorted(ref["throughput"], key=int)
    big = sizes[-1]
    lines = [
        f"{result['task']}, {result['n_texts']} SST-2 dev sentences"
        + (f" (each the context of {QUESTION!r})" if result["task"] == "question-answering" else "")
        + f", {result['threads']} threads, each contender in its own process; checkpoint "
        f"{Path(result['checkpoint']).name}",
        "",
        "| contender | b1 p50 ms (sentence) | × PyTorch b1 | "
        + " | ".join(f"texts/s @{b}" for b in sizes)
        + f" | × PyTorch @{big} | spans = PyTorch's @{big} |",
        "|---|---|---|" + "---|" * len(sizes) + "---|---|",
    ]
    for name, r in rows.items():
        if r["status"] != "ok":
            lines.append(f"| {name} | {r['status']}: {r.get('reason', '')} |")
            continue
        p50 = r["latency"]["sentence"]["p50_ms"]
        lines.append(
            f"| {name} | {p50:.2f} | {ref['latency']['sentence']['p50_ms'] / p50:.2f}× | "
            + " | ".join(f"{r['throughput'][b]:.0f}" for b in sizes)
            + f" | {r['throughput'][big] / ref['throughput'][big]:.2f}× | {r['span_agreement'][big]:.2%} |"
        )
    return "\n".join(lines)


def write_all(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    name = result["task"]
    paths = {"json": out_dir / f"{name}.json", "markdown": out_dir / f"{name}.md"}
    paths["json"].write_text(json.dumps(result, indent=1, default=float) + "\n")
    paths["markdown"].write_text(markdown(result) + "\n")
    return paths
