"""Weight rounding that minimises a layer's output error on calibration text (GPTQ, Frantar et al. 2023).

Rounding each weight to its nearest int8 step leaves an error per weight that is independent of the input; GPTQ
rounds a weight matrix one input row at a time and spreads each row's rounding error over the rows not yet
rounded, weighted by the inputs' second moments ``H = E[x xᵀ]``, so that ``x Ŵ`` stays close to ``x W`` for the
inputs the layer actually sees. Per output channel symmetric scales are fixed first (as nearest rounding has
them), so the int8 layout and the kernels are unchanged; only which integer each weight gets differs.
"""

from __future__ import annotations

import numpy as np


class Moments:
    """Running ``Σ x xᵀ``, ``Σ x`` and token count of one activation over calibration batches (padding left out),
    and its first ``keep`` rows as they came (for choosing a smoothing strength on the real products)."""

    def __init__(self, keep: int = 4096) -> None:
        self.gram: np.ndarray | None = None
        self.sum: np.ndarray | None = None
        self.count = 0
        self.keep = keep
        self.rows: list[np.ndarray] = []
        self.lo = np.zeros(0)
        self.hi = np.zeros(0)

    def add(self, x: np.ndarray, keep: np.ndarray | None = None) -> None:
        rows = x.reshape(-1, x.shape[-1]).astype(np.float64)
        if keep is not None:
            rows = rows[keep.reshape(-1).astype(bool)]
        if self.gram is None:
            self.gram = np.zeros((rows.shape[1], rows.shape[1]))
            self.sum = np.zeros(rows.shape[1])
        self.gram += rows.T @ rows
        self.lo = np.minimum(self.lo, rows.min(0)) if self.lo.size else rows.min(0)
        self.hi = np.maximum(self.hi, rows.max(0)) if self.hi.size else rows.max(0)
        self.sum += rows.sum(0)
        if self.count < self.keep:
            self.rows.append(rows[: self.keep - self.count].astype(np.float32))
        self.count += len(rows)

    def mean(self) -> np.ndarray:
        if self.sum is None or not self.count:
            raise ValueError("no calibration tokens reached this activation")
        return self.sum / self.count

    def sample(self) -> np.ndarray:
        return np.concatenate(self.rows)

    def hessian(self, scale: np.ndarray | None = None) -> np.ndarray:
        """``E[x xᵀ]`` of ``x / scale`` (the smoothed activation when ``scale`` is given)."""
        if self.gram is None or not self.count:
            raise ValueError("no calibration tokens reached this activation")
        h = self.gram / self.count
        if scale is not None:
            inv = 1.0 / scale.astype(np.float64)
            h = h * inv[:, None] * inv[None, :]
        return h


def gptq_round(w: np.ndarray, scale: np.ndarray, h: np.ndarray, levels: int = 127, damp: float = 0.01) -> np.ndarray:
    """Integers ``q`` (same shape as ``w``: ``[inputs, outputs]``, ``|q| <= levels``) such that ``x (q * scale)``
    approximates ``x w`` for inputs with second moments ``h`` (``[inputs, inputs]``); ``scale`` per output.
    ``damp``: fraction of the mean diagonal added to ``h`` (keeps the inverse stable for rarely-used inputs)."""
    w = np.asarray(w, np.float64)
    if h.shape != (w.shape[0], w.shape[0]) or scale.shape != (w.shape[1],):
        raise ValueError(f"shapes do not fit: weights {w.shape}, scale {scale.shape}, moments {h.shape}")
    h = h.copy()
    dead = np.diag(h) <= 0  # an input that is always zero: any rounding is exact
    h[dead, dead] = 1.0
    # Largest inputs first ("act order"): their errors get the most rows left to absorb them.
    order = np.argsort(-np.diag(h), kind="stable")
    h = h[order][:, order]
    h[np.diag_indices_from(h)] += damp * np.mean(np.diag(h))
    # Upper Cholesky factor of H⁻¹: row i holds how row i's error moves the rows after it.
    u = np.linalg.cholesky(np.linalg.inv(h)).T
    work = w[order].copy()
    q = np.empty_like(work)
    step = scale.astype(np.float64)
    for i in range(work.shape[0]):
        q[i] = np.clip(np.round(work[i] / step), -levels, levels)
        err = (work[i] - q[i] * step) / u[i, i]
        work[i + 1 :] -= np.outer(u[i, i + 1 :], err)
    out = np.empty_like(q)
    out[order] = q
    return out
