"""ModernBERT's long context: the position limit comes from its config (8,192 here, as the released models), and
truncation and NER's stride windows use it, with transformers' answer on texts past its local attention window
and past the limit itself (the NER model's config says 2,048, to keep the suite short)."""

from __future__ import annotations

import json

import pytest

import onnxpipe
from onnxpipe.export import export
from tiny_models import build_checkpoint

LIMIT = 8192
# The NER model's windows read the same config field at 2,048: two 8k windows through PyTorch and onnxruntime
# cost 83 s of suite time for the same code path.
NER_LIMIT = 2048


@pytest.fixture(scope="module")
def long_models(tmp_path_factory):
    """Tiny ModernBERT classifier and token classifier whose config and tokenizer say 8,192 positions (rotary
    positions: no table grows with it), exported fp32."""
    out = {}
    for head, limit in (("single", LIMIT), ("ner", NER_LIMIT)):
        folder = build_checkpoint(tmp_path_factory.mktemp(f"long-{head}"), "modernbert", head)
        for name, key in (("config.json", "max_position_embeddings"), ("tokenizer_config.json", "model_max_length")):
            data = json.loads((folder / name).read_text())
            data[key] = limit
            (folder / name).write_text(json.dumps(data))
        task = "token-classification" if head == "ner" else "text-classification"
        out[head] = folder, export(folder, tmp_path_factory.mktemp(f"long-art-{head}") / "a", task)
    return out


def words(n: int) -> str:
    vocab = ["the", "film", "is", "great", "awful", "service", "food", "London", "Paris", "Ada"]
    return " ".join(vocab[(i * 7) % len(vocab)] for i in range(n))


def test_limit_and_truncation_follow_the_config(long_models):
    from transformers import AutoTokenizer

    folder, path = long_models["single"]
    pipe = onnxpipe.pipeline(model=path)
    assert pipe.artifact.max_length == LIMIT == pipe.token_limit
    text = words(9000)
    ours = pipe.encode([text])[0].ids
    theirs = AutoTokenizer.from_pretrained(folder)(text, truncation=True, max_length=LIMIT)["input_ids"]
    assert len(ours) == LIMIT and ours == theirs


@pytest.mark.parametrize("n", [40, 1500, 9000])  # past the local window (16 here), long, past the limit
def test_long_text_classification_matches_transformers(long_models, n):
    from transformers import pipeline

    folder, path = long_models["single"]
    theirs = pipeline("text-classification", model=str(folder), device="cpu", truncation=True, max_length=LIMIT)
    expected = theirs(words(n), top_k=None)
    got = onnxpipe.pipeline(model=path)(words(n), top_k=None)
    assert [d["label"] for d in got] == [d["label"] for d in expected]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(got, expected)) <= 1e-5


def test_ner_stride_windows_over_the_limit_match_transformers(long_models):
    from transformers import pipeline

    folder, path = long_models["ner"]
    assert onnxpipe.load_artifact(path).max_length == NER_LIMIT  # from the config
    text = words(2300)  # two windows of the 2,048-token limit, 256 overlapping
    theirs = pipeline("token-classification", model=str(folder), device="cpu")
    expected = theirs(text, stride=256, aggregation_strategy="first")
    got = onnxpipe.pipeline(model=path)(text, stride=256, aggregation_strategy="first")
    assert len(got) == len(expected) > 0
    for g, e in zip(got, expected):
        assert (g["entity_group"], g["start"], g["end"], g["word"]) == (
            e["entity_group"],
            e["start"],
            e["end"],
            e["word"],
        )
        assert abs(g["score"] - float(e["score"])) <= 1e-5
    assert max(g["end"] for g in got) > len(words(2100))  # the second window's entities are there
