"""SST-2 loading for training the default model and for benchmarks.

The GLUE copy is read from a local folder (``label<TAB>sentence`` TSV with a header, files
``train.tsv`` / ``dev.tsv``) because the machines this runs on reach no dataset hub; with no
folder given, ``datasets``' glue/sst2 is used where a hub is reachable.
"""

from __future__ import annotations

import csv
from pathlib import Path

from onnxpipe.errors import InputValueError, OnnxPipeError

_HUB_SPLIT = {"train": "train", "dev": "validation"}


def load_sst2(data_dir: str | Path | None, split: str = "dev") -> tuple[list[str], list[int]]:
    """Return (sentences, labels) for ``split`` ("train" or "dev"); labels are 0 = negative, 1 = positive."""
    if split not in _HUB_SPLIT:
        raise InputValueError(f"unknown SST-2 split {split!r}: use 'train' or 'dev'")
    if data_dir is None:
        return _load_from_hub(split)
    path = Path(data_dir) / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the data folder must hold {split}.tsv (label<TAB>sentence)")
    return read_labelled_tsv(path)


def read_labelled_tsv(path: Path) -> tuple[list[str], list[int]]:
    """A ``label<TAB>sentence`` file with that header, labels 0 or 1 (the GLUE SST-2 layout)."""
    texts, labels = [], []
    with path.open(encoding="utf-8", newline="") as f:
        # QUOTE_NONE: SST-2 sentences contain bare double quotes that csv would otherwise eat.
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:2]] != ["label", "sentence"]:
            raise InputValueError(f"{path}: expected a header 'label<TAB>sentence', got {header!r}")
        for lineno, row in enumerate(reader, start=2):
            if len(row) != 2 or row[0] not in ("0", "1"):
                raise InputValueError(f"{path}:{lineno}: expected 'label<TAB>sentence' with label 0 or 1, got {row!r}")
            labels.append(int(row[0]))
            texts.append(row[1])
    return texts, labels


def _load_from_hub(split: str) -> tuple[list[str], list[int]]:
    try:
        import datasets
    except ImportError as e:
        raise OnnxPipeError(
            "no data folder given and `datasets` is not installed: pass a folder holding "
            f"{split}.tsv, or `pip install datasets` where a hub is reachable"
        ) from e
    ds = datasets.load_dataset("glue", "sst2", split=_HUB_SPLIT[split])
    return list(ds["sentence"]), [int(x) for x in ds["label"]]
