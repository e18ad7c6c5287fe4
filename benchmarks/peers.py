"""The peers at their best: OpenVINO (default precision, and int8 after NNCF) and CTranslate2's int8 encoder, each
run the way its users run it for the pass being timed.

Batch-1 latency goes through onnxpipe's pipeline with the peer's engine handed in, so tokenization and
post-processing are the same as onnxpipe's. Throughput does not: the pipeline runs one graph run after another,
and both peers get their throughput from runs in parallel. So their ``predict`` tokenizes the texts, cuts them into
the same length-sorted runs as onnxpipe (:func:`onnxpipe.batching.chunks`) and keeps the engine busy with several
runs at once:

- OpenVINO: batch 1 on a model compiled with ``PERFORMANCE_HINT`` LATENCY; throughput on one compiled with
  THROUGHPUT, fed through an ``AsyncInferQueue`` of the model's ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` (OpenVINO's
  throughput guide and its benchmark_app);
- CTranslate2: ``inter_threads`` replicas of ``intra_threads`` each, the product the thread budget, called
  from ``inter_threads`` Python threads (``forward_batch`` releases the GIL). Which split is best differs by
  machine, so every split is measured at load on SST-2 *train* sentences (never dev) and the best for each pass
  is used: batch-1 p50 for latency, sentences/s at batch 32 for throughput. The note names both.
"""

from __future__ import annotations

from onnxpipe.artifact import graph_size
from onnxpipe.errors import InputValueError

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .runner import Runner, Spec, dir_size, onnxpipe_runner

SPLIT_TEXTS = 512  # train sentences timed per split at batch 32 (about 2 s each on 2 cores)
SPLIT_B1 = 48  # of them, timed one at a time
MIN_WORDS = 8  # whole sentences, as dev holds (most train rows are parse-tree phrases)


