"""The library's exception types.

Everything about the model itself (missing, corrupt or tampered artifact files, an unusable graph)
raises :class:`OnnxPipeError`, whose message says what is wrong and what to do.

A bad call (a wrong input or parameter) raises an :class:`InputError`: :class:`InputValueError`,
:class:`InputTypeError` or :class:`InputKeyError`, each also the built-in exception transformers raises
in that case, so ``except ValueError`` (``TypeError``, ``KeyError``) catches them as before. Only
``InputError`` is taken for bad input (by the server's 4xx, ``call_each`` and ``score``): a ``TypeError``
or ``KeyError`` from a bug stays a bug, never a client's mistake.
"""


class OnnxPipeError(Exception):
    """An artifact or model onnxpipe cannot use, with what to do about it in the message."""


class InputError(Exception):
    """A call's inputs or parameters are wrong; the message names the problem. Caught as bad input."""


class InputValueError(InputError, ValueError):
    """A bad input or parameter value (transformers raises ``ValueError`` here)."""


class InputTypeError(InputError, TypeError):
    """An input or parameter of the wrong type (transformers raises ``TypeError`` here)."""


class InputKeyError(InputError, KeyError):
    """A question-answering dict without its keys (transformers raises ``KeyError`` here)."""


# Said wherever the export extra is missing. onnxpipe installs from a clone of its repository (it is
# not on PyPI); torch comes first from PyTorch's CPU index, else the pin resolves to the CUDA build.
INSTALL_EXPORT = (
    "pip install torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu "
    "&& pip install '.[export]'  (from the onnxpipe repository)"
)
