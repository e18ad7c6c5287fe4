"""Which of an artifact's variants runs on this machine: timed once per CPU, cached, overridable.

Whether int8 pays depends on the CPU, not on the model: on AVX-512 VNNI onnxruntime's int8 GEMM is ~1.85x
its fp32 GEMM, on AVX2 without VNNI it is at parity (both measured on MiniLM's shapes, see the README). So the
artifact carries its batch-invariant variants and the machine picks: the exact ones (fp32 and fused fp32,
equal to PyTorch within the fp32 tolerance) rank first, and int8 runs only where it takes at most
:data:`MARGIN` of the fastest exact variant's time at batch 1 *and* at a small batch, measured here.
Batch 1 is timed on the pipeline's threads, the small batch on one thread, as the streams that run batches do.
The timing is short (about a second for a MiniLM, less for small graphs), done once per artifact, CPU
model, onnxruntime version and thread count, and kept as JSON under the cache folder; ``onnxpipe tune``
times longer and rewrites it. ``ONNXPIPE_TUNE=0`` skips timing and takes the manifest's default variant.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import onnxruntime as ort

from .artifact import Artifact, cache_dir
from .cpu import cpu
from .errors import InputValueError

# A less exact variant must take at most this share of the best exact variant's time at both batch sizes
# (>= 1.18x faster): below that, timing noise on a busy machine could trade accuracy for nothing.
MARGIN = 0.85
TUNE_ENV = "ONNXPIPE_TUNE"
BATCH = 8  # the small batch timed beside batch 1: a server's and score's usual graph run
# Timing text: ordinary English of typical length; the values of ids do not change a graph's speed.
TEXTS = (
    "We are very happy to show you the 🤗 Transformers library.",
    "The film is a quiet, patient portrait of a family coming apart.",
    "I wanted to like this movie, but the script is lazy.",
    "An instant classic: sharp, funny and warm without ever turning sentimental.",
    "Two hours of my life I will never get back.",
    "The service was slow and the food arrived cold.",
    "A remarkable performance from the whole cast.",
    "Nothing here works, from the pacing to the dialogue.",
)
BATCH_MAX_GAP = 1e-4  # as the exporter's default-variant rule: a variant whose scores move more never runs unasked
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")

Timings = dict[str, dict[str, float]]  # variant -> {"batch_1": ms, "batch_8": ms}


@dataclass(frozen=True)
class Choice:
    """The variant a pipeline runs, and why."""

    variant: str
    reason: str
    timings: Timings = field(default_factory=dict)
    machine: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@functools.cache  # read once a process: every load's cache key and its report ask for it
def machine() -> dict[str, str]:
    """What decides int8's worth: the CPU model and its vector ISA, and onnxruntime's kernels."""
    model, flags = cpu()
    isa = ",".join(f for f in ISA_FLAGS if f in flags) or platform.machine()
    return {"cpu": model, "isa": isa, "onnxruntime": ort.__version__}


def candidates(artifact: Artifact) -> list[str]:
    """Variants whose scores do not move with the batch (a server's batches must not change an answer)."""
    out = []
    for name, v in artifact.variants.items():
        inv = v.get("validation", {}).get("batch_invariance", {})
        recipe = v.get("quantization", {})
        recipe_ok = recipe.get("batch_invariant", True) and recipe.get("auto", True)
        if recipe_ok and inv.get("label_flips", 0) == 0 and inv.get("max_score_gap", 0.0) <= BATCH_MAX_GAP:
            out.append(name)
    return out


def opt_in(artifact: Artifact) -> list[str]:
    """Variants the runtime runs only when named: their recipe missed the accuracy bar it was chosen against."""
    return [n for n, v in artifact.variants.items() if v.get("quantization", {}).get("auto", True) is False]


def is_exact(artifact: Artifact, name: str) -> bool:
    return "quantization" not in artifact.variants[name]


def decide(timings: Timings, exact: Callable[[str], bool], margin: float = MARGIN) -> tuple[str, str]:
    """(variant, reason) from measured times: the fastest exact variant, unless a less exact one takes at most
    ``margin`` of its time at every batch size timed."""

    def mean(name: str) -> float:
        return statistics.geometric_mean(timings[name].values())

    def said(name: str) -> str:
        return ", ".join(f"{b.replace('_', ' ')} {ms:.2f} ms" for b, ms in timings[name].items())

    exacts = sorted((n for n in timings if exact(n)), key=mean)
    if not exacts:
        best = min(timings, key=mean)
        return best, f"fastest measured ({said(best)}); no exact variant to compare"
    base = exacts[0]
    paying = [
        n for n in timings if not exact(n) and all(timings[n][b] <= margin * timings[base][b] for b in timings[base])
    ]
    if paying:
        best = min(paying, key=mean)
        ratio = min(timings[base][b] / timings[best][b] for b in timings[base])
        return best, (
            f"{best} is >= {ratio:.2f}x faster than {base} here ({said(best)} vs {said(base)}; "
            f"it must be >= {1 / margin:.2f}x to run)"
        )
    others = [n for n in timings if not exact(n)]
    why = "; ".join(f"{n} {said(n)}" for n in others)
    return base, (
        f"{base} ({said(base)}): exact, and no less exact variant is >= {1 / margin:.2f}x faster here"
        + (f" ({why})" if why else "")
    )


def measure(artifact: Artifact, names: list[str], threads: int, rounds: int = 3, seconds: float = 0.15) -> Timings:
    """Median ms per graph run of each variant at batch 1 on ``threads`` threads (as a lone text runs) and at batch
    :data:`BATCH` on one thread (as each stream runs a batch), about ``rounds`` x ``seconds`` of runs a batch size.

    The variants take turns run by run, not in windows of their own: load from outside comes in bursts longer
    than a run, and a variant timed in a window of its own could take a whole burst (one machine here timed the same
    fp32 graph at 3.85 and 8.53 ms a batch-1 run in two such timings a minute apart). Run by run, a burst lands on
    every variant alike. A variant within noise of the margin can still go either way: that is a tie, not a burst."""
    from .session import Session
    from .tokenize import TextEncoder

    enc = TextEncoder(artifact.path / "tokenizer.json", artifact.max_length, artifact.pad_id, artifact.pad_token)
    encoded = enc.encode(list(TEXTS))
    feeds = {"batch_1": enc.collate(encoded[:1])}
    if artifact.pad_id is not None:
        feeds[f"batch_{BATCH}"] = enc.collate(encoded[:BATCH])
    # A lone text keeps every thread, spinning between operators as a pipeline's session does; but the workers stop
    # spinning as each run returns. Left spinning, one session's idle workers hold a core for milliseconds and the
    # next variant's run in turn loses it; without spinning at all, each operator waits for a worker to wake, which
    # costs the graphs with the most nodes most. Measured on a VNNI CPU (README, "Which variant runs").
    lone = {n: Session(artifact.variant_file(n), threads, spin=True, spin_stop=True) for n in names}
    # A call of several runs, a server's batches and score's run on streams of one thread each (session.Session,
    # serve/batcher.py): batch 8 is timed as a stream runs it. On two threads the int8 graphs' many small operators
    # each wait for the second thread, and a graph can look slower than the streams make it.
    streamed = {n: Session(artifact.variant_file(n), 1) for n in names} if threads > 1 else lone
    on = {b: (lone if b == "batch_1" else streamed) for b in feeds}
    times: dict[str, dict[str, list[float]]] = {n: {b: [] for b in feeds} for n in names}
    for b, feed in feeds.items():  # first runs allocate and pick kernels: not timed
        for s in on[b].values():
            s.run(feed)
    for b, feed in feeds.items():
        end = time.perf_counter() + rounds * seconds / len(feeds)
        while True:
            for n, s in on[b].items():
                t = time.perf_counter()
                s.run(feed)
                times[n][b].append((time.perf_counter() - t) * 1e3)
            if time.perf_counter() > end and len(times[names[0]][b]) >= rounds:
                break
    return {n: {b: statistics.median(v) for b, v in per.items()} for n, per in times.items()}


def cache_file(artifact: Artifact, threads: int, where: Path) -> Path:
    files = json.dumps(artifact.manifest.files, sort_keys=True)
    key = json.dumps([files, machine(), threads], sort_keys=True)
    return where / "tuning" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def choose(
    artifact: Artifact,
    threads: int,
    *,
    cache: Path | None = None,
    retime: bool = False,
    timer: Callable[[Artifact, list[str], int], Timings] | None = None,
) -> Choice:
    """The variant to run on this machine: from the cache, else timed now (``retime``: always timed)."""
    names = candidates(artifact)
    named_only = opt_in(artifact)
    note = f"; {', '.join(named_only)} runs only when named (it missed the accuracy bar)" if named_only else ""
    desc = machine()
    where = f"{desc['cpu']} ({desc['isa']}), onnxruntime {desc['onnxruntime']}, {threads} threads"
    if not names:
        return Choice(artifact.default_variant, "the manifest's default: no variant is batch-invariant", {}, where)
    if len(names) == 1:
        return Choice(names[0], "the only batch-invariant variant" + note, {}, where)
    if os.environ.get(TUNE_ENV, "1") == "0" and not retime:
        return Choice(artifact.default_variant, f"the manifest's default ({TUNE_ENV}=0: not timed)", {}, where)
    path = cache_file(artifact, threads, cache or cache_dir())
    if not retime and path.is_file():
        try:
            return Choice(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError):
            pass  # unreadable: time again and overwrite it
    timings = (timer or measure)(artifact, names, threads)
    variant, reason = decide(timings, lambda n: is_exact(artifact, n))
    choice = Choice(variant, f"timed on this machine: {reason}{note}", timings, where)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(choice.to_dict(), indent=1), encoding="utf-8")
        tmp.replace(path)  # atomic: a concurrent loader reads the old file or the new one
    except OSError:
        pass  # a read-only cache costs a re-timing next time, nothing else
    return choice


def named(artifact: Artifact, variant: str) -> Choice:
    if variant not in artifact.variants:
        raise InputValueError(
            f"unknown variant {variant!r} for {artifact.path}: this artifact has {', '.join(sorted(artifact.variants))}"
        )
    return Choice(variant, "named by the caller (variant=)")


def describe(choice: Choice) -> str:
    return f"{choice.variant}: {choice.reason}"
