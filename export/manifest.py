"""Write the artifact's manifest, ``onnxpipe.json``: what the runtime reads and what a person audits."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from onnxpipe.artifact import MANIFEST, sha256_file
from onnxpipe.manifest import Manifest
import contextlib

_LIBRARIES = ("onnxpipe", "torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "tokenizers")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def folder_hash(folder: Path, patterns=("*.json", "*.safetensors", "*.bin", "*.txt", "*.model")) -> str:
    """One sha256 over a local checkpoint's weights, config and tokenizer files (names and contents)."""
    import hashlib

    h = hashlib.sha256()
    files = sorted({p for pat in patterns for p in folder.glob(pat) if p.is_file()})
    for p in files:
        h.update(p.name.encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def write_manifest(folder: Path, manifest: Manifest) -> Manifest:
    """``manifest`` with the folder's file hashes, the time and the library versions, written as onnxpipe.json."""
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = dataclasses.replace(
        manifest,
        files=files,
        versions=library_versions(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    text = json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False) + "\n"
    (folder / MANIFEST).write_text(text, encoding="utf-8")
    return manifest
