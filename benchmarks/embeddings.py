"""``onnxpipe bench --task sentence-embeddings``: sentence-transformers on PyTorch, fastembed and onnxpipe's
variants on the same all-MiniLM-L6-v2, each in a process of its own, turns interleaved.

Figures: batch-1 p50 over the length mix, dev-set throughput per batch size, cosine to
sentence-transformers (lowest and mean over the dev set), and whether each text's vector is the same
alone as in a batch. The timing loops and worker processes are the classification benchmark's own.
"""

from __future__ import annotations

from onnxpipe.artifact import graph_size
from onnxpipe.errors import InputValueError

import json
from pathlib import Path
from typing import Any

import numpy as np

from . import machine, stats
from .contenders import Contender, Runner, Spec

REFERENCE = "sentence-transformers (pytorch fp32)"
FASTEMBED_NAME = "onnxpipe-bench/all-minilm-l6-v2-local"


def load_sentence_transformers(spec: Spec) -> Runner:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(spec.threads)
    model = SentenceTransformer(str(spec.checkpoint), device="cpu")
    return Runner(
        call_one=lambda t: model.encode(t),
        predict=lambda texts, bs: model.encode(texts, batch_size=bs),
        size_bytes=sum(p.stat().st_size for p in spec.checkpoint.glob("*.safetensors")),
    )


def fastembed_model(artifact: Path, threads: int | None) -> Any:
    """fastembed's TextEmbedding pointed at the artifact's fp32 graph (its tokenizer.json and configs are beside
    it): there is no hub here to fetch fastembed's own copy from."""
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    TextEmbedding.add_custom_model(
        model=FASTEMBED_NAME,
        pooling=PoolingType.MEAN,
        normalization=True,
        sources=ModelSource(hf="sentence-transformers/all-MiniLM-L6-v2"),
        dim=384,
        model_file="model.onnx",
    )
    return TextEmbedding(FASTEMBED_NAME, specific_model_path=str(artifact), threads=threads)


def load_fastembed(spec: Spec) -> Runner:
    """fastembed on the artifact's fp32 graph."""
    model = fastembed_model(spec.artifact, spec.threads)
    return Runner(
        call_one=lambda t: next(iter(model.embed([t]))),
        predict=lambda texts, bs: np.stack(list(model.embed(texts, batch_size=bs))),
        size_bytes=graph_size(spec.artifact / "model.onnx"),
        note="model.onnx (onnxpipe's fp32)",
    )


def onnxpipe_embeddings(variant: str):
    def load(spec: Spec) -> Runner:
        import onnxpipe

        pipe = onnxpipe.pipeline("sentence-embeddings", model=spec.artifact, variant=variant, threads=spec.threads)
        return Runner(
            call_one=lambda t: pipe(t),
            predict=lambda texts, bs: pipe(texts, batch_size=bs),
            size_bytes=graph_size(pipe.model_path),
            note=variant,
        )

    return load


LEAN = ("onnxruntime", "tokenizers", "numpy")
CONTENDERS = [
    Contender(REFERENCE, "pytorch", ("torch", "sentence_transformers"), load_sentence_transformers),
    Contender("fastembed (onnx fp32)", "peer", ("fastembed", "onnxruntime"), load_fastembed),
    Contender("onnxpipe fp32", "onnxpipe", LEAN, onnxpipe_embeddings("fp32")),
    Contender("onnxpipe optimized", "onnxpipe", LEAN, onnxpipe_embeddings("optimized")),
    Contender("onnxpipe int8", "onnxpipe", LEAN, onnxpipe_embeddings("int8")),
]
BY_NAME = {c.name: c for c in CONTENDERS}


