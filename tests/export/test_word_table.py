"""The word embedding table in int8 (export/word_table.py): the fused embedding node written out as its ops is the
same function, the int8 table shrinks the graph by the table's float bytes, and only rowwise takes it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphs import artifact_feeds, matmul_add
from graphs import run_graph as run
from onnxpipe.export.word_table import int8_rows, quantize_word_table
from tiny_models import CORPUS

LONG = "the plot is thin but the visuals are so inventive that I could not look away " * 12


def test_the_written_out_embedding_node_is_the_fused_one(artifact):
    """With the float table, the rewrite (Gather, position rows, token types, LayerNorm; the key lengths as a sum
    of the mask) answers as onnxruntime's fused EmbedLayerNormalization, in padded batches and past the limit."""
    src = artifact("bert", "single", optimize=True) / "model_optimized.onnx"
    fused = onnx.load(str(src))
    assert [n.op_type for n in fused.graph.node].count("EmbedLayerNormalization") == 1
    feeds = artifact_feeds(src.parent, [*sorted(set(CORPUS)), LONG, "a"], size=5)
    written = onnx.load(str(src))
    assert quantize_word_table(written, int8=False)["word_table"].startswith("float, a scale per row")
    assert "EmbedLayerNormalization" not in [n.op_type for n in written.graph.node]
    for a, b in zip(run(fused, feeds), run(written, feeds)):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)


def test_the_int8_table_holds_int8_rows_and_stays_near_float(artifact):
    """int8 rows with a scale each: the table's float bytes leave the graph (a quarter come back as int8),
    each row is within half a step of the float one, and the outputs stay near the fused graph's, the same alone
    as in a batch."""
    from onnx import numpy_helper

    src = artifact("bert", "single", optimize=True) / "model_optimized.onnx"
    fused = onnx.load(str(src))
    table = next(numpy_helper.to_array(i) for i in fused.graph.initializer if "word_embeddings" in i.name)
    q, scale = int8_rows(table)
    assert q.dtype == np.int8 and scale.shape == (len(table), 1)
    assert np.all(np.abs(q * scale - table) <= scale / 2 + 1e-7)
    model = onnx.load(str(src))
    quantize_word_table(model)
    arrays = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert not any(a.dtype == np.float32 and a.shape == table.shape for a in arrays.values())
    # The float table out, its int8 rows and scales in, and ten small nodes (a few hundred bytes each) for one.
    assert fused.ByteSize() - model.ByteSize() >= table.nbytes - q.nbytes - scale.nbytes - 2000
    texts = sorted(set(CORPUS))
    together = np.concatenate(run(model, artifact_feeds(src.parent, texts, size=len(texts))))
    alone = np.concatenate(run(model, artifact_feeds(src.parent, texts, size=1)))
    reference = np.concatenate(run(fused, artifact_feeds(src.parent, texts, size=len(texts))))
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-5)
    assert np.abs(together - reference).max() <= 0.05 * np.abs(reference).max()


def test_only_rowwise_takes_it_and_a_graph_without_the_node_says_so(artifact, tmp_path):
    from onnxpipe.export.quantize import quantize_graph

    src = artifact("bert", "single", optimize=True) / "model_optimized.onnx"
    with pytest.raises(ValueError, match="an int8 word table is for --quantize rowwise, not 'static'"):
        quantize_graph(src, tmp_path / "q.onnx", "static", word_table=True)
    recipe = quantize_graph(src, tmp_path / "r.onnx", "rowwise", alpha=None, word_table=True)
    assert recipe["word_table"].startswith("int8, a scale per row")
    plain = matmul_add(np.ones((4, 3), np.float32), np.zeros(3, np.float32))
    assert quantize_word_table(plain) == {"word_table": "float (0 fused embedding nodes, 1 expected)"}
