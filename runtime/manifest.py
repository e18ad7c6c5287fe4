"""The artifact's manifest, ``onnxpipe.json``, as frozen dataclasses: written by the exporter and read by the
runtime through the same ``to_dict`` / ``from_dict``, so the two never disagree on a field or its default.

Older manifests (format 1, written before these types) load: every field added since has a default, and
keys this version does not know are kept in ``extra`` and written back as they were.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelConfig:
    """The checkpoint's labels and how its scores are read."""

    id2label: dict[int, str] = field(default_factory=dict)
    label2id: dict[str, int] = field(default_factory=dict)
    problem_type: str | None = None
    num_labels: int = 0
    return_all_scores: bool | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        id2label = {int(k): str(v) for k, v in d.get("id2label", {}).items()}
        label2id = {str(k): int(v) for k, v in (d.get("label2id") or {v: k for k, v in id2label.items()}).items()}
        return cls(
            id2label,
            label2id,
            d.get("problem_type"),
            int(d.get("num_labels", len(id2label))),
            d.get("return_all_scores"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "id2label": {str(k): v for k, v in self.id2label.items()}}


@dataclass(frozen=True)
class TokenizerInfo:
    """What the runtime needs besides tokenizer.json: the position limit and the special tokens."""

    max_length: int
    pad_token: str | None = None  # None: the tokenizer has no pad token; inputs then run one at a time
    pad_id: int | None = None
    file: str = "tokenizer.json"
    mask_token: str | None = None
    mask_id: int | None = None
    unk_token: str | None = None
    cls_token: str | None = None
    padding_side: str = "right"
    clean_up_tokenization_spaces: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TokenizerInfo:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        values["max_length"] = int(values["max_length"])
        for key in ("pad_id", "mask_id"):
            if values.get(key) is not None:
                values[key] = int(values[key])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        order = (
            "file",
            "max_length",
            "pad_token",
            "pad_id",
            "mask_token",
            "mask_id",
            "unk_token",
            "cls_token",
            "padding_side",
            "clean_up_tokenization_spaces",
        )
        values = asdict(self)
        return {k: values[k] for k in order}


@dataclass(frozen=True)
class EmbeddingInfo:
    """How a sentence-transformers model pools, normalises and prompts (read from its modules.json)."""

    pooling: list[str] = field(default_factory=lambda: ["mean"])
    normalize: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    include_prompt: bool = True
    max_seq_length: int | None = None
    dimension: int | None = None
    source: str = "default"  # written as "from": where these settings were read
    matryoshka_dims: list[int] = field(default_factory=list)  # sizes it was trained to be cut to (export's word)
    # int8/uint8 ranges ([mins, maxs]) from the export's calibration corpus, keyed "unit:<dims>" / "raw:<dims>"
    int8_ranges: dict[str, list[list[float]]] = field(default_factory=dict)
    calibration: str | None = None  # the corpus the ranges were computed on

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmbeddingInfo:
        known = {f.name for f in fields(cls)} - {"source"}
        return cls(**{k: v for k, v in d.items() if k in known}, source=d.get("from", "default"))

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["from"] = values.pop("source")
        return values


@dataclass(frozen=True)
class Manifest:
    task: str
    config: ModelConfig
    tokenizer: TokenizerInfo
    variants: dict[str, dict[str, Any]]  # name → {"file", "validation", ...}: each variant's own figures
    head: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    model_type: str | None = None
    embedding: EmbeddingInfo | None = None
    opset: int | None = None
    default_variant: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # name → sha256
    created: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    format: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        known = {f.name for f in fields(cls)}
        embedding = d.get("embedding")
        return cls(
            task=d["task"],
            config=ModelConfig.from_dict(d["config"]),
            tokenizer=TokenizerInfo.from_dict(d["tokenizer"]),
            variants=dict(d["variants"]),
            head=d.get("head"),
            source=dict(d.get("source") or {}),
            model_type=d.get("model_type"),
            embedding=EmbeddingInfo.from_dict(embedding) if embedding else None,
            opset=d.get("opset"),
            default_variant=d.get("default_variant"),
            files=dict(d.get("files") or {}),
            created=d.get("created"),
            versions=dict(d.get("versions") or {}),
            format=d.get("format", FORMAT_VERSION),
            extra={k: v for k, v in d.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": self.format,
            "task": self.task,
            "head": self.head,
            "source": self.source,
            "model_type": self.model_type,
            "config": self.config.to_dict(),
            "tokenizer": self.tokenizer.to_dict(),
        }
        if self.embedding is not None:
            out["embedding"] = self.embedding.to_dict()
        out.update(
            {
                "opset": self.opset,
                "variants": self.variants,
                "default_variant": self.default_variant,
                **self.extra,
                "files": self.files,
                "created": self.created,
                "versions": self.versions,
            }
        )
        return out
