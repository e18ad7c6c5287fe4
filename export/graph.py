"""The export stage: the PyTorch model → ``model.onnx`` (optimum's exporter, for the head's optimum task), with
the tokenizer saved beside it. Whether the graph is right is the validation's to say (:mod:`.exporter`)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import torch

from onnxpipe.tasks import TaskSpec

from .errors import Log


def export_graph(model: Any, tokenizer: Any, folder: Path, spec: TaskSpec, opset: int | None, log: Log) -> None:
    from optimum.exporters.onnx import onnx_export_from_model

    log("exporting the ONNX graph with optimum")
    logging.getLogger("optimum").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        # The tracer's notes on constants and the legacy exporter are expected for these graphs;
        # the validation that follows is what says whether the export is right.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        onnx_export_from_model(model, folder, task=spec.optimum_task, opset=opset, do_validation=False)
    tokenizer.save_pretrained(folder)


def onnx_opset(path: Path) -> int:
    """The default-domain opset a graph was exported at (the manifest records it)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
