"""The contenders: every way a user could run the same checkpoint on a CPU, each loaded the same way.

A contender is data (:class:`~onnxpipe.bench.runner.Contender`): name, group, the packages it needs, a
loader returning a :class:`~onnxpipe.bench.runner.Runner`, a cold-start script. The peers (OpenVINO,
CTranslate2), each run as its users run it for each pass, are loaded by :mod:`onnxpipe.bench.peers`.
"""

from __future__ import annotations

from collections.abc import Callable

from onnxpipe.artifact import graph_size
from onnxpipe.graph_nodes import node_counts
from onnxpipe.session import Session

from .peers import load_ctranslate2, load_openvino
from .runner import Contender, Runner, Spec, dir_size, onnxpipe_runner, probs

__all__ = ["BY_NAME", "CONTENDERS", "Contender", "Runner", "Spec", "load_ctranslate2"]


def _hf_runner(model, tokenizer, spec: Spec, size: int | None, factory=None) -> Runner:
    if factory is None:
        from transformers import pipeline

        factory = pipeline
    pipe = factory("text-classification", model=model, tokenizer=tokenizer, truncation=True, max_length=spec.max_length)
    return Runner(
        call_one=lambda t: pipe(t),
        predict=lambda texts, bs: probs(pipe(texts, top_k=None, batch_size=bs), spec.id2label),
        size_bytes=size,
    )


# -- PyTorch ---------------------------------------------------------------------------------------


def load_torch_fp32(spec: Spec) -> Runner:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(spec.threads)
    model = AutoModelForSequenceClassification.from_pretrained(spec.checkpoint).eval()
    return _hf_runner(
        model, AutoTokenizer.from_pretrained(spec.checkpoint), spec, dir_size(spec.checkpoint, "*.safetensors")
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
        graph_size(spec.artifact / file_name),
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


def onnxpipe_loader(variant: str) -> Callable[[Spec], Runner]:
    def load(spec: Spec) -> Runner:
        import onnxpipe

        pipe = onnxpipe.pipeline(model=spec.artifact, variant=variant, threads=spec.threads)
        runner = onnxpipe_runner(pipe, spec)
        nodes, in_float = node_counts(pipe.model_path)  # what batch 1 pays per node; int8's float fallbacks
        runner.note = f"{variant}: {pipe.model_path.name}, {nodes} nodes, {in_float} weight products left in float"
        return runner

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

    runner = onnxpipe_runner(pipe, spec)
    runner.call_one = call_one
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
    Contender("openvino (default precision)", "peer", ("openvino", "tokenizers"), lambda s: load_openvino(s, False)),
    Contender("openvino int8 (NNCF)", "peer", ("openvino", "nncf", "tokenizers"), lambda s: load_openvino(s, True)),
    Contender("ctranslate2 int8", "peer", ("ctranslate2", "tokenizers"), load_ctranslate2),
]
BY_NAME = {c.name: c for c in CONTENDERS}
