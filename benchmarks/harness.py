"""One benchmark run: resolve the model, measure every contender the same way, derive the figures."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import machine, measure, stats
from .contenders import BY_NAME, CONTENDERS, Contender, Spec

REFERENCE = "pytorch fp32"


class Worker:
    """The harness's handle on one contender's process."""

    def __init__(self, name: str, spec: Spec, texts: list[str], task: str = "text-classification"):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "onnxpipe.bench.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        fields = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(spec).items()}
        self.ready = self._ask({"contender": name, "spec": fields, "texts": texts, "task": task})

    def _ask(self, obj: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both are pipes (Popen above)
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} worker process exited (status {self.proc.wait()})")
        return json.loads(line)

    def warmup(self, rounds: int) -> None:
        self._ask({"cmd": "warmup", "rounds": rounds})

    def latency(self, rounds: int) -> dict[str, list[float]]:
        return self._ask({"cmd": "latency", "rounds": rounds})["latency_s"]

    def throughput(self, batch_size: int) -> tuple[float, list]:
        reply = self._ask({"cmd": "throughput", "batch_size": batch_size})
        return reply["seconds"], reply["probs"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()


@dataclass(frozen=True)
class Settings:
    rounds: int  # latency rounds over the length mix
    warmup: int
    batch_sizes: tuple[int, ...]
    cold_repeats: int  # 0 skips cold start
    passes: int = 3  # timed passes over the dev set per batch size; their median is quoted

    @classmethod
    def quick(cls) -> Settings:
        return cls(rounds=30, warmup=3, batch_sizes=(1, 32), cold_repeats=1, passes=3)

    @classmethod
    def full(cls) -> Settings:
        return cls(rounds=200, warmup=10, batch_sizes=(1, 8, 32, 64), cold_repeats=3, passes=5)


def resolve_spec(
    target: str | Path | None, out_dir: Path, threads: int, calibration: list[str] | None, log=print
) -> Spec:
    """An artifact plus the PyTorch checkpoint with the very same weights (exporting first if needed)."""
    import onnxpipe
    from onnxpipe import tune
    from onnxpipe.artifact import MANIFEST

    if target is None:
        from onnxpipe.default import ensure_default

        artifact_dir = ensure_default(log=log)
    elif (Path(target) / MANIFEST).is_file():
        artifact_dir = Path(target)
    else:  # a checkpoint folder or hub id: export it like a user would, fused and int8
        from onnxpipe.export import export

        artifact_dir = out_dir / "artifact"
        if not (artifact_dir / MANIFEST).is_file():
            export(target, artifact_dir, optimize=True, quantize="int8", log=log)
    artifact = onnxpipe.load_artifact(artifact_dir)
    log(f"the runtime runs {tune.describe(choice := tune.choose(artifact, threads))}")  # here, and why
    checkpoint: Path | None = artifact_dir / "pytorch"
    if checkpoint is None or not checkpoint.is_dir():
        source = artifact.manifest.source.get("name_or_path")
        checkpoint = Path(source) if source and Path(source).is_dir() else None
    if checkpoint is None:
        raise ValueError(
            f"{artifact_dir} has no pytorch/ folder and its source is not a local folder: "
            "benchmark the checkpoint instead (onnxpipe bench CHECKPOINT) so both share weights"
        )
    return Spec(
        artifact=artifact_dir,
        checkpoint=checkpoint,
        id2label=artifact.id2label,
        max_length=artifact.max_length,
        threads=threads,
        best_variant=choice.variant,
        calibration=calibration,
        choice=choice.to_dict(),
    )


def missing_packages(c: Contender) -> list[str]:
    mods = {"optimum-onnx": "optimum.onnxruntime"}
    return [p for p in c.packages if importlib.util.find_spec(mods.get(p, p).replace("-", "_")) is None]


def run(
    spec: Spec,
    texts: list[str],
    labels: list[int],
    settings: Settings,
    names: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Start every contender in a process of its own, then measure latency and throughput with their
    turns interleaved, then cold start; each worker is loaded while the others sit idle."""
    chosen = [BY_NAME[n] for n in names] if names else list(CONTENDERS)
    if REFERENCE not in [c.name for c in chosen]:
        chosen.insert(0, BY_NAME[REFERENCE])  # every accuracy figure is relative to it
    rows = measure_task(chosen, spec, texts, settings, "text-classification", REFERENCE, progress)
    for c in chosen:
        row = rows[c.name]
        if row["status"] != "ok":
            continue
        row["footprint_bytes"] = machine.install_footprint(list(c.packages))["bytes"]
        if c.cold_start and settings.cold_repeats:
            fields = {"artifact": str(spec.artifact), "checkpoint": str(spec.checkpoint), "threads": spec.threads}
            row["cold"] = measure.cold_start(c.cold_start, fields, settings.cold_repeats)
    derive(rows, labels)
    return {
        "machine": machine.describe(),
        "variant_choice": spec.choice,
        "threads": spec.threads,
        "n_texts": len(texts),
        "artifact": str(spec.artifact),
        "checkpoint": str(spec.checkpoint),
        "isolation": "process",
        "settings": settings.__dict__,
        "contenders": rows,
    }


