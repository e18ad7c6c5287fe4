"""Prometheus metrics for ``onnxpipe serve`` (prometheus_client), one registry per app."""

from __future__ import annotations

import collections
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

_SECONDS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "onnxpipe_requests", "Requests answered, by route and status", ["route", "status"], registry=r
        )
        self.failures = Counter("onnxpipe_failures", "Requests refused or failed, by kind", ["kind"], registry=r)
        self.tokenization = Histogram(
            "onnxpipe_tokenization_seconds", "Tokenization time per request", ["model"], buckets=_SECONDS, registry=r
        )
        self.queue = Histogram(
            "onnxpipe_queue_seconds", "Time a request waited for its batch", ["model"], buckets=_SECONDS, registry=r
        )
        self.inference = Histogram(
            "onnxpipe_inference_seconds",
            "Graph time of the batch a request ran in",
            ["model"],
            buckets=_SECONDS,
            registry=r,
        )
        self.batch_size = Histogram(
            "onnxpipe_batch_size",
            "Features per graph run",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.batch_tokens = Histogram(
            "onnxpipe_batch_tokens",
            "Padded tokens per graph run",
            ["model"],
            buckets=(16, 64, 256, 1024, 4096, 16384, 65536),
            registry=r,
        )
        self.sent: collections.Counter[str] = collections.Counter()  # whole responses written, by route (shutdown line)
        self.queue_depth = Gauge(
            "onnxpipe_queue_depth", "Requests waiting for the inference thread", ["model"], registry=r
        )
        # Each request touches five labelled series: prometheus_client's labels() validates and locks on every
        # call (about 5% of the event loop's CPU per request), so each series is looked up once.
        self._series: dict[tuple[int, tuple[str, ...]], Any] = {}

    def of(self, metric: MetricWrapperBase, *labels: str) -> Any:
        """``metric.labels(*labels)``, kept."""
        key = (id(metric), labels)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = metric.labels(*labels)
        return series
