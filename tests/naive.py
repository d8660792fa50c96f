"""Slow, obviously right float64 references for the tests (loops, ``math.fsum``).

Nothing here is fast or clever: each function follows the formulas of section 2 of docs/contract.md one
row at a time, so the kernels can be checked against it.
"""

import itertools
import math

import numpy as np


def _row(z):
    """(p, tau, k) of one 1-D row, or NaNs following section 4 of docs/contract.md."""
    z = [float(x) for x in z]
    K = len(z)
    if K == 0:
        return np.zeros(0), math.nan, 0
    if any(math.isnan(x) or x == math.inf for x in z) or all(x == -math.inf for x in z):
        return np.full(K, math.nan), math.nan, 0
    m = max(z)
    d = [x - m for x in z]  # shift by the maximum (exact near the top)
    srt = sorted(d, reverse=True)
    k = 0
    # k(z) = max{k : 1 + k z_(k) > sum_{j<=k} z_(j)}, testing every k (no early exit).
    for j, cs in enumerate(itertools.accumulate(srt), start=1):
        if 1 + j * srt[j - 1] > cs:
            k = j
    tau = (math.fsum(srt[:k]) - 1) / k
    p = np.array([max(x - tau, 0.0) for x in d])
    return p, tau + m, k


def sparsemax(z, axis=-1):
    z = np.moveaxis(np.asarray(z, dtype=np.float64), axis, -1)
    out = np.empty(z.shape)
    for idx in np.ndindex(z.shape[:-1]):
        out[idx] = _row(z[idx])[0]
    return np.moveaxis(out, -1, axis)


def threshold(z, axis=-1):
    z = np.moveaxis(np.asarray(z, dtype=np.float64), axis, -1)
    tau = np.empty(z.shape[:-1])
    k = np.empty(z.shape[:-1], dtype=np.int64)
    for idx in np.ndindex(z.shape[:-1]):
        _, tau[idx], k[idx] = _row(z[idx])
    return tau, k


def jvp(p, v, axis=-1):
    """J(p) v with J = diag(s) - s s^T / k, built as a matrix."""
    p = np.moveaxis(np.asarray(p, dtype=np.float64), axis, -1)
    v = np.moveaxis(np.asarray(v, dtype=np.float64), axis, -1)
    out = np.empty(v.shape)
    for idx in np.ndindex(p.shape[:-1]):
        s = (p[idx] > 0).astype(np.float64)
        k = s.sum()
        if k == 0 or np.isnan(p[idx]).any():
            out[idx] = np.nan
            continue
        J = np.diag(s) - np.outer(s, s) / k
        vv = np.where(s > 0, v[idx], 0.0)  # entries off the support do not matter
        out[idx] = J @ vv
    return np.moveaxis(out, -1, axis)


def loss_row(z, q):
    """Eq. (15) of the paper, term by term, for one row and a target distribution q."""
    z = np.asarray(z, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p, tau, k = _row(z)
    if k == 0:
        return math.nan
    S = p > 0
    m = np.max(z)
    zs = z - m  # the loss is invariant to the shift; it keeps squares finite
    ts = tau - m
    terms = [-(qj * zj) for qj, zj in zip(q, zs) if qj != 0]
    terms += [0.5 * (zj * zj - ts * ts) for zj in zs[S]]
    terms += [0.5 * qj * qj for qj in q]
    return math.fsum(terms)


def loss(z, target, axis=-1):
    """Per-row loss; ``target`` is class indices (batch shape) or distributions."""
    z = np.moveaxis(np.asarray(z, dtype=np.float64), axis, -1)
    t = np.asarray(target)
    out = np.empty(z.shape[:-1])
    for idx in np.ndindex(z.shape[:-1]):
        if t.dtype.kind in "iu":
            q = np.zeros(z.shape[-1])
            q[t[idx]] = 1.0
        else:
            q = np.moveaxis(t, axis, -1)[idx]
        out[idx] = loss_row(z[idx], q)
    return out
