"""Sparse attention: ``sparsemax(q k^T * scale) v`` with exact zero weights.

The scores ``q k^T`` are one batched matrix product (NumPy, BLAS). Then one Numba kernel per
query row finds the sparsemax threshold (:func:`sparsemax_nb.mappings.sparsemax.threshold`, the
library's own row kernel), writes the weights and sums ``w_j v_j`` over the support only:
``O(k dv)`` per row instead of ``O(Lk dv)``, with ``k`` the number of keys attended. The
backward pass (:func:`sparsemax_attention_vjp`) also visits only the support, using the
sparsemax Jacobian ``J u = s * (u - mean_S u)``.

Threads and forked processes follow the library's rules (see :mod:`sparsemax_nb.backends._threads`):
the parallel build runs under the same process-wide lock, and serially when the lock is
taken, in a forked child, or for small inputs.
"""

from typing import Any

import numba
import numpy as np
from numba import njit, prange

from .. import _checks as C
from .._jit import JIT as _JIT
from ..backends import _threads
from .. import mappings
from ..mappings import entmax_bisect as _entmax_bisect

__all__ = ["sparsemax_attention", "sparsemax_attention_vjp"]


# --------------------------------------------------------------------------- kernels
def _make(mp, loop):
    # mp, the mapping module, is a closure variable (as in the CPU backend's drivers: it
    # pickles by reference, so Numba's disk cache keys each mapping apart).
    def forward(S, V, P, O, theta, nchunk):
        # S: (B, Lq, Lk) scores, V: (B, Lk, dv); P: weights out, O: output out.
        B, Lq, Lk = S.shape
        dv = V.shape[2]
        n = B * Lq
        for c in loop(nchunk):
            buf = np.empty(Lk, np.float64)
            acc = np.empty(dv, np.float64)  # float64 sums, whatever the dtype
            for r in range(c * n // nchunk, (c + 1) * n // nchunk):
                b = r // Lq
                i = r - b * Lq
                z = S[b, i]
                m, tau, k = mp.threshold(z, buf, C.SELECT, theta)
                mp.write(z, P[b, i], m, tau, k, theta)
                if k == 0:  # all keys masked, or a NaN/+inf score: a NaN row (docs/contract.md, section 4)
                    for t in range(dv):
                        O[b, i, t] = np.nan
                    continue
                for t in range(dv):
                    acc[t] = 0.0
                for j in range(Lk):
                    w = np.float64(P[b, i, j])
                    if w > 0.0:  # the support only
                        for t in range(dv):
                            acc[t] += w * V[b, j, t]
                for t in range(dv):
                    O[b, i, t] = acc[t]

    def backward(Q, K, V, P, G, scale, alpha, gQ, gK, gV, nchunk):
        # Each chunk owns whole batch entries, so the sums into gK and gV never race.
        # The Jacobian of alpha-entmax: J u = s * (u - (s . u) / sum s), s = w^(2 - alpha)
        # on the support (s = 1 for sparsemax, alpha = 2: the same bits as a plain mean).
        b2 = 2.0 - alpha
        B, Lq, d = Q.shape
        Lk = K.shape[1]
        dv = V.shape[2]
        for c in loop(nchunk):
            idx = np.empty(Lk, np.int64)
            du = np.empty(Lk, np.float64)
            sw = np.empty(Lk, np.float64)
            for b in range(c * B // nchunk, (c + 1) * B // nchunk):
                for j in range(Lk):
                    for t in range(d):
                        gK[b, j, t] = 0.0
                    for t in range(dv):
                        gV[b, j, t] = 0.0
                for i in range(Lq):
                    # Support of row i; a NaN row (no support) gives a NaN grad_q row and
                    # adds nothing to grad_k, grad_v.
                    ns = 0
                    bad = False
                    for j in range(Lk):
                        w = np.float64(P[b, i, j])
                        if w != w:
                            bad = True
                        elif w > 0.0:
                            idx[ns] = j
                            ns += 1
                    if bad or ns == 0:
                        for t in range(d):
                            gQ[b, i, t] = np.nan
                        continue
                    # dL/dw_j = g_i . v_j on the support; dL/dv_j += w_j g_i.
                    mean = 0.0
                    ssum = 0.0
                    for a in range(ns):
                        j = idx[a]
                        w = np.float64(P[b, i, j])
                        s = 0.0
                        for t in range(dv):
                            g = np.float64(G[b, i, t])
                            s += g * V[b, j, t]
                            gV[b, j, t] += w * g
                        du[a] = s
                        sw[a] = 1.0 if b2 == 0.0 else (np.sqrt(w) if b2 == 0.5 else w ** b2)
                        mean += sw[a] * s
                        ssum += sw[a]
                    mean /= ssum
                    # dL/dscores = J (dL/dw) = s * (u - mean_s u), times the score scale.
                    for t in range(d):
                        gQ[b, i, t] = 0.0
                    for a in range(ns):
                        j = idx[a]
                        e = scale * sw[a] * (du[a] - mean)
                        for t in range(d):
                            gQ[b, i, t] += e * K[b, j, t]
                            gK[b, j, t] += e * Q[b, i, t]

    return {"forward": forward, "backward": backward}


_SOURCES: dict[tuple[str, bool], Any] = {}
_BUILT: dict[tuple[str, str, bool], Any] = {}


def _get(mapping, name, parallel):
    fn = _BUILT.get((mapping, name, parallel))
    if fn is None:
        src = _SOURCES.get((mapping, parallel))
        if src is None:
            src = _SOURCES[(mapping, parallel)] = _make(mappings.get(mapping),
                                                        prange if parallel else range)
        fn = njit(parallel=parallel, **_JIT)(src[name])
        _BUILT[(mapping, name, parallel)] = fn
    return fn


def _run(mapping, name, units, size, *args):
    """Parallel build under the library's thread policy (docs/contract.md, section 6), else the serial build."""
    return _threads.run_builds(lambda n, par: _get(mapping, n, par), name, units, size, *args)


def _alpha(alpha):
    """``(mapping, alpha)``: sparsemax for alpha = 2, 1.5-entmax for 1.5, else alpha-entmax."""
    a = _entmax_bisect.check_theta(alpha)
    if a.ndim:
        raise ValueError(f"alpha must be one number; got shape {a.shape}")
    a = float(a)
    return ("sparsemax" if a == 2.0 else "entmax15" if a == 1.5 else "entmax_bisect"), a


# --------------------------------------------------------------------------- validation
def _prepare(q, k, v, extra=()):
    arrs = [np.asarray(x) for x in (q, k, v)] + [np.asarray(x) for x in extra]
    names = ["q", "k", "v", "weights", "grad_output"][: len(arrs)]
    dts = [C.compute_dtype(a.dtype, nm) for a, nm in zip(arrs, names)]
    dt = np.result_type(*dts)
    q, k, v = arrs[:3]
    for a, nm in zip(arrs, names):
        if a.ndim < 2:
            raise ValueError(f"{nm} must have at least 2 dimensions (..., L, d); got shape {a.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share the last (feature) axis; got {q.shape} and {k.shape}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of keys; got {k.shape} and {v.shape}")
    try:
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(
            f"the leading (batch, head) axes of q {q.shape}, k {k.shape} and v {v.shape} "
            "do not broadcast"
        ) from None
    return arrs, dt, batch


def _flat(a, batch, tail, dt):
    """Broadcast to ``batch + tail`` and lay out as C-contiguous ``(B,) + tail`` in ``dt``."""
    b = np.broadcast_to(a, batch + tail)
    B = int(np.prod(batch, dtype=np.int64))
    return np.ascontiguousarray(b.reshape((B,) + tail), dtype=dt)


def _scale(scale, d):
    if scale is None:
        return 1.0 / np.sqrt(d) if d > 0 else 1.0
    s = float(scale)
    if not np.isfinite(s):
        raise ValueError(f"scale must be finite; got {scale!r}")
    return s


# --------------------------------------------------------------------------- public API
def sparsemax_attention(q, k, v, mask=None, *, scale=None, alpha=2.0):
    """Scaled dot-product attention with sparsemax weights (exact zeros).

    ``weights = sparsemax(q k^T * scale)`` along the key axis and ``output = weights v``,
    for batched single-head ``(..., Lq, d)`` or multi-head ``(batch, heads, Lq, d)`` inputs:
    every axis before the last two is a batch axis, and they broadcast. With ``alpha``, the
    weights are alpha-entmax instead (:func:`sparsemax_nb.entmax_bisect`; alpha = 2 is
    sparsemax, 1.5 is :func:`sparsemax_nb.entmax15`).

    Parameters
    ----------
    q : array_like, shape (..., Lq, d)
        Queries.
    k : array_like, shape (..., Lk, d)
        Keys.
    v : array_like, shape (..., Lk, dv)
        Values.
    mask : array_like of bool, optional
        ``True`` = attend. Broadcastable to the score shape ``(..., Lq, Lk)``; masked scores
        become ``-inf`` and get weight exactly 0.
    scale : float, optional
        Score scale; default ``1 / sqrt(d)``.
    alpha : float, optional
        The entmax parameter, finite and > 1 (default 2: sparsemax).

    Returns
    -------
    output : numpy.ndarray, shape (..., Lq, dv)
    weights : numpy.ndarray, shape (..., Lq, Lk)
        Rows on the simplex, with exact zeros. A query row whose keys are all masked (or
        whose scores hold NaN or ``+inf``, or with ``Lk = 0``) has a NaN weight row and a
        NaN output row (docs/contract.md, section 4); other rows are unaffected.

    Raises
    ------
    TypeError
        For complex, object or string inputs.
    ValueError
        For mismatched shapes, or a mask that is not boolean or does not broadcast.

    Notes
    -----
    Float32 and float64 are computed in their own dtype (float16 as float32, integers as
    float64; mixed inputs promote), with float64 sums. The scores are a BLAS matrix
    product; the threshold, the weights and the weighted sum of values run in one Numba
    pass per query row that visits only the support for the sum.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsemax_nb.apps.attention import sparsemax_attention
    >>> q = np.array([[[2.0, 0.0]]]); k = np.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])
    >>> out, w = sparsemax_attention(q, k, np.eye(3)[None], scale=1.0)
    >>> w
    array([[[1., 0., 0.]]])
    """
    mapping, a = _alpha(alpha)
    (q, k, v), dt, batch = _prepare(q, k, v)
    Lq, d = q.shape[-2:]
    Lk, dv = v.shape[-2:]
    s = _scale(scale, d)
    Q = _flat(q, batch, (Lq, d), dt)
    K = _flat(k, batch, (Lk, d), dt)
    V = _flat(v, batch, (Lk, dv), dt)
    S = np.matmul(Q, K.transpose(0, 2, 1))
    if s != 1.0:
        S *= dt.type(s)
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype != np.bool_:
            raise ValueError(f"mask must be boolean (True = attend); got dtype {m.dtype}")
        try:
            m = np.broadcast_to(m, batch + (Lq, Lk)).reshape(S.shape)
        except ValueError:
            raise ValueError(
                f"mask of shape {m.shape} does not broadcast to the scores {batch + (Lq, Lk)}"
            ) from None
        S[~m] = -np.inf
    B = S.shape[0]
    P = np.empty_like(S)
    O = np.empty((B, Lq, dv), dt)
    if B * Lq and Lk:
        _run(mapping, "forward", B * Lq, S.size + B * Lq * dv, S, V, P, O, a)
    elif B * Lq:
        O[...] = np.nan  # no key to attend to: no distribution
    return O.reshape(batch + (Lq, dv)), P.reshape(batch + (Lq, Lk))


def _unbroadcast(g, shape):
    """Sum ``g`` over the axes that broadcasting added or stretched to reach its shape."""
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


def sparsemax_attention_vjp(q, k, v, weights, grad_output, *, scale=None, alpha=2.0):
    """Backward pass of :func:`sparsemax_attention`: gradients of a loss w.r.t. q, k and v.

    With ``u_ij = g_i . v_j`` and ``e_i = J(w_i) u_i = s_i * (u_i - mean over the support of
    u_i)`` (the sparsemax Jacobian, ``s_i`` the support of ``w_i``): ``grad_q_i = scale *
    sum_j e_ij k_j``, ``grad_k_j = scale * sum_i e_ij q_i``, ``grad_v_j = sum_i w_ij g_i``.
    Only the support of each row is visited. For alpha-entmax weights the Jacobian is
    ``J u = s * (u - (s . u) / sum s)`` with ``s = w^(2 - alpha)`` on the support.

    Parameters
    ----------
    q, k, v : array_like
        The inputs of the forward call.
    weights : array_like, shape (..., Lq, Lk)
        The weights the forward call returned (their support is used; masked keys have
        weight 0 and receive no gradient).
    grad_output : array_like, shape (..., Lq, dv)
        Gradient of the loss w.r.t. the output.
    scale : float, optional
        The forward call's scale (default ``1 / sqrt(d)``).
    alpha : float, optional
        The forward call's alpha (default 2: sparsemax).

    Returns
    -------
    grad_q, grad_k, grad_v : numpy.ndarray
        Shapes of ``q``, ``k`` and ``v`` (summed over axes that were broadcast). A NaN
        weight row (all keys masked) gives a NaN row of ``grad_q`` and contributes nothing
        to ``grad_k`` and ``grad_v``.

    Raises
    ------
    ValueError
        For shapes that do not match the forward call.
    """
    _, a = _alpha(alpha)
    (q0, k0, v0, w0, g0), dt, batch = _prepare(q, k, v, (weights, grad_output))
    Lq, d = q0.shape[-2:]
    Lk, dv = v0.shape[-2:]
    if w0.shape[-2:] != (Lq, Lk) or g0.shape[-2:] != (Lq, dv):
        raise ValueError(
            f"weights must end in {(Lq, Lk)} and grad_output in {(Lq, dv)}; got "
            f"{w0.shape} and {g0.shape}"
        )
    try:
        batch = np.broadcast_shapes(batch, w0.shape[:-2], g0.shape[:-2])
    except ValueError:
        raise ValueError("weights and grad_output do not broadcast with q, k, v") from None
    s = _scale(scale, d)
    Q = _flat(q0, batch, (Lq, d), dt)
    K = _flat(k0, batch, (Lk, d), dt)
    V = _flat(v0, batch, (Lk, dv), dt)
    P = _flat(w0, batch, (Lq, Lk), dt)
    G = _flat(g0, batch, (Lq, dv), dt)
    B = Q.shape[0]
    gQ = np.zeros_like(Q)
    gK = np.zeros_like(K)
    gV = np.zeros_like(V)
    if B and Lq and Lk:
        # The backward pass needs no mapping (only the weights): one build for all.
        _run("sparsemax", "backward", B, P.size * max(d, dv), Q, K, V, P, G, s, a, gQ, gK, gV)
    elif B and Lq:
        gQ[...] = np.nan
    full = batch
    return (
        _unbroadcast(gQ.reshape(full + (Lq, d)), q0.shape),
        _unbroadcast(gK.reshape(full + (Lk, d)), k0.shape),
        _unbroadcast(gV.reshape(full + (Lk, dv)), v0.shape),
    )
