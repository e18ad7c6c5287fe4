"""The library's one exception type.

Wrong argument types raise ``TypeError`` and bad values ``ValueError`` at the call boundary;
everything about the model itself (missing, corrupt or tampered artifact files, an unusable
graph) raises :class:`OnnxPipeError`, whose message says what is wrong and what to do.
"""


class OnnxPipeError(Exception):
    """An artifact or model onnxpipe cannot use, with what to do about it in the message."""


# Said wherever the export extra is missing. onnxpipe installs from a clone of its repository (it is
# not on PyPI); torch comes first from PyTorch's CPU index, else the pin resolves to the CUDA build.
INSTALL_EXPORT = (
    "pip install torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu "
    "&& pip install '.[export]'  (from the onnxpipe repository)"
)
