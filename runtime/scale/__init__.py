"""Batch scoring: ``onnxpipe score`` over files (local, resumable) and on Ray Data (``onnxpipe.scale.ray``).

Needs the ``score`` extra (pyarrow, tqdm); Ray needs the ``ray`` extra. ``import onnxpipe`` never
imports this package.
"""
