"""The artifact folder: its manifest (``onnxpipe.json``), its files and their hashes.

An artifact is written by ``onnxpipe.export`` and read here with ``json`` and ``hashlib`` only, so
the runtime never needs transformers to know a model's labels, head type or position limit.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputValueError, OnnxPipeError
from .manifest import FORMAT_VERSION, Manifest

MANIFEST = "onnxpipe.json"
CACHE_ENV = "ONNXPIPE_CACHE"
# The variant the runtime prefers when the caller names none and the manifest names no default.
VARIANT_PREFERENCE = ("int8", "optimized", "fp32")


def cache_dir() -> Path:
    """Where built default models and per-machine variant choices are kept."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "onnxpipe").expanduser()


# An ONNX graph's weights live in a file beside it, ``model.onnx.data`` (export/external.py): onnxruntime maps that
# file into memory, where weights inside the graph's protobuf are parsed and then copied, so a session's peak memory is
# about the graph's size lower (the sentiment default's int8 pipeline: 174 -> 96 MiB at its first answer).
WEIGHTS_SUFFIX = ".data"


def weights_file(graph: str | Path) -> Path:
    """The file holding ``graph``'s weights (it may not exist: artifacts written before it hold them inside)."""
    graph = Path(graph)
    return graph.with_name(graph.name + WEIGHTS_SUFFIX)


def graph_size(graph: str | Path) -> int:
    """Bytes of an ONNX graph and of its weights file, when it has one."""
    weights = weights_file(graph)
    return Path(graph).stat().st_size + (weights.stat().st_size if weights.is_file() else 0)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Artifact:
    """What the runtime needs to know about an exported model, read from its manifest."""

    path: Path
    manifest: Manifest = field(repr=False)

    @property
    def task(self) -> str:
        return self.manifest.task

    @property
    def id2label(self) -> dict[int, str]:
        return self.manifest.config.id2label

    @property
    def problem_type(self) -> str | None:
        return self.manifest.config.problem_type

    @property
    def max_length(self) -> int:
        return self.manifest.tokenizer.max_length

    @property
    def pad_id(self) -> int | None:  # None: the tokenizer has no pad token, so inputs run one at a time
        return self.manifest.tokenizer.pad_id

    @property
    def pad_token(self) -> str | None:
        return self.manifest.tokenizer.pad_token

    @property
    def variants(self) -> dict[str, dict[str, Any]]:
        return self.manifest.variants

    @property
    def default_variant(self) -> str:
        return self.manifest.default_variant or next(v for v in VARIANT_PREFERENCE if v in self.variants)

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    def variant_file(self, variant: str | None) -> Path:
        """The ONNX file of ``variant`` (the artifact's default when None)."""
        name = variant or self.default_variant
        if name not in self.variants:
            raise InputValueError(
                f"unknown variant {name!r} for {self.path}: this artifact has {', '.join(sorted(self.variants))}"
            )
        return self.path / str(self.variants[name]["file"])

    def graph_files(self, graph: Path) -> list[str]:
        """The files a variant's graph loads from: the graph, and its weights file when the manifest lists one."""
        weights = weights_file(graph).name
        return [graph.name, *([weights] if weights in self.manifest.files else [])]

    def require(self, *names: str) -> None:
        """Check that the named files exist (a missing weights file would otherwise surface as onnxruntime's error)."""
        for name in names:
            p = self.path / name
            if not p.is_file():
                raise OnnxPipeError(f"{p} is missing: the artifact is incomplete; export it again")

    def verify(self, *names: str) -> None:
        """Check that the named files exist and match the manifest's sha256."""
        hashes = self.manifest.files
        self.require(*names)
        for name in names:
            p = self.path / name
            if name not in hashes:
                raise OnnxPipeError(f"{p} is not listed in {MANIFEST}: export the artifact again")
            if sha256_file(p) != hashes[name]:
                raise OnnxPipeError(
                    f"{p} does not match the sha256 in {MANIFEST}: the file changed after "
                    "export (corrupt copy or edited by hand); export the artifact again"
                )


def load_artifact(path: str | Path) -> Artifact:
    """Read and check an artifact folder's manifest; file hashes are checked by :meth:`Artifact.verify`."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"model must be an artifact folder path (str or Path), got {type(path).__name__}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise OnnxPipeError(
            f"{root} is not a folder. Pass the folder written by `onnxpipe export`; a hub id "
            f"or checkpoint must be exported first: onnxpipe export {path} OUTDIR"
        )
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise OnnxPipeError(
            f"{mpath} is missing: {root} is not an onnxpipe artifact (export one with `onnxpipe export SOURCE {root}`)"
        )
    try:
        m = json.loads(mpath.read_text(encoding="utf-8"))
        if m.get("format") != FORMAT_VERSION:
            raise OnnxPipeError(
                f"{mpath} has format {m.get('format')!r}; this onnxpipe reads format "
                f"{FORMAT_VERSION}: export the artifact again with this version"
            )
        artifact = Artifact(root, Manifest.from_dict(m))
        artifact.variant_file(None)  # a default variant the manifest names must be one it has
        return artifact
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, StopIteration, AttributeError) as e:
        raise OnnxPipeError(
            f"{mpath} is not a valid onnxpipe manifest ({type(e).__name__}: {e}); export the artifact again"
        ) from e
