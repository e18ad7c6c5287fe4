"""Batch scoring: ``onnxpipe score`` over files (local, resumable), on Ray Data (``onnxpipe.scale.ray``) and
on Spark (``onnxpipe.scale.spark``), every task, its columns read from the task registry.

Needs the ``score`` extra (pyarrow, tqdm); Ray needs the ``ray`` extra, Spark the ``spark`` extra and a
Java runtime. ``import onnxpipe`` never imports this package.
"""
