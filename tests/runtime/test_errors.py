"""Bad input and broken artifacts: a clear error naming the problem, never a crash or a wrong answer."""

from __future__ import annotations

import json
import shutil

import pytest

import onnxpipe
from onnxpipe import OnnxPipeError


@pytest.fixture(scope="module")
def pipe(artifact):
    return onnxpipe.pipeline(model=artifact(), variant="fp32")


@pytest.fixture
def copy(artifact, tmp_path):
    """A private copy of the tiny artifact to damage."""
    dst = tmp_path / "artifact"
    shutil.copytree(artifact(), dst)
    return dst


@pytest.mark.parametrize(
    "bad, error, words",
    [
        (123, TypeError, "a {'text', 'text_pair'} dict or a list of them, got int"),
        (None, TypeError, "got NoneType"),
        (b"bytes", TypeError, "got bytes"),
        (["ok", 5], TypeError, "inputs[1] is a int"),
        ([["a", "b"]], ValueError, 'inputs[0] is a list: to send a text pair, send a dict {"text"'),
        ({"text": "a", "pair": "b"}, ValueError, "must be a dict with 'text' and optionally 'text_pair'"),
        ({"text": "a", "text_pair": 3}, TypeError, "inputs['text_pair'] is a int, not a str"),
        (["ok", "caf\udce9"], ValueError, "inputs[1] is not valid Unicode text: surrogates not allowed '\\udce9'"),
        ("\ud800", ValueError, "inputs[0] is not valid Unicode text"),
    ],
)
def test_bad_inputs(pipe, bad, error, words):
    with pytest.raises(error, match=None) as e:
        pipe(bad)
    assert words in str(e.value)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"top_k": -1}, "top_k must be a non-negative int"),
        ({"top_k": "2"}, "top_k must be a non-negative int"),
        ({"max_length": 0}, "max_length must be a positive int"),
        ({"truncation": "only_third", "max_length": 8}, "truncation must be a bool or one of"),
        ({"truncation": "only_thrid"}, "truncation must be a bool or one of"),  # checked without max_length too
        ({"truncation": 1}, "truncation must be a bool or one of"),
        ({"function_to_apply": "relu"}, "function_to_apply must be one of"),
        ({"batch_size": 0}, "batch_size must be a positive int"),
    ],
)
def test_bad_parameters(pipe, kwargs, words):
    with pytest.raises(ValueError) as e:
        pipe("text", **kwargs)
    assert words in str(e.value)


def test_unknown_parameter(pipe):
    with pytest.raises(onnxpipe.InputTypeError, match="unexpected keyword argument 'topk'"):  # a TypeError too
        pipe("text", topk=2)


def test_keywords_are_bound_only_when_a_call_has_some_or_a_parameter_is_required():
    """No keywords skip the signature bind (the batch-1 path's cost) only where every parameter has a default; a
    task whose parameters include a required one is still told so by name, as a keyword error."""
    from onnxpipe.inputs import check_keywords

    class Task:
        def optional(self, top_k=None): ...

        def required(self, label, top_k=None): ...

    check_keywords(Task.optional, {})
    with pytest.raises(onnxpipe.InputTypeError, match="missing a required argument: 'label'"):
        check_keywords(Task.required, {})
    with pytest.raises(onnxpipe.InputTypeError, match="unexpected keyword argument 'topk'"):
        check_keywords(Task.optional, {"topk": 1})


def test_unknown_task_and_variant(artifact):
    with pytest.raises(ValueError, match="unsupported task 'summarization'"):
        onnxpipe.pipeline("summarization", model=artifact())
    with pytest.raises(ValueError, match="unknown variant 'fp16'.*fp32"):
        onnxpipe.pipeline(model=artifact(), variant="fp16")
    with pytest.raises(ValueError, match="pass a task, a model, or both"):
        onnxpipe.pipeline()
    with pytest.raises(TypeError, match="model must be an artifact folder path"):
        onnxpipe.pipeline(model=42)


def test_not_an_artifact(tmp_path, checkpoint):
    with pytest.raises(OnnxPipeError, match="is not a folder.*onnxpipe export"):
        onnxpipe.pipeline(model=tmp_path / "nowhere")
    with pytest.raises(OnnxPipeError, match="onnxpipe.json is missing"):
        onnxpipe.pipeline(model=checkpoint())  # a PyTorch checkpoint, not exported


def test_missing_model_file(copy):
    (copy / "model.onnx").unlink()
    with pytest.raises(OnnxPipeError, match="model.onnx is missing"):
        onnxpipe.pipeline(model=copy, variant="fp32")


def test_missing_tokenizer(copy):
    (copy / "tokenizer.json").unlink()
    with pytest.raises(OnnxPipeError, match="tokenizer.json is missing"):
        onnxpipe.pipeline(model=copy)


def test_tampered_file_fails_the_hash_check(copy):
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(OnnxPipeError, match="does not match the sha256"):
        onnxpipe.pipeline(model=copy, variant="fp32")


def test_corrupt_onnx_is_reported_as_such(copy):
    (copy / "model.onnx").write_bytes(b"this is not a protobuf")
    with pytest.raises(OnnxPipeError, match="onnxruntime cannot load .*model.onnx.*corrupt"):
        onnxpipe.pipeline(model=copy, variant="fp32", verify=False)


