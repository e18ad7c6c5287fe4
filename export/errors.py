"""What every export stage raises and how it reports progress."""

from __future__ import annotations

from collections.abc import Callable

from onnxpipe.errors import OnnxPipeError

Log = Callable[[str], None]  # one line of progress (the CLI prints it; the Python call is silent by default)


class ExportError(OnnxPipeError):
    """The checkpoint cannot be exported, or the exported graph does not match PyTorch."""
