"""The benchmark's statistics on known arrays (no timing involved)."""

from __future__ import annotations

import numpy as np
import pytest

from onnxpipe.bench import stats


def test_latency_summary_percentiles_in_ms():
    s = stats.latency_summary(np.arange(1, 101) / 1e3)  # 1 ms … 100 ms
    assert s == pytest.approx({"p50_ms": 50.5, "p90_ms": 90.1, "p99_ms": 99.01, "mean_ms": 50.5, "n": 100})
    with pytest.raises(ValueError, match="no latency samples"):
        stats.latency_summary([])


def test_accuracy_agreement_gap_ratio():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.55, 0.45]])
    ref = np.array([[0.8, 0.2], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5 + 1e-9]])
    assert stats.accuracy(probs, [0, 1, 0, 0]) == 0.75
    assert stats.agreement(probs, ref) == 0.5  # rows 2 and 4 flip
    assert stats.max_gap(probs, ref) == pytest.approx(0.2)
    assert stats.ratio(10.0, 2.0) == 5.0
    assert stats.ratio(None, 2.0) is None and stats.ratio(1.0, 0.0) is None
    assert stats.throughput(872, 2.0) == 436.0
    with pytest.raises(ValueError):
        stats.throughput(10, 0.0)


def test_quoted_throughput_is_the_median_pass():
    # One quiet moment (900) must not stand for a contender whose other passes ran at 500 and 520.
    assert stats.quoted([500.0, 900.0, 520.0]) == 520.0
    assert stats.quoted([400.0, 600.0]) == 500.0
    with pytest.raises(ValueError, match="no passes"):
        stats.quoted([])


def test_embeddings_report_names_issue_24s_int8_line_with_its_spread():
    from onnxpipe.bench import embeddings

    def row(passes):
        return {"status": "ok", "throughput": {"32": stats.quoted(passes)}, "throughput_passes": {"32": passes}}

    rows = {"onnxpipe fp32": row([250.0, 300.0, 200.0]), "onnxpipe int8": row([400.0, 450.0, 300.0])}
    # Median passes 400 / 250 = 1.60; the passes in turns 1.60, 1.50, 1.50.
    assert embeddings.int8_line(rows, "32") == (
        "✗ onnxpipe int8 over onnxpipe fp32 at batch 32: 1.60x (target 1.8); passes in turns 1.50x [1.50–1.60]"
    )
    rows["onnxpipe int8"] = row([500.0, 600.0, 400.0])
    assert embeddings.int8_line(rows, "32").startswith("✓ onnxpipe int8 over onnxpipe fp32 at batch 32: 2.00x")
    assert embeddings.int8_line({"onnxpipe fp32": rows["onnxpipe fp32"]}, "32") is None  # no int8 row, no line