def test_missing_or_damaged_weights_file(copy):
    """A graph's weights live beside it (model.onnx.data): missing, it is named even unverified; edited, the hash
    check refuses it; cut short and unverified, onnxruntime's out-of-bounds read is reported, not a crash."""
    weights = copy / "model.onnx.data"
    data = weights.read_bytes()
    weights.unlink()
    for verify in (True, False):
        with pytest.raises(OnnxPipeError, match="model.onnx.data is missing: the artifact is incomplete"):
            onnxpipe.pipeline(model=copy, variant="fp32", verify=verify)
    weights.write_bytes(data[:-10] + bytes(b ^ 0xFF for b in data[-10:]))
    with pytest.raises(OnnxPipeError, match="model.onnx.data does not match the sha256"):
        onnxpipe.pipeline(model=copy, variant="fp32")
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxPipeError, match="onnxruntime cannot load .*model.onnx.*out of bounds"):
        onnxpipe.pipeline(model=copy, variant="fp32", verify=False)


def test_a_graph_copied_without_its_weights_file_says_so(copy, tmp_path):
    from onnxpipe.session import Session

    lone = tmp_path / "lone" / "model.onnx"
    lone.parent.mkdir()
    shutil.copy(copy / "model.onnx", lone)
    with pytest.raises(OnnxPipeError, match="model.onnx.data is missing: model.onnx keeps its weights in that file"):
        Session(lone)


def test_an_artifact_with_weights_inside_its_graph_still_loads(copy, artifact):
    """Artifacts written before the weights file (older caches) hold the weights in the graph: same answers."""
    import onnx

    from onnxpipe.artifact import sha256_file

    text = "an artifact from before the weights file"
    expected = onnxpipe.pipeline(model=artifact(), variant="fp32")(text, top_k=None)
    onnx.save(onnx.load(str(copy / "model.onnx")), str(copy / "model.onnx"))  # every tensor back inside
    (copy / "model.onnx.data").unlink()
    manifest = json.loads((copy / "onnxpipe.json").read_text())
    del manifest["files"]["model.onnx.data"]
    manifest["files"]["model.onnx"] = sha256_file(copy / "model.onnx")
    (copy / "onnxpipe.json").write_text(json.dumps(manifest))
    assert onnxpipe.pipeline(model=copy, variant="fp32")(text, top_k=None) == expected


def test_corrupt_tokenizer_is_reported_as_such(copy):
    (copy / "tokenizer.json").write_text("{not json")
    with pytest.raises(OnnxPipeError, match="not a valid tokenizer.json"):
        onnxpipe.pipeline(model=copy, verify=False)


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda m: "{broken", "not a valid onnxpipe manifest"),
        (lambda m: json.dumps({**m, "format": 99}), "format 99"),
        (lambda m: json.dumps({k: v for k, v in m.items() if k != "variants"}), "not a valid onnxpipe manifest"),
    ],
)
def test_bad_manifest(copy, damage, words):
    path = copy / "onnxpipe.json"
    path.write_text(damage(json.loads(path.read_text())))
    with pytest.raises(OnnxPipeError, match=words):
        onnxpipe.pipeline(model=copy)


def test_task_mismatch(artifact):
    with pytest.raises(
        ValueError,
        match="does not match the artifact's task 'text-classification'.*"
        "sequence-classification graph cannot run feature-extraction",
    ):
        onnxpipe.pipeline("feature-extraction", model=artifact())


def test_graph_with_inputs_the_tokenizer_cannot_feed(copy):
    """A graph that wants another input (here: input_ids renamed) is refused at load, not at call."""
    import onnx

    from onnxpipe.artifact import sha256_file

    model = onnx.load(str(copy / "model.onnx"))
    for node in model.graph.node:
        node.input[:] = ["pixel_values" if i == "input_ids" else i for i in node.input]
    model.graph.input[0].name = "pixel_values"
    onnx.save(model, str(copy / "model.onnx"))
    manifest = json.loads((copy / "onnxpipe.json").read_text())
    manifest["files"]["model.onnx"] = sha256_file(copy / "model.onnx")
    (copy / "onnxpipe.json").write_text(json.dumps(manifest))
    with pytest.raises(OnnxPipeError, match=r"takes inputs \['pixel_values'\].*not a supported encoder graph"):
        onnxpipe.pipeline(model=copy, variant="fp32")


def test_parameters_are_typed_once_in_read(pipe):
    """read parses a call's keywords once into the task's frozen dataclasses; TEI's truncation_direction (the
    server's) is a checked field of them, and the features are cut from that end."""
    from tokenizers import Tokenizer

    from onnxpipe.inputs import Pre, Truncation, TruncatedPre

    plan = pipe.read("good film " * 20, top_k=2, truncation="only_first", max_length=8)
    assert plan.pre == TruncatedPre(truncation=Truncation(8, "only_first"))
    assert (plan.post.top_k, plan.post.legacy) == (2, False)
    with pytest.raises(AttributeError):  # frozen: a stage cannot change the call's parameters
        plan.post.top_k = 3  # type: ignore[misc]
    plan.pre = plan.pre.cut_from("left")
    assert plan.pre.truncation == Truncation(8, "only_first", "left")
    tok = Tokenizer.from_file(str(pipe.artifact.path / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(8, direction="left")
    assert pipe.featurize(plan).features[0].encoding.ids == tok.encode("good film " * 20).ids
    with pytest.raises(ValueError, match="truncation direction must be one of \\('right', 'left'\\), got 'middle'"):
        plan.pre.cut_from("middle")
    with pytest.raises(ValueError, match="truncation_direction is not an option of this task"):
        Pre().cut_from("left")  # question answering's windows, zero-shot's hypotheses: no end to cut from
