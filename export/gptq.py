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
        self.cross: np.ndarray | None = None  # Σ x x_floatᵀ, when the float graph's rows are paired with these

    def pair(self, x: np.ndarray, reference: np.ndarray, keep: np.ndarray | None = None) -> None:
        """Add the cross moment of these rows ``x`` with the float graph's ``reference`` rows for the same tokens."""
        rows = x.reshape(-1, x.shape[-1]).astype(np.float64)
        ref = reference.reshape(-1, reference.shape[-1]).astype(np.float64)
        if keep is not None:
            rows, ref = rows[keep.reshape(-1).astype(bool)], ref[keep.reshape(-1).astype(bool)]
        self.cross = rows.T @ ref + (0 if self.cross is None else self.cross)

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

    def hessian(self, scale: np.ndarray | None = None, centred: bool = False) -> np.ndarray:
        """``E[x xᵀ]`` of ``x / scale`` (the smoothed activation when ``scale`` is given); ``centred``: the covariance
        instead (what is left of the weights' error once bias correction has taken its mean share back)."""
        if self.gram is None or not self.count:
            raise ValueError("no calibration tokens reached this activation")
        h = self.gram / self.count
        if centred:
            m = self.mean()
            h = h - np.outer(m, m)
        if scale is not None:
            inv = 1.0 / scale.astype(np.float64)
            h = h * inv[:, None] * inv[None, :]
        return h


def toward_float(w: np.ndarray, moments: Moments, scale: np.ndarray | None = None, damp: float = 0.01) -> np.ndarray:
    """The float weights that, read by these (quantized) inputs, best give the float graph's product
    (``argmin E|x_q V - x_float w|²``, ridge-damped as GPTQ damps): GPTQ then rounds ``V`` instead of ``w``, so
    a layer also takes back part of the error its inputs bring (asymmetric calibration, as GPTAQ, Li et al. 2025).
    ``scale``: the smoothing the product reads its input divided by (``w`` is already multiplied by it)."""
    if moments.cross is None:
        raise ValueError("these moments were not paired with the float graph's")
    h = moments.hessian(scale)
    c = moments.cross / moments.count
    if scale is not None:
        inv = 1.0 / scale.astype(np.float64)
        c = c * inv[:, None] * inv[None, :]
    h[np.diag_indices_from(h)] += damp * np.mean(np.diag(h))
    return np.linalg.solve(h, c @ np.asarray(w, np.float64))


def gptq_round(
    w: np.ndarray,
    scale: np.ndarray,
    h: np.ndarray,
    levels: int = 127,
    damp: float = 0.01,
    act_order: bool = True,
    lo: np.ndarray | None = None,
    hi: np.ndarray | None = None,
) -> np.ndarray:
    """Integers ``q`` (same shape as ``w``: ``[inputs, outputs]``, ``|q| <= levels``) such that ``x (q * scale)``
    approximates ``x w`` for inputs with second moments ``h`` (``[inputs, inputs]``); ``scale`` per output.
    ``damp``: fraction of the mean diagonal added to ``h`` (keeps the inverse stable for rarely-used inputs).
    ``act_order``: round the inputs with the largest second moment first (False: in their stored order).
    ``lo``, ``hi``: per output channel bounds of ``q`` in place of ``±levels`` (an asymmetric channel's range)."""
    w = np.asarray(w, np.float64)
    if h.shape != (w.shape[0], w.shape[0]) or scale.shape != (w.shape[1],):
        raise ValueError(f"shapes do not fit: weights {w.shape}, scale {scale.shape}, moments {h.shape}")
    h = h.copy()
    dead = np.diag(h) <= 0  # an input that is always zero: any rounding is exact
    h[dead, dead] = 1.0
    # Largest inputs first ("act order"): their errors get the most rows left to absorb them.
    order = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(h.shape[0])
    h = h[order][:, order]
    h[np.diag_indices_from(h)] += damp * np.mean(np.diag(h))
    # Upper Cholesky factor of H⁻¹: row i holds how row i's error moves the rows after it.
    u = np.linalg.cholesky(np.linalg.inv(h)).T
    work = w[order].copy()
    q = np.empty_like(work)
    step = scale.astype(np.float64)
    bottom = -levels if lo is None else lo
    top = levels if hi is None else hi
    for i in range(work.shape[0]):
        q[i] = np.clip(np.round(work[i] / step), bottom, top)
        err = (work[i] - q[i] * step) / u[i, i]
        work[i + 1 :] -= np.outer(u[i, i + 1 :], err)
    out = np.empty_like(q)
    out[order] = q
    return out


def output_error(w: np.ndarray, q: np.ndarray, scale: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Per output channel, ``E[(x (w - q scale))²]`` for inputs with second moments ``h``."""
    d = np.asarray(w, np.float64) - q * scale.astype(np.float64)
    return np.einsum("ij,ik,kj->j", d, h, d)


def clipped_round(
    w: np.ndarray,
    h: np.ndarray,
    levels: int = 127,
    clips: tuple[float, ...] = (1.0,),
    rounding: str = "gptq",
    asymmetric: bool = False,
    **gptq: object,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(q, scale, zero)``: ``w ≈ q * scale`` per output channel, ``q`` integers in ``[-levels, levels]``, or with
    ``asymmetric`` in ``[-zero, 255 - zero]`` (the channel's own [min, max] over all 256 steps of a byte, stored as
    ``q + zero`` with that zero point: a channel whose weights lean to one side no longer wastes half its range).
    Each channel's range is ``clip *`` its full one for the clip of ``clips`` whose rounded channel errs least on
    inputs with moments ``h`` (AWQ / OmniQuant-style clip search): a smaller range rounds the many small weights
    finer at the price of clipping the few largest. GPTQ treats output channels independently, so each keeps its
    own best clip."""
    w = np.asarray(w, np.float64)
    if asymmetric:
        w_lo, w_hi = np.minimum(w.min(0), 0.0), np.maximum(w.max(0), 0.0)
        span = np.maximum(w_hi - w_lo, 1e-12) / 255
    else:
        span = np.maximum(np.abs(w).max(0), 1e-12) / levels
    best: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None  # q, scale, zero, error per channel
    for c in clips:
        s = span * c
        if asymmetric:
            z = np.clip(np.round(-w_lo * c / s), 0, 255)
            lo, hi = -z, 255 - z
        else:
            z = np.zeros_like(s)
            lo, hi = -levels + z, levels + z
        if rounding == "gptq":
            q = gptq_round(w, s, h, levels, lo=lo, hi=hi, **gptq)  # type: ignore[arg-type]
        else:
            q = np.clip(np.round(w / s), lo, hi)
        e = output_error(w, q, s, h)
        if best is None:
            best = (q, s, z, e)
            continue
        win = e < best[3]
        for kept, new in zip(best[1:], (s, z, e)):
            kept[win] = new[win]
        best[0][:, win] = q[:, win]
    assert best is not None, "clips is empty"
    return best[0], best[1], best[2]
