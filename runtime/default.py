"""The embedded default model: where it is cached and how it is built on first use.

The default sentiment model is built offline from a PyPI-packaged encoder plus a small delta kept
in the repo (``onnxpipe.export.default_model``); the default embeddings model is that packaged encoder
itself (all-MiniLM-L6-v2). Building needs the export extra, using a built one does not.
"""

from __future__ import annotations

import sys
from pathlib import Path
from collections.abc import Callable

from .artifact import MANIFEST, cache_dir, sha256_file
from .errors import INSTALL_EXPORT, InputValueError, OnnxPipeError
from .tasks import DEFAULT_TASK, SPECS

# task → its embedded default model, from the task registry
DEFAULT_MODELS = {spec.name: spec.default_model for spec in SPECS if spec.default_model}
# default model → its builder in onnxpipe.export.default_model.build (tests/test_registry.py: one for every
# default_model the registry names)
BUILDERS = {"minilm-sst2": "build_default", "all-minilm-l6-v2": "build_default_embeddings"}


def default_artifact_dir(task: str = DEFAULT_TASK) -> Path:
    """The cache folder of ``task``'s default model; keyed by the delta's hash and the build recipe, so a
    new delta or recipe rebuilds."""
    if task not in DEFAULT_MODELS:
        raise InputValueError(
            f"no default model for task {task!r}: pass model=ARTIFACT_DIR "
            f"(defaults exist for {', '.join(DEFAULT_MODELS)})"
        )
    # The delta folder ships with the package; its __init__ imports nothing heavy.
    import hashlib

    from onnxpipe.export.default_model import BUILD_RECIPE, DELTA_DIR, EMBEDDINGS_RECIPE

    if DEFAULT_MODELS[task] == "minilm-sst2":
        adapter = DELTA_DIR / "adapter_model.safetensors"
        if not adapter.is_file():
            raise OnnxPipeError(f"{adapter} is missing: this onnxpipe install is incomplete; reinstall it")
        key = hashlib.sha256(f"{sha256_file(adapter)} {BUILD_RECIPE}".encode()).hexdigest()[:12]
    else:
        key = hashlib.sha256(EMBEDDINGS_RECIPE.encode()).hexdigest()[:12]
    return cache_dir() / f"{DEFAULT_MODELS[task]}-{key}"


def ensure_default(task: str = DEFAULT_TASK, log: Callable[[str], None] | None = None) -> Path:
    """Return the default model's artifact folder, building it first if the cache has none."""
    path = default_artifact_dir(task)
    if (path / MANIFEST).is_file():
        return path
    log = log or (lambda msg: print(f"onnxpipe: {msg}", file=sys.stderr, flush=True))
    try:
        import onnxpipe.export.default_model.build as builders  # the whole path: a missing extra fails here
    except ImportError as e:
        raise OnnxPipeError(
            f"the default {task} model is not built yet ({path}) and building it needs the export extra "
            f"(missing: {e.name}). Install it with:  {INSTALL_EXPORT}  "
            "or pass model=ARTIFACT_DIR to use an artifact you exported elsewhere"
        ) from e
    log(f"building the default {task} model into {path} (once; later calls reuse it)")
    getattr(builders, BUILDERS[DEFAULT_MODELS[task]])(path, log=log)
    return path
