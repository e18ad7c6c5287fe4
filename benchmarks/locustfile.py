"""The load the serve benchmark puts on ``onnxpipe serve`` (locust, headless): each user posts the next
SST-2 sentence as soon as its last answer arrives (closed loop), and any status but 200 is a failure."""

import itertools
import json
import os

from locust import FastHttpUser, constant, task

ROUTE = os.environ.get("ONNXPIPE_ROUTE", "/v1/pipeline")
FIELD = os.environ.get("ONNXPIPE_FIELD", "inputs")  # OpenAI-style servers (Infinity) take "input"
EXTRA = json.loads(os.environ.get("ONNXPIPE_EXTRA", "{}"))  # e.g. {"model": ...}
with open(os.environ["ONNXPIPE_TEXTS"], encoding="utf-8") as f:
    TEXTS = [line.rstrip("\n") for line in f if line.strip()]
_next = itertools.cycle(range(len(TEXTS)))


class Client(FastHttpUser):
    wait_time = constant(0)

    @task
    def post(self) -> None:
        body = json.dumps({FIELD: TEXTS[next(_next)], **EXTRA})
        self.client.post(ROUTE, data=body, headers={"content-type": "application/json"}, name=ROUTE)