def _scores(pipe: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Logits to the probabilities ``pipe(texts, top_k=None)`` gives (softmax for a single-label classifier)."""
    from onnxpipe import postprocess

    function = postprocess.default_function(pipe.artifact.problem_type, pipe.artifact.num_labels)
    return {"softmax": postprocess.softmax, "sigmoid": postprocess.sigmoid}.get(function, lambda x: x)


def _runs(pipe: Any, texts: list[str], batch_size: int) -> list[tuple[list[int], dict[str, np.ndarray]]]:
    """The texts' graph runs as onnxpipe cuts them (sorted by length, bounded padding), each with its feed."""
    from onnxpipe.batching import chunks

    encodings = pipe.encoder.encode(texts)
    return [
        (idx, pipe.encoder.collate([encodings[i] for i in idx]))
        for idx in chunks([len(e) for e in encodings], batch_size)
    ]


# -- OpenVINO -----------------------------------------------------------------------------------------


class OpenVINOSession:
    """One infer request of a compiled model: what onnxpipe's pipeline calls for batch 1."""

    def __init__(self, compiled: Any, threads: int):
        self.compiled = compiled
        self.input_names = [p.get_any_name() for p in compiled.inputs]
        self.request = compiled.create_infer_request()
        self.threads = threads

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self.request.infer({n: feed[n] for n in self.input_names})
        return {"logits": np.asarray(next(iter(result.values())))}


def openvino_async_predict(compiled: Any, pipe: Any) -> tuple[Callable[[list[str], int], np.ndarray], int]:
    """Throughput as OpenVINO's users get it: every run handed to an ``AsyncInferQueue`` as soon as it is
    collated (the next run is tokenized while the requests in flight compute). Returns (predict, requests)."""
    import openvino as ov

    requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    queue = ov.AsyncInferQueue(compiled, requests)
    names = [p.get_any_name() for p in compiled.inputs]
    logits: dict[int, np.ndarray] = {}
    queue.set_callback(lambda request, i: logits.__setitem__(i, request.get_output_tensor(0).data.copy()))
    scores = _scores(pipe)

    def predict(texts: list[str], batch_size: int) -> np.ndarray:
        logits.clear()
        runs = _runs(pipe, texts, batch_size)
        for i, (_, feed) in enumerate(runs):
            queue.start_async({n: feed[n] for n in names}, i)  # blocks only while every request is busy
        queue.wait_all()
        out = np.zeros((len(texts), logits[0].shape[-1]), dtype=np.float64)
        for i, (idx, _) in enumerate(runs):
            out[idx] = scores(logits[i])
        return out

    return predict, requests


def load_openvino(spec: Spec, quantize: bool) -> Runner:
    import openvino as ov

    import onnxpipe

    core = ov.Core()
    model = core.read_model(str(spec.artifact / "model.onnx"))
    size = graph_size(spec.artifact / "model.onnx")
    pipe = onnxpipe.pipeline(model=spec.artifact, variant="fp32", threads=spec.threads)
    if quantize:
        model, size = nncf_int8(model, pipe, spec)
    compiled = {
        hint: core.compile_model(model, "CPU", {"PERFORMANCE_HINT": hint, "INFERENCE_NUM_THREADS": spec.threads})
        for hint in ("LATENCY", "THROUGHPUT")
    }
    latency = onnxpipe.pipeline(
        model=spec.artifact, variant="fp32", engine=OpenVINOSession(compiled["LATENCY"], spec.threads)
    )
    runner = onnxpipe_runner(latency, spec, size)
    runner.predict, requests = openvino_async_predict(compiled["THROUGHPUT"], pipe)
    precision = compiled["LATENCY"].get_property("INFERENCE_PRECISION_HINT")
    streams = compiled["THROUGHPUT"].get_property("NUM_STREAMS")
    runner.note = (
        f"inference precision {getattr(precision, 'get_type_name', lambda: precision)()}; batch 1: LATENCY hint; "
        f"throughput: THROUGHPUT hint, {streams} streams, AsyncInferQueue of {requests} requests"
    )
    return runner


def nncf_int8(model: Any, pipe: Any, spec: Spec) -> tuple[Any, int]:
    """NNCF post-training int8 on 300 SST-2 train sentences, as optimum-intel's int8 export does."""
    import nncf
    import openvino as ov

    if not spec.calibration:
        raise InputValueError("NNCF calibration needs SST-2 train.tsv in --data")
    items = [pipe.encoder.collate(pipe.encoder.encode([t])) for t in spec.calibration[:300]]
    names = [p.get_any_name() for p in model.inputs]
    dataset = nncf.Dataset(items, lambda feed: {n: feed[n] for n in names})
    qmodel = nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(items))
    with tempfile.TemporaryDirectory() as tmp:
        ov.save_model(qmodel, f"{tmp}/model.xml")
        size = os.path.getsize(f"{tmp}/model.xml") + os.path.getsize(f"{tmp}/model.bin")
    return qmodel, size


# -- CTranslate2 --------------------------------------------------------------------------------------


class CT2Session:
    """CTranslate2's int8 encoder (its pooler output) with the checkpoint's own classifier in numpy."""

    def __init__(self, encoder: Any, weight: np.ndarray, bias: np.ndarray, threads: int):
        self.encoder, self.weight, self.bias, self.threads = encoder, weight, bias, threads
        self.input_names = ["input_ids", "attention_mask", "token_type_ids"]

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        lengths = feed["attention_mask"].sum(1)
        ids = [row[:n].tolist() for row, n in zip(feed["input_ids"], lengths)]
        types = [row[:n].tolist() for row, n in zip(feed["token_type_ids"], lengths)]
        pooled = np.asarray(self.encoder.forward_batch(ids, token_type_ids=types).pooler_output)
        return {"logits": pooled @ self.weight.T + self.bias}


