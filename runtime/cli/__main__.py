"""``python -m onnxpipe.cli``: the ``onnxpipe`` command."""

import sys

from . import main

sys.exit(main())
