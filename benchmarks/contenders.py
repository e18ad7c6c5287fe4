"""The contenders: every way a user could run the same checkpoint on a CPU, each loaded the same way.

A contender is data (name, group, the packages it needs, a loader, a cold-start script), not a class
of its own. Every loader returns a :class:`Runner`: the user-facing single-text call (timed for
latency) and a batch predictor returning probabilities in label-id order (for throughput and
accuracy). Engines without a pipeline of their own (OpenVINO, CTranslate2) run inside onnxpipe's
pipeline with another engine handed in, so tokenization and post-processing are identical.

Longer than 300 lines because it is one loader per engine (PyTorch, optimum, onnxpipe's variants, OpenVINO,
CTranslate2, a bare session) and the registry of them; split, each file would hold one small function.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onnxpipe.session import Session


@dataclass
class Spec:
    artifact: Path
    checkpoint: Path
    id2label: dict[int, str]
    max_length: int
    threads: int
    best_variant: str
    calibration: list[str] | None  # SST-2 train sentences for NNCF; None when no train split
    task: str = "text-classification"
    choice: dict[str, Any] | None = None  # onnxpipe.tune's choice of best_variant on this machine, and why


@dataclass
class Runner:
    call_one: Callable[[str], Any]
    predict: Callable[[list[str], int], np.ndarray]
    size_bytes: int | None
    note: str = ""


@dataclass(frozen=True)
class Contender:
    name: str
    group: str
    packages: tuple[str, ...]
    load: Callable[[Spec], Runner]
    cold_start: str | None = None  # a script's body; {artifact}, {checkpoint}, {threads} filled in


def _probs(results: list[list[dict]], id2label: dict[int, str]) -> np.ndarray:
    label2id = {v: k for k, v in id2label.items()}
    out = np.zeros((len(results), len(id2label)), dtype=np.float64)
    for i, ranked in enumerate(results):
        for d in ranked:
            out[i, label2id[d["label"]]] = d["score"]
    return out


def _hf_runner(model, tokenizer, spec: Spec, size: int | None, factory=None) -> Runner:
    if factory is None:
        from transformers import pipeline

        factory = pipeline
    pipe = factory("text-classification", model=model, tokenizer=tokenizer, truncation=True, max_length=spec.max_length)
    return Runner(
        call_one=lambda t: pipe(t),
        predict=lambda texts, bs: _probs(pipe(texts, top_k=None, batch_size=bs), spec.id2label),
        size_bytes=size,
    )


def _dir_size(path: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in path.glob(pattern))


# -- PyTorch ---------------------------------------------------------------------------------------


def load_torch_fp32(spec: Spec) -> Runner:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(spec.threads)
    model = AutoModelForSequenceClassification.from_pretrained(spec.checkpoint).eval()
    return _hf_runner(
        model, AutoTokenizer.from_pretrained(spec.checkpoint), spec, _dir_size(spec.checkpoint, "*.safetensors")
    )


def load_torch_int8(spec: Spec) -> Runner:
    import io

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(spec.threads)
    model = AutoModelForSequenceClassification.from_pretrained(spec.checkpoint).eval()
    qmodel = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    buf = io.BytesIO()
    torch.save(qmodel.state_dict(), buf)
    return _hf_runner(qmodel, AutoTokenizer.from_pretrained(spec.checkpoint), spec, buf.tell())


# -- optimum's ORT pipeline ------------------------------------------------------------------------


def _optimum(spec: Spec, file_name: str) -> Runner:
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from optimum.onnxruntime import pipeline as ort_pipeline
    from transformers import AutoTokenizer

    so = ort.SessionOptions()
    so.intra_op_num_threads = spec.threads
    model = ORTModelForSequenceClassification.from_pretrained(spec.artifact, file_name=file_name, session_options=so)
    runner = _hf_runner(
        model,
        AutoTokenizer.from_pretrained(spec.artifact),
        spec,
        (spec.artifact / file_name).stat().st_size,
        factory=ort_pipeline,
    )
    runner.note = file_name
    return runner


def load_optimum_default(spec: Spec) -> Runner:
    # model.onnx is what optimum's own exporter writes for this checkpoint (onnxpipe exports with it).
    return _optimum(spec, "model.onnx")


def load_optimum_same_file(spec: Spec) -> Runner:
    import onnxpipe

    return _optimum(spec, onnxpipe.load_artifact(spec.artifact).variants[spec.best_variant]["file"])


# -- onnxpipe ---------------------------------------------------------------------------------------


def _onnxpipe_runner(pipe, spec: Spec, size: int | None = None) -> Runner:
    return Runner(
        call_one=lambda t: pipe(t),
        predict=lambda texts, bs: _probs(pipe(texts, top_k=None, batch_size=bs), spec.id2label),
        size_bytes=pipe.model_path.stat().st_size if size is None else size,
        note=pipe.variant,
    )


def onnxpipe_loader(variant: str) -> Callable[[Spec], Runner]:
    def load(spec: Spec) -> Runner:
        import onnxpipe

        pipe = onnxpipe.pipeline(model=spec.artifact, variant=variant, threads=spec.threads)
        return _onnxpipe_runner(pipe, spec)

    return load


def load_bare_session(spec: Spec) -> Runner:
    """One session.run on an input encoded once, outside the timer: the floor onnxpipe adds to."""
    import onnxpipe

    pipe = onnxpipe.pipeline(model=spec.artifact, variant=spec.best_variant, threads=spec.threads)
    feeds: dict[str, dict] = {}

    def call_one(text: str):
        if text not in feeds:
            feeds[text] = {
                n: v for n, v in pipe.encoder.collate(pipe.encode([text])).items() if n in pipe.session.input_names
            }
        assert isinstance(pipe.session, Session)  # onnxpipe's own engine: no engine= was handed in
        return pipe.session.session.run(None, feeds[text])  # the bare InferenceSession under it

    runner = _onnxpipe_runner(pipe, spec)
    runner.call_one = call_one
    return runner


# -- peers: OpenVINO and CTranslate2 inside onnxpipe's pipeline -----------------------------------


class _OpenVINOSession:
    def __init__(self, compiled, threads: int):
        self.compiled = compiled
        self.input_names = [p.get_any_name() for p in compiled.inputs]
        self.request = compiled.create_infer_request()
        self.threads = threads

    def run(self, feed):
        result = self.request.infer({n: feed[n] for n in self.input_names})
        return {"logits": np.asarray(next(iter(result.values())))}


def _openvino(spec: Spec, quantize: bool) -> Runner:
    import openvino as ov

    import onnxpipe

    core = ov.Core()
    model = core.read_model(str(spec.artifact / "model.onnx"))
    size = (spec.artifact / "model.onnx").stat().st_size
    if quantize:
        encoder = onnxpipe.pipeline(model=spec.artifact, variant="fp32", threads=spec.threads)
        model, size = _nncf_int8(model, encoder, spec)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": spec.threads})
    pipe = onnxpipe.pipeline(model=spec.artifact, variant="fp32", engine=_OpenVINOSession(compiled, spec.threads))
    runner = _onnxpipe_runner(pipe, spec, size)
    precision = compiled.get_property("INFERENCE_PRECISION_HINT")
    runner.note = f"inference precision {getattr(precision, 'get_type_name', lambda: precision)()}"
    return runner


def _nncf_int8(model, pipe, spec: Spec):
    """NNCF post-training int8 on 300 SST-2 train sentences, as optimum-intel's int8 export does."""
    import tempfile

    import nncf
    import openvino as ov

    if not spec.calibration:
        raise RuntimeError("NNCF calibration needs SST-2 train.tsv in --data")
    items = [pipe.encoder.collate(pipe.encode([t])) for t in spec.calibration[:300]]
    names = [p.get_any_name() for p in model.inputs]
    dataset = nncf.Dataset(items, lambda feed: {n: feed[n] for n in names})
    qmodel = nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(items))
    with tempfile.TemporaryDirectory() as tmp:
        ov.save_model(qmodel, f"{tmp}/model.xml")
        size = os.path.getsize(f"{tmp}/model.xml") + os.path.getsize(f"{tmp}/model.bin")
    return qmodel, size


