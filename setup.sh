#!/bin/sh
# Create .venv and install onnxpipe with the extras named (default: export), torch as its CPU build.
#   ./setup.sh            the main job's install: runtime + export (torch 2.13.0 CPU, transformers, optimum-onnx)
#   ./setup.sh test       everything the tests need
# Why a script: PyPI's torch==2.13.0 for Linux x86_64 is the CUDA build (several GB of nvidia-* wheels); the CPU
# build is only on PyTorch's own index, so torch is installed first from there and '.[EXTRAS]' finds the pin met.
# Where that index is unreachable (offline mirrors, a machine with a local wheel cache) pip would retry it for
# over a minute and print a warning per retry: the index is probed once, and left out if it does not answer.
set -eu
extras="${1:-export}"
index=https://download.pytorch.org/whl/cpu
python3 -m venv .venv
if .venv/bin/python -c "import urllib.request; urllib.request.urlopen('$index/torch/', timeout=5)" 2>/dev/null; then
    .venv/bin/pip install torch==2.13.0 --extra-index-url "$index"
else
    echo "setup.sh: $index does not answer; torch==2.13.0 comes from pip's configured sources" >&2
    .venv/bin/pip install torch==2.13.0
fi
.venv/bin/pip install ".[$extras]"