def ct2_parallel_predict(session: CT2Session, inter: int, pipe: Any) -> Callable[[list[str], int], np.ndarray]:
    """Runs spread over ``inter`` Python threads, one per encoder replica (``forward_batch`` releases the GIL)."""
    pool = ThreadPoolExecutor(inter)
    scores = _scores(pipe)

    def predict(texts: list[str], batch_size: int) -> np.ndarray:
        runs = _runs(pipe, texts, batch_size)
        logits = list(pool.map(lambda run: session.run(run[1])["logits"], runs))
        out = np.zeros((len(texts), logits[0].shape[-1]), dtype=np.float64)
        for (idx, _), values in zip(runs, logits):
            out[idx] = scores(values)
        return out

    return predict


def thread_splits(threads: int) -> list[tuple[int, int]]:
    """Every (inter_threads, intra_threads) whose product is the thread budget: (1, 2) and (2, 1) on 2 cores."""
    return [(i, threads // i) for i in range(1, threads + 1) if threads % i == 0]


def time_split(call_one: Callable[[str], Any], predict: Callable, texts: list[str]) -> tuple[float, float]:
    """(batch-1 p50 in ms over the first SPLIT_B1 texts, sentences/s at batch 32 over all of them)."""
    for text in texts[:4]:
        call_one(text)
    times = []
    for text in texts[:SPLIT_B1]:
        t = time.perf_counter()
        call_one(text)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    predict(texts, 32)
    return 1e3 * statistics.median(times), len(texts) / (time.perf_counter() - t)


def split_texts(calibration: list[str]) -> list[str]:
    whole = [t for t in calibration if len(t.split()) >= MIN_WORDS]
    return whole[:SPLIT_TEXTS]


def load_ctranslate2(spec: Spec) -> Runner:
    import ctranslate2
    from safetensors.numpy import load_file

    import onnxpipe

    out = Path(tempfile.mkdtemp(prefix="onnxpipe-ct2-"))
    ctranslate2.converters.TransformersConverter(str(spec.checkpoint)).convert(
        str(out), quantization="int8", force=True
    )
    weights = load_file(str(spec.checkpoint / "model.safetensors"))
    pipe = onnxpipe.pipeline(model=spec.artifact, variant="fp32", threads=spec.threads)
    runners: dict[tuple[int, int], Runner] = {}
    for inter, intra in thread_splits(spec.threads):
        encoder = ctranslate2.Encoder(
            str(out), device="cpu", compute_type="int8", inter_threads=inter, intra_threads=intra
        )
        session = CT2Session(encoder, weights["classifier.weight"], weights["classifier.bias"], spec.threads)
        runner = onnxpipe_runner(onnxpipe.pipeline(model=spec.artifact, variant="fp32", engine=session), spec)
        runner.predict = ct2_parallel_predict(session, inter, pipe)
        runners[(inter, intra)] = runner
    texts = split_texts(spec.calibration or [])
    if len(runners) == 1 or not texts:  # no train split to choose on: CTranslate2's own default layout
        split = (1, spec.threads)
        latency_split = throughput_split = split
        measured = "no train sentences to choose on"
    else:
        figures: dict[tuple[int, int], list[tuple[float, float]]] = {s: [] for s in runners}
        for _ in range(2):  # splits in turns, twice: the machine's drift lands on both
            for s, r in runners.items():
                figures[s].append(time_split(r.call_one, r.predict, texts))
        b1 = {s: min(f[0] for f in fs) for s, fs in figures.items()}
        per_s = {s: max(f[1] for f in fs) for s, fs in figures.items()}
        latency_split = min(b1, key=b1.__getitem__)
        throughput_split = max(per_s, key=per_s.__getitem__)
        measured = "; ".join(
            f"inter {s[0]} x intra {s[1]}: b1 p50 {b1[s]:.2f} ms, {per_s[s]:.0f}/s @32" for s in runners
        )
    runner = runners[latency_split]
    runner.predict = runners[throughput_split].predict
    runner.size_bytes = dir_size(out, "model.bin")
    runner.note = (
        f"int8 encoder, classifier in numpy; batch 1: inter {latency_split[0]} x intra {latency_split[1]}, "
        f"throughput: inter {throughput_split[0]} x intra {throughput_split[1]} (chosen on {len(texts)} SST-2 "
        f"train sentences: {measured})"
    )
    return runner