class _CT2Session:
    """CTranslate2's int8 encoder (its pooler output) with the checkpoint's own classifier in numpy."""

    def __init__(self, encoder, weight: np.ndarray, bias: np.ndarray, threads: int):
        self.encoder, self.weight, self.bias, self.threads = encoder, weight, bias, threads
        self.input_names = ["input_ids", "attention_mask", "token_type_ids"]

    def run(self, feed):
        lengths = feed["attention_mask"].sum(1)
        ids = [row[:n].tolist() for row, n in zip(feed["input_ids"], lengths)]
        types = [row[:n].tolist() for row, n in zip(feed["token_type_ids"], lengths)]
        pooled = np.asarray(self.encoder.forward_batch(ids, token_type_ids=types).pooler_output)
        return {"logits": pooled @ self.weight.T + self.bias}


def load_ctranslate2(spec: Spec) -> Runner:
    import tempfile

    import ctranslate2
    from safetensors.numpy import load_file

    import onnxpipe

    out = Path(tempfile.mkdtemp(prefix="onnxpipe-ct2-"))
    ctranslate2.converters.TransformersConverter(str(spec.checkpoint)).convert(
        str(out), quantization="int8", force=True
    )
    weights = load_file(str(spec.checkpoint / "model.safetensors"))
    encoder = ctranslate2.Encoder(str(out), device="cpu", compute_type="int8", intra_threads=spec.threads)
    engine = _CT2Session(encoder, weights["classifier.weight"], weights["classifier.bias"], spec.threads)
    pipe = onnxpipe.pipeline(model=spec.artifact, variant="fp32", engine=engine)
    runner = _onnxpipe_runner(pipe, spec, _dir_size(out, "model.bin"))
    runner.note = "int8 encoder, classifier in numpy"
    return runner


