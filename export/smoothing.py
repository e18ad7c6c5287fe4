"""Calibration for rowwise int8 (:mod:`.rowwise`): activation statistics on calibration text, and SmoothQuant
scales per activation, one alpha or the one of several whose simulated int8 product errs least.

SmoothQuant (Xiao et al. 2023): s_j = max|X_j|^alpha / max|W_j|^(1-alpha); X / s is quantized and s W is the
weight. One alpha for a whole model is a compromise between activations whose channels differ in how far they
stand out (on all-MiniLM-L6-v2: mean 1 - cosine to fp32 0.0012 with 0.7 everywhere, 0.00088 chosen per activation
from 0, 0.3, ... 0.9; SST-2 train, 600 sentences, AVX2); the simulation reproduces the graph's per-row activation quantization
and per-column weight quantization in numpy, so choosing costs no graph run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .gptq import Moments
from .activations import GELU_MIN, run_with_outputs


def statistics(model, xs: list[str], feeds: list[dict]) -> dict[str, tuple[np.ndarray, Moments]]:
    """Per activation in ``xs``: max |x| per channel and its moments over ``feeds``' real (unpadded) tokens."""
    out: dict[str, tuple[np.ndarray, Moments]] = {x: (np.zeros(0), Moments()) for x in xs}
    for feed, values in zip(feeds, run_with_outputs(model, xs, feeds)):
        keep = feed.get("attention_mask")
        for x, v in zip(xs, values):
            rows = v.reshape(-1, v.shape[-1])
            if keep is not None and rows.shape[0] == keep.size:
                rows = rows[keep.reshape(-1).astype(bool)]
            m = np.abs(rows).max(0)
            amax, moments = out[x]
            moments.add(rows)
            out[x] = (np.maximum(amax, m) if amax.size else m, moments)
    return out


def choose_smoothing(
    groups: dict,
    arrays: dict,
    stats: dict,
    alpha: float | Sequence[float],
    a_levels: int,
    w_levels: int,
    lifts: set,
    centers: dict | None = None,
) -> dict[str, np.ndarray]:
    """SmoothQuant's s_j = max|X_j|^alpha / max|W_j|^(1-alpha) per quantized activation X (``stats``' maxima).
    With several alphas, each X takes the one whose simulated product errs least on the calibration rows (an
    alpha of 0 leaves X as it is, and is left out of the result)."""
    alphas = [float(alpha)] if isinstance(alpha, (int, float)) else [float(a) for a in alpha]
    out = {}
    for x, mms in groups.items():
        ws = [arrays[n.input[1]] for n in mms]
        w_max = np.max([np.abs(w).max(1) for w in ws], axis=0)
        c = (centers or {}).get(x)
        moments = stats[x][1]
        amax = np.maximum(stats[x][0] if c is None else np.maximum(moments.hi - c, c - moments.lo), 1e-5)
        candidates = {a: (amax**a / np.maximum(w_max, 1e-5) ** (1 - a)).astype(np.float32) for a in alphas if a}
        if len(alphas) > 1:
            rows = moments.sample() if c is None else moments.sample() - c
            errors = {a: _product_error(rows, ws, candidates.get(a), a_levels, w_levels, x in lifts) for a in alphas}
            best = min(alphas, key=errors.__getitem__)
        else:
            best = alphas[0]
        if best:
            out[x] = candidates[best]
    return out


def _product_error(
    rows: np.ndarray, ws: list[np.ndarray], s: np.ndarray | None, a_levels: int, w_levels: int, lift: bool
) -> float:
    """Squared error of the simulated int8 products ``rows @ ws`` with smoothing scales ``s`` (None: none)."""
    lift = lift and s is None  # a smoothed GELU output is no longer >= GELU_MIN: it is quantized symmetrically
    s = np.ones(rows.shape[1], np.float32) if s is None else s
    xq = _fake_rows(rows / s, a_levels, lift=lift)
    return sum(float(((xq @ _fake_weights(w * s[:, None], w_levels) - rows @ w) ** 2).sum()) for w in ws)


def _fake_rows(x: np.ndarray, levels: int, lift: bool) -> np.ndarray:
    """``x`` as the graph's per-row quantize gives it back (symmetric; from GELU_MIN over 255 steps if ``lift``)."""
    if lift:
        shifted = x - GELU_MIN
        scale = np.maximum(shifted.max(1, keepdims=True), 1e-12) / 255
        return np.round(shifted / scale) * scale + GELU_MIN
    scale = np.maximum(np.abs(x).max(1, keepdims=True), 1e-12) / levels
    return np.round(x / scale) * scale


def _fake_weights(w: np.ndarray, levels: int) -> np.ndarray:
    scale = np.maximum(np.abs(w).max(0), 1e-12) / levels
    return np.clip(np.round(w / scale), -levels, levels) * scale


def choose_fixed(
    groups: dict,
    arrays: dict,
    stats: dict,
    smoothed: dict,
    centers: dict,
    lifts: set,
    ratio: float,
    a_levels: int,
    w_levels: int,
) -> dict[str, tuple[float, int]]:
    """Activations whose one fixed uint8 scale (the calibration's [min, max], zero point included) makes their
    simulated int8 products err at most ``ratio`` times as much as per-row scales do, on the calibration rows
    -> (scale, zero point). Each such activation is one QuantizeLinear in the graph instead of the per-row quantize's
    four or five nodes."""
    out = {}
    for x, mms in groups.items():
        s, c, moments = smoothed.get(x), centers.get(x), stats[x][1]
        ones = np.ones(len(moments.lo), np.float32)
        s = ones if s is None else s
        c = 0 * ones if c is None else c
        # What the quantize reads: (x - c) / s per channel, s > 0, so its range is the channels' ranges moved so.
        lo = min(float(((moments.lo - c) / s).min()), 0.0)
        hi = max(float(((moments.hi - c) / s).max()), 0.0)
        scale = max((hi - lo) / 255, 1e-8)
        zero = int(np.clip(np.round(-lo / scale), 0, 255))
        rows = (moments.sample() - c) / s
        scaled = [arrays[n.input[1]] * s[:, None] for n in mms]  # the weights the smoothed products read
        ws = [_fake_weights(w, w_levels) for w in scaled]
        exact = [rows @ w for w in scaled]
        fixed = (np.clip(np.round(rows / scale) + zero, 0, 255) - zero) * scale
        lift = x in lifts and x not in smoothed and x not in centers  # as the graph lifts a GELU's raw output
        per_row = _fake_rows(rows, a_levels, lift=lift)
        errs = [sum(float(((q @ w - e) ** 2).sum()) for w, e in zip(ws, exact)) for q in (fixed, per_row)]
        if errs[0] <= ratio * errs[1]:
            out[x] = (scale, zero)
    return out
