"""The optimize stage: ``model.onnx`` → ``model_optimized.onnx`` with attention, layer norms and GELU fused by
onnxruntime's transformer optimizer (:mod:`.variants`) and, for heads that read one position, the last layer
cut to that row (:mod:`.last_row`). Returns what the manifest records of the variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from onnxpipe.tasks import TaskSpec

from .errors import ExportError, Log
from .last_row import cut_file
from .variants import FILES, UnsupportedArchitecture, optimize_graph


def optimize_variant(folder: Path, config: Any, spec: TaskSpec, one_row: bool, log: Log) -> dict:
    log("fusing attention, layer norms and GELU with onnxruntime's transformer optimizer")
    try:
        fused = optimize_graph(folder / FILES["fp32"], folder / FILES["optimized"], config)
    except UnsupportedArchitecture as e:
        raise ExportError(f"--optimize: {e}") from e
    extra: dict = {"fused_operators": fused}
    if one_row and spec.head.reads_one_row:
        extra["last_layer"] = cut_file(folder / FILES["optimized"])
        log(
            "last layer: queries and everything after attention on the row the head reads"
            if extra["last_layer"]["applied"]
            else f"last layer left whole: {extra['last_layer']['why']}"
        )
    return extra
