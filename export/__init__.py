"""onnxpipe.export: Hugging Face checkpoint → validated ONNX artifact folder.

Needs the export extra (``onnxpipe.errors.INSTALL_EXPORT`` says how to install it). The heavy modules load on first use of
:func:`export`, so importing this package (as the runtime does to find the default model's delta)
costs nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SUPPORTED_TASKS", "ExportError", "export"]

from onnxpipe.tasks import TASKS

SUPPORTED_TASKS = tuple(TASKS)


def __getattr__(name: str) -> Any:
    if name in ("export", "ExportError"):
        from . import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'onnxpipe.export' has no attribute {name!r}")
