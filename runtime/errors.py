"""The library's one exception type.

Wrong argument types raise ``TypeError`` and bad values ``ValueError`` at the call boundary;
everything about the model itself (missing, corrupt or tampered artifact files, an unusable
graph) raises :class:`OnnxPipeError`, whose message says what is wrong and what to do.
"""


class OnnxPipeError(Exception):
    """An artifact or model onnxpipe cannot use, with what to do about it in the message."""
