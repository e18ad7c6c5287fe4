"""The write stage: the manifest that describes the variants, the default variant chosen, and the artifact moved
into place as one step. Everything is built in a temporary folder beside OUTDIR (:func:`partial_folder`) and
moved into place only after every variant has been checked against PyTorch, so a failed export never leaves a
half-written artifact and never destroys a previous one."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from onnxpipe.artifact import VARIANT_PREFERENCE
from onnxpipe.manifest import EmbeddingInfo, Manifest, ModelConfig, TokenizerInfo
from onnxpipe.tasks import TaskSpec

from .errors import ExportError
from .graph import onnx_opset
from .load import Loaded
from .validate import BATCH_MAX_GAP
from .variants import FILES


def check_outdir(outdir: str | Path, overwrite: bool) -> Path:
    """``outdir`` resolved; a non-empty one is kept unless ``overwrite`` (it is replaced only at the end)."""
    out = Path(outdir).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ExportError(
            f"{out} already exists and is not empty: choose another folder or pass overwrite=True (--overwrite)"
        )
    return out


def partial_folder(outdir: Path) -> Path:
    """A fresh temporary folder beside ``outdir`` (same file system: the final move is a rename)."""
    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.partial-", dir=outdir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the artifact is meant to be shared
    return tmp


def describe(
    folder: Path, spec: TaskSpec, loaded: Loaded, variants: dict[str, dict], source: dict | None = None
) -> Manifest:
    """The manifest of the artifact in ``folder``: the checkpoint's labels and tokenizer, its variants and the
    default among them; ``source`` replaces the account of where the checkpoint came from."""
    config, tokenizer = loaded.model.config, loaded.tokenizer
    return Manifest(
        task=spec.name,
        head=spec.head.name,
        source=source or loaded.source,
        model_type=config.model_type,
        config=ModelConfig(
            id2label={int(k): v for k, v in config.id2label.items()},
            label2id={k: int(v) for k, v in config.label2id.items()},
            problem_type=config.problem_type,
            num_labels=config.num_labels,
            return_all_scores=getattr(config, "return_all_scores", None),
        ),
        tokenizer=TokenizerInfo(
            max_length=loaded.max_length,
            pad_token=tokenizer.pad_token,
            pad_id=tokenizer.pad_token_id,
            mask_token=tokenizer.mask_token,
            mask_id=tokenizer.mask_token_id,
            unk_token=tokenizer.unk_token,
            cls_token=tokenizer.cls_token,
            padding_side=tokenizer.padding_side,
            clean_up_tokenization_spaces=bool(tokenizer.clean_up_tokenization_spaces),
        ),
        embedding=EmbeddingInfo.from_dict(loaded.embedding) if loaded.embedding else None,
        opset=onnx_opset(folder / FILES["fp32"]),
        variants=variants,
        default_variant=choose_default(variants),
    )


def choose_default(variants: dict[str, dict]) -> str:
    """The fastest variant whose scores do not move with the batch (a server's batches must not change
    anyone's answer): int8 when its recipe is batch-invariant, else fused fp32, else fp32."""
    for name in VARIANT_PREFERENCE:
        v = variants.get(name)
        if v is None:
            continue
        invariance = v["validation"]["batch_invariance"]
        recipe = v.get("quantization", {})
        recipe_ok = recipe.get("batch_invariant", True) and recipe.get("auto", True)
        if recipe_ok and invariance["max_score_gap"] <= BATCH_MAX_GAP and invariance["label_flips"] == 0:
            return name
    return "fp32"


def replace_folder(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; an existing ``dst`` is removed only once ``src`` is in place."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{src.name[-8:]}")
        dst.rename(old)
    src.rename(dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