def reference_folder(source: dict[str, Any]) -> Path | None:
    """The sentence-transformers folder an artifact was exported from, to compare with; None if there is none.
    The embedded default records the package's folder as it was when the cache was built: a virtualenv made
    again elsewhere moves it, so that source is found in the installed package instead."""
    base = source.get("base") or source.get("name_or_path")
    if base and Path(base).is_dir():
        return Path(base)
    if source.get("kind") == "onnxpipe default" and source.get("package"):
        from onnxpipe.export.default_model.base import base_model_dir

        return base_model_dir()
    return None


def resolve(target: str | Path | None, threads: int, log, out_dir: Path | None = None) -> Spec:
    """The embeddings artifact (the embedded default unless given) and the sentence-transformers folder; a
    sentence-transformers folder (all-mpnet-base-v2, say) is exported first, fused and int8, into out_dir."""
    import onnxpipe
    from onnxpipe import tune
    from onnxpipe.artifact import MANIFEST
    from onnxpipe.default import ensure_default

    artifact_dir = Path(target) if target else ensure_default("sentence-embeddings", log=log)
    if target and not (artifact_dir / MANIFEST).is_file():
        from onnxpipe.export import export

        artifact_dir = Path(out_dir or ".") / "artifact"
        if not (artifact_dir / MANIFEST).is_file():
            export(target, artifact_dir, "sentence-embeddings", optimize=True, quantize="int8", log=log)
    artifact = onnxpipe.load_artifact(artifact_dir)
    choice = tune.choose(artifact, threads)  # the variant the runtime itself runs on this machine, and why
    log(f"the runtime runs {tune.describe(choice)}")
    base = reference_folder(artifact.manifest.source)
    if base is None:
        raise InputValueError(f"{artifact_dir}'s source is not a local sentence-transformers folder to compare with")
    return Spec(
        artifact=artifact_dir,
        checkpoint=base,
        id2label={},
        max_length=artifact.max_length,
        threads=threads,
        best_variant=choice.variant,
        calibration=None,
        choice=choice.to_dict(),
    )


def run(spec: Spec, texts: list[str], settings, progress: bool = True) -> dict[str, Any]:
    from .harness import measure_task

    rows = measure_task(CONTENDERS, spec, texts, settings, "sentence-embeddings", REFERENCE, progress)
    derive(rows)
    return {
        "task": "sentence-embeddings",
        "machine": machine.describe(),
        "variant_choice": spec.choice,
        "threads": spec.threads,
        "n_texts": len(texts),
        "artifact": str(spec.artifact),
        "isolation": "process",
        "settings": settings.__dict__,
        "contenders": rows,
    }


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def derive(rows: dict[str, dict[str, Any]]) -> None:
    """Cosine to sentence-transformers at the largest batch; batch 1 vs the others, per text."""
    ref_vectors = rows[REFERENCE]["probs"]
    for row in rows.values():
        vectors = row.pop("probs", None)
        if vectors is None:
            continue
        big = max(vectors, key=int)
        cosine = np.sum(unit(np.asarray(vectors[big])) * unit(np.asarray(ref_vectors[big])), axis=1)
        row["cosine_min"], row["cosine_mean"] = float(cosine.min()), float(cosine.mean())
        if "1" in vectors:
            row["batch_max_gap"] = max(
                float(np.max(np.abs(np.asarray(vectors[b]) - np.asarray(vectors["1"])))) for b in vectors
            )