# -- cold start scripts: new process → first result, then peak RSS ------------------------------


def _cold_onnxpipe(variant: str) -> str:
    return f"""
import onnxpipe
t_import = time.time()
pipe = onnxpipe.pipeline(model={{artifact!r}}, variant={variant!r}, threads={{threads}})
pipe(TEXT)
"""


_COLD_TORCH = """
import torch
from transformers import pipeline
torch.set_num_threads({threads})
t_import = time.time()
pipe = pipeline("text-classification", model={checkpoint!r}, device="cpu")
pipe(TEXT)
"""
_COLD_OPTIMUM = """
import onnxruntime as ort
from optimum.onnxruntime import ORTModelForSequenceClassification, pipeline
from transformers import AutoTokenizer
t_import = time.time()
so = ort.SessionOptions(); so.intra_op_num_threads = {threads}
model = ORTModelForSequenceClassification.from_pretrained({artifact!r}, file_name="model.onnx", session_options=so)
pipe = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained({artifact!r}))
pipe(TEXT)
"""

CONTENDERS: list[Contender] = [
    Contender("pytorch fp32", "pytorch", ("torch", "transformers"), load_torch_fp32, _COLD_TORCH),
    Contender("pytorch int8 (dynamic)", "pytorch", ("torch", "transformers"), load_torch_int8),
    Contender(
        "optimum ORT (default export)", "optimum", ("optimum-onnx", "onnxruntime"), load_optimum_default, _COLD_OPTIMUM
    ),
    Contender("optimum ORT (onnxpipe's best file)", "optimum", ("optimum-onnx", "onnxruntime"), load_optimum_same_file),
    Contender(
        "onnxpipe fp32",
        "onnxpipe",
        ("onnxruntime", "tokenizers", "numpy"),
        onnxpipe_loader("fp32"),
        _cold_onnxpipe("fp32"),
    ),
    Contender(
        "onnxpipe optimized",
        "onnxpipe",
        ("onnxruntime", "tokenizers", "numpy"),
        onnxpipe_loader("optimized"),
        _cold_onnxpipe("optimized"),
    ),
    Contender(
        "onnxpipe int8",
        "onnxpipe",
        ("onnxruntime", "tokenizers", "numpy"),
        onnxpipe_loader("int8"),
        _cold_onnxpipe("int8"),
    ),
    Contender("bare ORT session (best variant)", "bare", ("onnxruntime",), load_bare_session),
    Contender("openvino (default precision)", "peer", ("openvino", "tokenizers"), lambda s: _openvino(s, False)),
    Contender("openvino int8 (NNCF)", "peer", ("openvino", "nncf", "tokenizers"), lambda s: _openvino(s, True)),
    Contender("ctranslate2 int8", "peer", ("ctranslate2", "tokenizers"), load_ctranslate2),
]
BY_NAME = {c.name: c for c in CONTENDERS}
QUICK = (
    "pytorch fp32",
    "pytorch int8 (dynamic)",
    "optimum ORT (default export)",
    "optimum ORT (onnxpipe's best file)",
    "onnxpipe fp32",
    "onnxpipe optimized",
    "onnxpipe int8",
    "bare ORT session (best variant)",
    "openvino (default precision)",
    "openvino int8 (NNCF)",
    "ctranslate2 int8",
)
