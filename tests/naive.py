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


# --------------------------------------------------------------------------- entmax
# The entmax family (Peters, Niculae & Martins, 2019) in np.longdouble: 1.5-entmax by the
# paper's sort-based closed form, alpha-entmax by plain bisection run until the bracket
# stops shrinking (no Newton, no tricks). The results are rounded to float64 at the end.
LD = np.longdouble


def _bad_row(z):
    return any(math.isnan(x) or x == math.inf for x in z) or all(x == -math.inf for x in z)


def _entmax15_row(z):
    """(p, tau, k) of one row: tau with p = [z/2 - tau]_+^2, by the sorted closed form."""
    z = [float(x) for x in z]
    K = len(z)
    if K == 0:
        return np.zeros(0), math.nan, 0
    if _bad_row(z):
        return np.full(K, math.nan), math.nan, 0
    m = max(z)
    x = np.array([(LD(v) - LD(m)) / 2 for v in z], dtype=LD)
    srt = np.sort(x)[::-1]
    k_star, tau = 0, None
    for k in range(1, K + 1):
        top = srt[:k]
        if top[-1] == -np.inf:
            break
        mean = top.sum() / k
        ss = ((top - mean) ** 2).sum()
        delta = (1 - ss) / k
        if delta < 0:
            continue
        tk = mean - np.sqrt(delta)
        if tk <= srt[k - 1]:  # the paper's test: k is in the support
            k_star, tau = k, tk
    p = np.where(x > tau, np.maximum(x - tau, 0) ** 2, 0)
    return p.astype(np.float64), float(tau + LD(m) / 2), int(np.count_nonzero(x > tau))


def _entmax_row(z, alpha):
    """(p, tau, k) of one row: p = [(alpha - 1) z - tau]_+^(1/(alpha - 1)), by bisection."""
    z = [float(x) for x in z]
    K = len(z)
    if K == 0:
        return np.zeros(0), math.nan, 0
    if _bad_row(z):
        return np.full(K, math.nan), math.nan, 0
    a1 = LD(alpha) - 1
    r = 1 / a1
    m = max(z)
    x = np.array([a1 * (LD(v) - LD(m)) for v in z], dtype=LD)

    def mass(t):
        y = np.maximum(x - t, 0)
        return (y ** r).sum()

    lo, hi = LD(-1), LD(0)  # mass(lo) >= 1 > mass(hi) = 0
    while True:
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if mass(mid) >= 1:
            lo = mid
        else:
            hi = mid
    tau = lo
    p = np.maximum(x - tau, 0) ** r
    p = p / p.sum()  # takes out the mass error of the last bracket (1 longdouble ulp of tau)
    return p.astype(np.float64), float(tau + a1 * LD(m)), int(np.count_nonzero(x > tau))


def _tsallis(p, alpha):
    p = np.asarray(p, dtype=LD)
    return ((p ** LD(alpha)).sum() - 1) / (LD(alpha) * (LD(alpha) - 1))


def _rows(z, axis, fn):
    z = np.moveaxis(np.asarray(z, dtype=np.float64), axis, -1)
    out = np.empty(z.shape)
    tau = np.empty(z.shape[:-1])
    k = np.empty(z.shape[:-1], dtype=np.int64)
    for idx in np.ndindex(z.shape[:-1]):
        out[idx], tau[idx], k[idx] = fn(z[idx], idx)
    return np.moveaxis(out, -1, axis), tau, k


def _alpha_at(alpha, idx):
    a = np.asarray(alpha, dtype=np.float64)
    return float(a if a.ndim == 0 else a[idx])


def entmax15(z, axis=-1):
    return _rows(z, axis, lambda r, idx: _entmax15_row(r))[0]


def entmax15_threshold(z, axis=-1):
    return _rows(z, axis, lambda r, idx: _entmax15_row(r))[1:]


def entmax_bisect(z, alpha=1.5, axis=-1):
    """``alpha``: a scalar or an array of the batch shape."""
    return _rows(z, axis, lambda r, idx: _entmax_row(r, _alpha_at(alpha, idx)))[0]


def entmax_bisect_threshold(z, alpha=1.5, axis=-1):
    return _rows(z, axis, lambda r, idx: _entmax_row(r, _alpha_at(alpha, idx)))[1:]


def entmax_jvp(p, v, alpha=1.5, axis=-1):
    """J(p) v with J = diag(s) - s s^T / sum(s), s = p^(2 - alpha) on the support, as a matrix."""
    p = np.moveaxis(np.asarray(p, dtype=np.float64), axis, -1)
    v = np.moveaxis(np.asarray(v, dtype=np.float64), axis, -1)
    out = np.empty(v.shape)
    for idx in np.ndindex(p.shape[:-1]):
        a = _alpha_at(alpha, idx)
        row = p[idx]
        if np.isnan(row).any() or not (row > 0).any():
            out[idx] = np.nan
            continue
        with np.errstate(divide="ignore"):  # 0^(2 - alpha) for alpha > 2, not selected
            s = np.where(row > 0, np.abs(row) ** (2 - a), 0.0)
        J = np.diag(s) - np.outer(s, s) / s.sum()
        out[idx] = J @ np.where(row > 0, v[idx], 0.0)
    return np.moveaxis(out, -1, axis)


def entmax_loss_row(z, q, alpha):
    """L(z; q) = Omega*(z) - z.q + Omega(q) = z.(p - q) - Omega(p) + Omega(q), Tsallis Omega."""
    z = np.asarray(z, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p, _, k = _entmax15_row(z) if alpha == 1.5 else _entmax_row(z, alpha)
    if k == 0:
        return math.nan
    zs = np.array(z, dtype=LD) - LD(np.max(z))  # invariant to the shift (p and q sum to 1)
    if np.any((q > 0) & (zs == -np.inf)):
        return math.inf
    on = (p > 0) | (q > 0)
    lin = (zs[on] * (np.asarray(p, dtype=LD)[on] - np.asarray(q, dtype=LD)[on])).sum()
    return float(lin - _tsallis(p, alpha) + _tsallis(q, alpha))


def entmax_loss(z, target, alpha=1.5, axis=-1):
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
        out[idx] = entmax_loss_row(z[idx], q, _alpha_at(alpha, idx))
    return out