def measure_task(
    contenders: list[Contender],
    spec: Spec,
    texts: list[str],
    settings: Settings,
    task: str,
    reference: str,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Each contender in a worker process of its own (``task``'s registry), then batch-1 latency and
    throughput with their turns interleaved: the loop of the embeddings and span benchmarks."""
    from tqdm.auto import tqdm

    rows: dict[str, dict[str, Any]] = {}
    workers: dict[str, Worker] = {}
    bar = tqdm(total=len(contenders) + 10 + len(settings.batch_sizes), unit="step", disable=not progress)
    status = lambda s: bar.set_description(s[:60].ljust(60))
    try:
        for c in contenders:
            status(f"starting {c.name}")
            rows[c.name] = {"group": c.group}
            missing = missing_packages(c)
            if missing:
                hint = " (pip install '.[peers]')" if c.group == "peer" else ""
                rows[c.name].update(status="missing", reason=f"not installed: {', '.join(missing)}{hint}")
            else:
                worker = Worker(c.name, spec, texts, task=task)
                if worker.ready["ok"]:
                    workers[c.name] = worker
                    rows[c.name].update(
                        status="ok",
                        note=worker.ready["note"],
                        size_bytes=worker.ready["size_bytes"],
                        pid=worker.ready["pid"],
                    )
                else:
                    worker.close()
                    rows[c.name].update(status="failed", reason=worker.ready["reason"])
            bar.update(1)
        measure_latency(workers, rows, settings, 10, status, lambda: bar.update(1))
        measure_throughput(workers, rows, settings, len(texts), status, lambda: bar.update(1))
    finally:
        for worker in workers.values():
            worker.close()
    bar.close()
    if rows[reference]["status"] != "ok":
        raise RuntimeError(f"the reference contender failed: {rows[reference].get('reason')}")
    return rows


def measure_latency(workers: dict, rows: dict, settings: Settings, blocks: int, status, tick) -> None:
    """Blocks of batch-1 rounds, contenders taking turns; each block's p50 is kept for the spread."""
    for name, worker in workers.items():
        status(f"warming up {name}")
        worker.warmup(settings.warmup)
    per_block = max(1, settings.rounds // blocks)
    samples: dict[str, dict[str, list[float]]] = {n: {} for n in workers}
    block_p50: dict[str, list[float]] = {n: [] for n in workers}
    for b in range(max(1, settings.rounds // per_block)):
        for name, worker in workers.items():
            status(f"batch-1 latency, block {b + 1}: {name}")
            got = worker.latency(per_block)
            for length, values in got.items():
                samples[name].setdefault(length, []).extend(values)
            block_p50[name].append(float(stats.latency_summary(got["sentence"])["p50_ms"]))
        tick()
    for name, lat in samples.items():
        row = rows[name]
        row["latency_s"] = lat
        row["latency"] = {k: stats.latency_summary(v) for k, v in lat.items()}
        row["latency"]["mix"] = stats.latency_summary([x for v in lat.values() for x in v])
        row["sentence_p50_by_block_ms"] = block_p50[name]


def measure_throughput(workers: dict, rows: dict, settings: Settings, n: int, status, tick) -> None:
    """Passes over the dev set per batch size, contenders taking turns; the median pass is quoted (as issue 24
    judges speed) and every pass kept. A slow moment of a shared machine costs every contender a pass, and
    the median, unlike the fastest pass, does not reward whoever got the one quiet moment."""
    batched = {name: w for name, w in workers.items() if rows[name]["group"] != "bare"}
    for bs in settings.batch_sizes:
        for p in range(settings.passes):
            for name, worker in batched.items():
                status(f"dev set at batch {bs}, pass {p + 1}: {name}")
                seconds, probs = worker.throughput(bs)
                rows[name].setdefault("probs", {})[str(bs)] = as_array(probs)
                rows[name].setdefault("throughput_passes", {}).setdefault(str(bs), []).append(
                    stats.throughput(n, seconds)
                )
        for name in batched:
            rows[name].setdefault("throughput", {})[str(bs)] = stats.quoted(rows[name]["throughput_passes"][str(bs)])
        tick()


def as_array(values: list) -> np.ndarray | list:
    """Probabilities and vectors as arrays; span results (one list per input, of any length) as they are."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError):
        return values


def derive(rows: dict[str, dict[str, Any]], labels: list[int]) -> None:
    """Accuracy, agreement and probability gap against PyTorch fp32, per batch size.

    Per batch size because dynamic int8 (PyTorch's, optimum's default) quantizes activations per batch:
    its predictions change with what else is in the batch, which batch_flips / batch_max_gap count
    against each text alone. The headline figures use the quoted batch size.
    """
    ref_probs = rows[REFERENCE]["probs"]
    for row in rows.values():
        by_batch = row.pop("probs", None)
        if by_batch is None:
            continue
        row["accuracy_by_batch"] = {bs: stats.accuracy(p, labels) for bs, p in by_batch.items()}
        row["agreement_by_batch"] = {bs: stats.agreement(p, ref_probs[bs]) for bs, p in by_batch.items()}
        row["max_prob_gap_by_batch"] = {bs: stats.max_gap(p, ref_probs[bs]) for bs, p in by_batch.items()}
        if "1" in by_batch:  # each text alone vs in batches: what a micro-batching server would change
            others = [b for b in by_batch if b != "1"]
            row["batch_flips"] = int(sum(np.sum(by_batch[b].argmax(-1) != by_batch["1"].argmax(-1)) for b in others))
            row["batch_max_gap"] = max((stats.max_gap(by_batch[b], by_batch["1"]) for b in others), default=0.0)
        bs = quoted_batch(by_batch)
        row["accuracy"] = row["accuracy_by_batch"][bs]
        row["agreement"] = row["agreement_by_batch"][bs]
        row["max_prob_gap"] = row["max_prob_gap_by_batch"][bs]


def quoted_batch(sizes) -> str:
    """The batch size figures are quoted at: 32 (the issue's setting) when measured, else the largest."""
    return "32" if "32" in sizes else max(sizes, key=int)


def best_onnxpipe(rows: dict[str, dict[str, Any]]) -> str | None:
    ok = [n for n, r in rows.items() if r["group"] == "onnxpipe" and r["status"] == "ok"]
    return min(ok, key=lambda n: rows[n]["latency"]["sentence"]["p50_ms"], default=None)
