"""The ONNX Runtime session: options chosen on purpose, one ``run`` per batch."""

from __future__ import annotations

import os
import platform
import threading
import time
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from .arrays import Outputs
from .artifact import weights_file
from .cpu import cpu
from .errors import OnnxPipeError
from .graph_nodes import metadata
from .inputs import check_int


class Engine(Protocol):
    """What runs the graph: onnxruntime's :class:`Session` by default; the benchmark hands in others
    (OpenVINO, CTranslate2) so that tokenization and postprocessing stay onnxpipe's own."""

    input_names: list[str]
    threads: int

    def run(self, feed: Outputs) -> Outputs: ...


def default_threads() -> int:
    # The cores this process may use (taskset / cgroup cpusets), not every core the machine has.
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# ORT fuses a fused graph's Add + LayerNormalization into SkipLayerNormalization at load; 1.32's CPU kernel for it is a scalar
# loop, 3.9x slower than the two it replaces (export/variants.py has the figures), so sessions skip that fusion.
UNFUSED = ["SkipLayerNormFusion"]


def check_threads(threads: int | None) -> int | None:
    checked: int | None = check_int(threads, "threads", none=True)
    return checked


WEIGHTS_KEY = "onnxpipe.weights"  # export/rowwise.py's model metadata: "int8" for int8 (not uint8) weights
VNNI_FLAGS = {"avx512_vnni", "avx_vnni"}


def u8s8_saturates() -> bool:
    """Whether this CPU's u8 x s8 int8 products add pairs in int16 (x86 without VNNI). Where the flags cannot be read
    (not Linux), an x86 CPU counts as one that does: the exact path costs speed there, never an answer."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False
    return not (VNNI_FLAGS & cpu()[1])


def _load(path: str | Path, opts: ort.SessionOptions) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"], disabled_optimizers=UNFUSED)
    except Exception as e:  # ORT raises its own exception types per failure (InvalidProtobuf, Fail, ...)
        weights = weights_file(path)
        if "external data" in str(e).lower() and not weights.exists():  # a graph copied without its weights file
            raise OnnxPipeError(
                f"{weights} is missing: {Path(path).name} keeps its weights in that file beside it; "
                "copy the two together (or the whole artifact folder)"
            ) from e
        raise OnnxPipeError(
            f"onnxruntime cannot load {path}: {type(e).__name__}: {e}. "
            "The file is corrupt or not an ONNX model; export the artifact again"
        ) from e


class Session:
    """A CPU inference session that feeds the graph only the inputs it declares.

    A call with several graph runs (a list longer than a batch) runs them ``streams`` at a time, each on one thread
    of a second, one-thread session of the same graph, loaded at the first such call (onnxruntime's ``run`` takes
    concurrent callers). On the sentiment default's int8 graph (2-core AMD EPYC, AVX-512 VNNI, dev at batch 32) two
    one-thread runs side by side gave 1.28-1.51x the sentences/s of one two-thread session running the same batches
    in turn (a two-thread run leaves a core waiting at every operator's end); whole processes, 0.84x the wall time.
    The second session adds ~12 MiB once loaded, and its outputs are the two-thread session's, bit for bit
    (tests/runtime/test_session.py: the tiny models' variants and the real int8 default). One run alone (batch 1, a
    short list) keeps every thread: at 512 tokens two threads took 62 ms against one thread's 76."""

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        serving: bool = False,
        spin: bool | None = None,
        streams: int | None = None,
        spin_stop: bool = False,
    ):
        """``serving``: no memory arena; ``spin``: whether idle intra-op threads spin for the next operator's work
        (default: they do, except in a serving session); ``streams``: graph runs at once for a call with several
        (default: one per thread, but one in a serving session: the server's batcher runs its own streams);
        ``spin_stop``: they spin within a run only, and stop as it returns (for sessions timed in turns)."""
        check_threads(threads)
        self.path = Path(path)
        self.serving = serving
        self.threads = threads or default_threads()
        spin = not serving if spin is None else spin
        self.session = _load(path, _options(self.path, self.threads, serving, spin, spin_stop))
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.streams: int = check_int(streams, "streams", none=True) or (1 if serving else self.threads)
        self._alone: ort.InferenceSession | None = None  # the one-thread session the streams share
        self._workers: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._loading = threading.Lock()
        _SESSIONS.add(self)

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._run_on(self.session, feed)

    def _run_on(self, session: ort.InferenceSession, feed: dict[str, np.ndarray]) -> Outputs:
        outputs = session.run(self.output_names, {n: feed[n] for n in self.input_names})
        return dict(zip(self.output_names, outputs))

    def submit(self, feed: dict[str, np.ndarray]) -> Future[tuple[Outputs, float]]:
        """One graph run on a stream, queued behind at most ``streams`` running: its outputs and its seconds."""
        with self._lock:
            if self._workers is None:
                self._workers = ThreadPoolExecutor(self.streams, thread_name_prefix="onnxpipe-stream")
        return self._workers.submit(self._run_alone, feed)

    def _run_alone(self, feed: dict[str, np.ndarray]) -> tuple[Outputs, float]:
        with self._loading:  # the first stream loads it; the others wait for that one load
            if self._alone is None:
                self._alone = _load(self.path, _options(self.path, 1, self.serving, spin=False))
        t0 = time.perf_counter()
        outputs = self._run_on(self._alone, feed)
        return outputs, time.perf_counter() - t0


# A forked child has none of its parent's threads: a pool made before the fork would queue runs that never start.
# (multiprocessing's default start method on Linux forks; a pipeline used before a fork hangs there without this.)
_SESSIONS: weakref.WeakSet[Session] = weakref.WeakSet()


def _forget_workers() -> None:
    for session in _SESSIONS:
        session._workers = None
        session._lock = threading.Lock()
        session._loading = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_workers)


def _options(path: Path, threads: int, serving: bool, spin: bool, spin_stop: bool = False) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # One request at a time on a small graph: all threads inside each operator, none across.
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: the optimizer's notices are not for users
    if serving:
        # The arena keeps the largest batch's buffers for the process's life: fine for a batch job, but a
        # server seeing varied lengths grows with them.
        opts.enable_cpu_mem_arena = False
    if not spin:
        # Spinning threads wait for work by burning cores that a server's event loop needs between graph
        # runs; without it each operator wakes them (the server's --spin setting weighs the two).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    elif spin_stop:
        # Spinning between a run's operators, none after it: an idle pool that spins on holds a core for
        # milliseconds, which another session's run in the same process then lacks.
        opts.add_session_config_entry("session.force_spinning_stop", "1")
    if u8s8_saturates() and metadata(path).get(WEIGHTS_KEY) == "int8":
        # int8 weights (built for a VNNI CPU): MLAS's u8 x s8 kernel here adds product pairs in int16 and
        # saturates; onnxruntime's own switch turns those products into u8 x u8 (exact, as the build measured).
        # Read from the file before the one load (the graph is small: its weights are in a file beside it).
        opts.add_session_config_entry("session.x64quantprecision", "1")
    return opts
