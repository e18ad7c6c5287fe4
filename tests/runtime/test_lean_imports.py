"""The runtime path never loads torch or transformers: checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import onnxpipe
pipe = onnxpipe.pipeline("sentiment-analysis", model=sys.argv[1])
result = pipe(["good film", "bad film"], top_k=None)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "optimum", "onnx"))
print(json.dumps({"heavy": heavy, "n": len(result)}))
"""


def test_import_and_call_stay_torch_free(artifact):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(artifact(optimize=True, quantize="int8"))],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"heavy": [], "n": 2}
