"""onnxpipe.bench: speed and accuracy of onnxpipe against PyTorch, optimum and CPU peers, in one run.

onnxpipe bench [ARTIFACT_OR_CHECKPOINT] --data DIR [--quick]      (or python -m onnxpipe.bench)
"""