def markdown(result: dict[str, Any]) -> str:
    rows = result["contenders"]
    fast = rows.get("fastembed (onnx fp32)", {})
    sizes = sorted(rows[REFERENCE]["throughput"], key=int)
    big = sizes[-1]
    lines = [
        f"sentence-embeddings, {result['n_texts']} SST-2 dev sentences, {result['threads']} threads, "
        f"each contender in its own process; {result['machine'].get('cpu', '')} "
        f"({', '.join(result['machine'].get('isa', [])) or 'no AVX2'}"
        f"{', ' + result['machine']['clock'] if result['machine'].get('clock') else ''})",
        *(
            [f"The runtime runs {result['variant_choice']['variant']} here: {result['variant_choice']['reason']}."]
            if result.get("variant_choice")
            else []
        ),
        "",
        "| contender | b1 p50 ms (sentence) | vs fastembed | "
        + " | ".join(f"texts/s @{b}" for b in sizes)
        + f" | × fastembed @{big} | cosine to ST min / mean | alone = batched |",
        "|---|---|---|" + "---|" * len(sizes) + "---|---|---|",
    ]
    for name, r in rows.items():
        if r["status"] != "ok":
            lines.append(f"| {name} | {r['status']}: {r.get('reason', '')} |")
            continue
        p50 = r["latency"]["sentence"]["p50_ms"]
        fp50 = fast.get("latency", {}).get("sentence", {}).get("p50_ms")
        tput = r["throughput"]
        ftput = fast.get("throughput", {}).get(big)
        lines.append(f"| {name} | {p50:.2f} | {p50 / fp50:.2f}× | " if fp50 else f"| {name} | {p50:.2f} | – | ")
        lines[-1] += " | ".join(f"{tput[b]:.0f}" for b in sizes)
        lines[-1] += f" | {tput[big] / ftput:.2f}× | " if ftput else " | – | "
        lines[-1] += f"{r['cosine_min']:.6f} / {r['cosine_mean']:.6f} | "
        lines[-1] += ("yes" if r.get("batch_max_gap", 1.0) <= 1e-5 else f"no ({r['batch_max_gap']:.1e})") + " |"
    target = int8_line(rows, big)
    return "\n".join([*lines, *(["", target] if target else [])])


INT8_OVER_FP32 = 1.8  # issue 24: the embeddings int8 graph's throughput over the fp32 graph's


def int8_line(rows: dict[str, dict[str, Any]], big: str) -> str | None:
    """Issue 24's embeddings speed line: onnxpipe int8's median pass over onnxpipe fp32's at the largest batch,
    with the ratios of the passes taken in turns (their spread is the run's noise)."""
    int8, fp32 = rows.get("onnxpipe int8", {}), rows.get("onnxpipe fp32", {})
    if int8.get("status") != "ok" or fp32.get("status") != "ok":
        return None
    x = stats.ratio(int8["throughput"][big], fp32["throughput"][big])
    if x is None:
        return None
    paired = stats.paired_ratios(
        fp32.get("throughput_passes", {}).get(big, []), int8.get("throughput_passes", {}).get(big, []), True
    )
    spread = f"; passes in turns {paired['median']:.2f}x [{paired['min']:.2f}–{paired['max']:.2f}]" if paired else ""
    mark = "✓" if x >= INT8_OVER_FP32 else "✗"
    return f"{mark} onnxpipe int8 over onnxpipe fp32 at batch {big}: {x:.2f}x (target {INT8_OVER_FP32}){spread}"


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = {n: r for n, r in result["contenders"].items() if r["status"] == "ok"}
    big = max(result["contenders"][REFERENCE]["throughput"], key=int)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    names = list(ok)
    colors = [
        "#c44e52" if ok[n]["group"] == "pytorch" else "#8172b3" if ok[n]["group"] == "peer" else "#4c72b0"
        for n in names
    ]
    a.barh(names, [ok[n]["latency"]["sentence"]["p50_ms"] for n in names], color=colors)
    a.set_xlabel("batch-1 p50, ms (lower is better)")
    a.invert_yaxis()
    b.barh(names, [ok[n]["throughput"][big] for n in names], color=colors)
    b.set_xlabel(f"texts/s at batch {big} (higher is better)")
    b.invert_yaxis()
    b.set_yticklabels([])
    fig.suptitle("sentence embeddings: all-MiniLM-L6-v2 on CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_all(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "embeddings.json", "markdown": out_dir / "embeddings.md"}
    paths["json"].write_text(json.dumps(result, indent=1, default=float) + "\n")
    paths["markdown"].write_text(markdown(result) + "\n")
    paths["plot"] = plot(result, out_dir / "embeddings.png")
    return paths
