"""Issue 19: the last layer computes only the row a classifier head reads; the answer is transformers' answer,
with and without the cut, on BERT, RoBERTa and ALBERT (whose layers share one set of weights)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import onnxpipe
from onnxpipe.export import export
from onnxpipe.export.last_row import cut_last_layer

TEXTS = [
    "a gripping, beautifully shot film",
    "boring",
    "the plot is thin but the visuals are so inventive that I could not look away " * 3,
    "word " * 200,  # past the position limit: truncated
]
PAIRS = [{"text": "is it good?", "text_pair": "a fine film with a weak ending"}, {"text": "q", "text_pair": "a"}]


@pytest.fixture(scope="module")
def cut_and_whole(checkpoint, tmp_path_factory):
    cache = {}

    def make(arch: str):
        if arch not in cache:
            folder = tmp_path_factory.mktemp(f"rows-{arch}")
            ckpt = checkpoint(arch, "single")
            cache[arch] = tuple(
                export(ckpt, folder / name, optimize=True, one_row=one)
                for name, one in (("cut", True), ("whole", False))
            )
        return cache[arch]

    return make


@pytest.mark.parametrize("arch", ["bert", "roberta", "albert"])
def test_cut_graph_gives_transformers_answer(arch, checkpoint, cut_and_whole):
    from transformers import pipeline

    cut, whole = cut_and_whole(arch)
    recorded = onnxpipe.load_artifact(cut).variants["optimized"]["last_layer"]
    assert recorded["applied"] is True
    assert "last_layer" not in onnxpipe.load_artifact(whole).variants["optimized"]
    ops = [n.op_type for n in onnx.load(str(cut / "model_optimized.onnx")).graph.node]
    whole_ops = [n.op_type for n in onnx.load(str(whole / "model_optimized.onnx")).graph.node]
    assert ops.count("MultiHeadAttention") == 1 and ops.count("Attention") == whole_ops.count("Attention") - 1

    ours = onnxpipe.pipeline(model=cut, variant="optimized")
    theirs = pipeline("text-classification", model=str(checkpoint(arch, "single")), device="cpu")
    theirs.tokenizer.model_max_length = ours.artifact.max_length
    without = onnxpipe.pipeline(model=whole, variant="optimized")
    for inputs in (TEXTS, PAIRS):
        expected = theirs(inputs, top_k=None, truncation=True)
        for got in (ours(inputs, top_k=None), without(inputs, top_k=None)):
            for g, e in zip(got, expected):
                assert [d["label"] for d in g] == [d["label"] for d in e]
                assert max(abs(a["score"] - b["score"]) for a, b in zip(g, e)) <= 1e-5
    # Each text alone and all in one padded batch: the same answer (the cut row sees the same keys and mask).
    alone = [ours(t, top_k=None) for t in TEXTS]
    for a, b in zip(alone, ours(TEXTS, top_k=None)):
        assert max(abs(x["score"] - y["score"]) for x, y in zip(a, b)) <= 1e-5


def test_cut_graph_quantizes_and_explain_says_so(checkpoint, tmp_path, capsys):
    from onnxpipe.explain import explain

    out = export(checkpoint("bert", "single"), tmp_path / "q", optimize=True, quantize="int8")
    art = onnxpipe.load_artifact(out)
    assert art.variants["int8"]["last_layer"]["applied"] and art.variants["int8"]["quantization"]["mode"] == "static"
    inv = art.variants["int8"]["validation"]["batch_invariance"]
    assert inv == {"max_score_gap": 0.0, "label_flips": 0} or inv["max_score_gap"] <= 1e-4
    explain(onnxpipe.pipeline(model=out, variant="int8"), "a fine film", load_seconds=0.1)
    assert "last layer: row 0 only" in capsys.readouterr().out


def test_heads_that_read_every_row_are_left_whole(artifact):
    """Token classification and feature extraction read every position: no cut attempted; and the pass itself
    refuses a graph whose last layer is an output."""
    for head in ("ner", "base"):
        assert "last_layer" not in onnxpipe.load_artifact(artifact("bert", head, optimize=True)).variants["optimized"]
    model = onnx.load(str(artifact("bert", "base", optimize=True) / "model_optimized.onnx"))
    before = [n.op_type for n in model.graph.node]
    done = cut_last_layer(model)
    assert done["applied"] is False and "graph output" in done["why"]
    assert [n.op_type for n in model.graph.node] == before  # refused: nothing changed


def test_the_cut_matches_the_whole_graph_row_for_row(cut_and_whole):
    """The same logits from the raw sessions, within float rounding, on a padded batch."""
    from onnxpipe.session import Session
    from onnxpipe.tokenize import TextEncoder

    cut, whole = cut_and_whole("bert")
    art = onnxpipe.load_artifact(cut)
    enc = TextEncoder(cut / "tokenizer.json", art.max_length, art.pad_id, art.pad_token)
    feed = enc.collate(enc.encode(TEXTS))
    a = Session(cut / "model_optimized.onnx").run(feed)["logits"]
    b = Session(whole / "model_optimized.onnx").run(feed)["logits"]
    assert a.shape == b.shape and np.max(np.abs(a - b)) <= 1e-5
