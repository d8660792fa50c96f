"""The CPU backend: Numba drivers over rows, built from a mapping's row functions, and the
host side of each operation (layout, output, thread policy).

The public functions (:mod:`sparsemax_nb.api`) have checked every argument that needs no
data before they call the operations here; this module checks the data (class indices,
target rows) with the rules of :mod:`sparsemax_nb._checks`, lays the data out as
C-contiguous ``(rows, K)`` float arrays (:mod:`sparsemax_nb._layout`) and runs a driver
under the thread policy of :mod:`sparsemax_nb.backends._threads`.

Drivers
-------
Each driver is built from one source per mapping and per loop: ``loop = prange`` for the
parallel build, ``range`` for the serial one. The mapping module and ``loop`` are closure
variables; both pickle by reference, so Numba keys every (mapping, build) pair apart in
its on-disk cache and finds it again in the next process. ``nchunk`` splits the rows;
each chunk owns one scratch buffer, so nothing is allocated per row. ``theta`` holds the
mapping's parameter, one value for all rows or one per row.

Each driver exists in builds that differ by constant closure variables, so that Numba
compiles only what a call runs: ``short`` (rows of at most the mapping's ``SMALL_K``
entries, through its block path) and ``sort`` (only the build for ``method="sort"``
contains the sort). Optional mapping hooks used when present: ``threshold_select(z, buf,
theta)`` (the threshold for the other methods, same bits as ``threshold``) and
``small_loss_labels(z, y, ignore, scale, loss, grad, want_grad, lo, hi, theta)`` (the loss
with labels over a range of short rows).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable

import numpy as np
from numba import njit, prange

from .. import _checks as C
from .. import mappings
from .._layout import Output, batch_shape, rows_view
from .._jit import JIT
from ..mappings._rows import cast_like, max_bad
from . import _threads

NAME = "cpu"
STREAMS = False


def stream_error() -> TypeError:
    return C.no_stream_error()


def _make_drivers(mp: ModuleType, loop: Callable[..., Any], short: bool = False,
                  sort: bool = True) -> dict[str, Callable[..., Any]]:
    # ``short``: the build of forward, threshold and loss_labels for arrays of rows of at
    # most SMALL_K entries (the mapping's short-row path); otherwise the row-by-row build,
    # valid for any K. A constant closure variable, so Numba prunes the branch not taken
    # and compiles only the path a call needs (compile time: asv_bench/NOTES.md).
    # Optional hook of a mapping with a short-row path: ``small_loss_labels(z, y, ignore,
    # scale, loss, grad, want_grad, lo, hi, theta)``, the loss with labels over rows lo:hi
    # (its rows' losses bitwise those of ``loss_label``); without it the short build of
    # loss_labels is the row-by-row one.
    small_loss = short and getattr(mp, "small_loss_labels", None) is not None
    # ``sort``: the build that may meet method="sort". Without it, a mapping's optional
    # ``threshold_select(z, buf, theta)`` (``threshold`` for the other methods, the same
    # bits) is called, so the sort is not compiled for calls that never use it.
    sel = not sort and getattr(mp, "threshold_select", None) is not None

    def _forward_rows(z, p, method, theta, nchunk):
        n, K = z.shape
        nth = theta.shape[0]
        dummy_tau = np.empty(0, np.float64)
        dummy_k = np.empty(0, np.int64)
        for c in loop(nchunk):
            buf = np.empty(mp.SCRATCH * K, np.float64)
            lo = c * n // nchunk
            hi = (c + 1) * n // nchunk
            if short:
                mp.small_rows(z, p, dummy_tau, dummy_k, lo, hi, buf, True, theta[0])
                continue
            for r in range(lo, hi):
                th = theta[0] if nth == 1 else theta[r]
                if sel:
                    m, tau, k = mp.threshold_select(z[r], buf, th)
                else:
                    m, tau, k = mp.threshold(z[r], buf, method, th)
                mp.write(z[r], p[r], m, tau, k, th)

    def _threshold_rows(z, tau_out, k_out, method, theta, nchunk):
        n, K = z.shape
        nth = theta.shape[0]
        dummy_p = np.empty((0, 0), z.dtype)
        for c in loop(nchunk):
            buf = np.empty(mp.SCRATCH * K, np.float64)
            lo = c * n // nchunk
            hi = (c + 1) * n // nchunk
            if short:
                mp.small_rows(z, dummy_p, tau_out, k_out, lo, hi, buf, False, theta[0])
                continue
            for r in range(lo, hi):
                th = theta[0] if nth == 1 else theta[r]
                if sel:
                    m, tau, k = mp.threshold_select(z[r], buf, th)
                else:
                    m, tau, k = mp.threshold(z[r], buf, method, th)
                tau_out[r] = mp.tau_of(m, tau, th)
                k_out[r] = k

    def _jvp_rows(p, v, out, theta, nchunk):
        n, K = p.shape
        nth = theta.shape[0]
        for c in loop(nchunk):
            for r in range(c * n // nchunk, (c + 1) * n // nchunk):
                th = theta[0] if nth == 1 else theta[r]
                mp.jvp(p[r], v[r], out[r], th)

    def _theta_vjp_rows(p, g, out, theta, nchunk):
        # Only for mappings with the optional hook ``theta_vjp(p, g, theta)``.
        n, K = p.shape
        nth = theta.shape[0]
        for c in loop(nchunk):
            for r in range(c * n // nchunk, (c + 1) * n // nchunk):
                th = theta[0] if nth == 1 else theta[r]
                out[r] = mp.theta_vjp(p[r], g[r], th)

    def _loss_labels_rows(z, y, ignore, scale, loss, grad, want_grad, method, theta, nchunk):
        n, K = z.shape
        nth = theta.shape[0]
        for c in loop(nchunk):
            if small_loss:
                mp.small_loss_labels(z, y, ignore, scale, loss, grad, want_grad,
                                     c * n // nchunk, (c + 1) * n // nchunk, theta[0])
                continue
            buf = np.empty(mp.SCRATCH * K, np.float64)
            for r in range(c * n // nchunk, (c + 1) * n // nchunk):
                if y[r] == ignore:
                    loss[r] = 0.0
                    if want_grad:
                        for j in range(K):
                            grad[r, j] = 0.0
                    continue
                th = theta[0] if nth == 1 else theta[r]
                if sel:
                    m, tau, k = mp.threshold_select(z[r], buf, th)
                else:
                    m, tau, k = mp.threshold(z[r], buf, method, th)
                if k == 0:
                    loss[r] = np.nan
                    if want_grad:
                        for j in range(K):
                            grad[r, j] = np.nan
                    continue
                loss[r] = mp.loss_label(z[r], y[r], m, tau, k, th, scale, grad[r], want_grad)

    def _loss_dist_rows(z, q, scale, loss, grad, want_grad, method, theta, nchunk):
        n, K = z.shape
        nth = theta.shape[0]
        for c in loop(nchunk):
            buf = np.empty(mp.SCRATCH * K, np.float64)
            for r in range(c * n // nchunk, (c + 1) * n // nchunk):
                th = theta[0] if nth == 1 else theta[r]
                if sel:
                    m, tau, k = mp.threshold_select(z[r], buf, th)
                else:
                    m, tau, k = mp.threshold(z[r], buf, method, th)
                if k == 0:
                    loss[r] = np.nan
                    if want_grad:
                        for j in range(K):
                            grad[r, j] = np.nan
                    continue
                loss[r] = mp.loss_dist(z[r], q[r], m, tau, k, th, scale, grad[r], want_grad)

    def _big_rows(z, p, tau_out, k_out, method, want_p, nblk):
        # Only for mappings with BIG_ROWS (the block hooks of sparsemax's Newton search).
        """Threshold (and, with ``want_p``, sparsemax) of a few long rows, each split into
        ``nblk`` blocks: the passes of _tau_newton, block by block (in parallel in the
        parallel build) and summed, then the entries above the last ``t`` are gathered.
        Scratch: one buffer of K floats per call; no per-row allocation."""
        n, K = z.shape
        buf = np.empty(K, np.float64)
        bm = np.empty(nblk, np.float64)
        bs = np.empty(nblk, np.float64)
        bk = np.empty(nblk, np.int64)
        for r in range(n):
            row = z[r]
            if sort and method == C.SORT:  # the non-sort build compiles no sort
                m, tau, k = mp.threshold(row, buf, method, 0.0)
            else:
                for b in loop(nblk):
                    mb, bad = max_bad(row[b * K // nblk : (b + 1) * K // nblk])
                    bm[b] = np.inf if bad else mb
                m = bm.max()
                k = 0
                tau = np.nan
                if m == np.inf or m == -np.inf:
                    m = np.nan
                else:
                    mw = cast_like(m, row)
                    t = cast_like(-1.0, row)
                    for b in loop(nblk):
                        bs[b], bk[b] = mp.sum_above(row[b * K // nblk : (b + 1) * K // nblk], mw, t)
                    s = bs.sum()
                    kc = bk.sum()
                    for _ in range(mp.NEWTON_PASSES):
                        if 8 * kc <= K:
                            break
                        t = cast_like((s - 1.0) / kc, row)
                        for b in loop(nblk):
                            seg = row[b * K // nblk : (b + 1) * K // nblk]
                            bs[b], bk[b] = mp.sum_above(seg, mw, t)
                        s2 = bs.sum()
                        k2 = bk.sum()
                        if k2 == kc:
                            if row.itemsize == 4:
                                for b in loop(nblk):
                                    seg = row[b * K // nblk : (b + 1) * K // nblk]
                                    bs[b] = mp.sum_above_f64(seg, mw, t)
                                s2 = bs.sum()
                            tau = (s2 - 1.0) / kc
                            k = kc
                            break
                        if k2 > kc:
                            break
                        s = s2
                        kc = k2
                    if k == 0:
                        # Each block copies its candidates to its own stretch of buf,
                        # then the stretches are closed up and finished exactly.
                        for b in loop(nblk):
                            lo = b * K // nblk
                            bk[b] = mp.gather_sparse(row[lo : (b + 1) * K // nblk], mw, t, buf[lo:])
                        c = 0
                        for b in range(nblk):
                            lo = b * K // nblk
                            for i in range(bk[b]):
                                buf[c + i] = buf[lo + i]
                            c += bk[b]
                        tau, k = mp.tau_select(buf, c)
            tau_out[r] = mp.tau_of(m, tau, 0.0)
            k_out[r] = k
            if want_p:
                for b in loop(nblk):
                    lo = b * K // nblk
                    hi = (b + 1) * K // nblk
                    mp.write(row[lo:hi], p[r, lo:hi], m, tau, k, 0.0)

    return {
        "big": _big_rows,
        "forward": _forward_rows,
        "threshold": _threshold_rows,
        "jvp": _jvp_rows,
        "theta_vjp": _theta_vjp_rows,
        "loss_labels": _loss_labels_rows,
        "loss_dist": _loss_dist_rows,
    }


_SOURCES: dict[tuple[str, bool, bool, bool], dict[str, Callable[..., Any]]] = {}
_BUILT: dict[tuple[str, str, bool, bool, bool], Any] = {}
# The drivers that have a short-row build.
_SHORT = ("forward", "threshold", "loss_labels")


def get(mapping: str, name: str, parallel: bool, short: bool = False,
        sort: bool = True) -> Any:
    """The compiled driver ``name`` of ``mapping`` (parallel or serial build; with
    ``short``, the build for rows of at most the mapping's ``SMALL_K`` entries; without
    ``sort``, a build that only takes the other methods).

    Compiled lazily on first use for the dtypes it meets, and cached on disk by Numba.
    """
    short = short and name in _SHORT
    key = (mapping, name, parallel, short, sort)
    fn = _BUILT.get(key)
    if fn is None:
        src = _SOURCES.get((mapping, parallel, short, sort))
        if src is None:
            src = _make_drivers(mappings.get(mapping), prange if parallel else range, short,
                                sort)
            _SOURCES[(mapping, parallel, short, sort)] = src
        fn = njit(parallel=parallel, **JIT)(src[name])
        _BUILT[key] = fn
    return fn


def _run(mapping: str, name: str, rows: int, size: int, method: int, *args: Any) -> Any:
    """Run driver ``name``; ``method`` is the driver's method argument (a concrete code
    from pick_method, or -1 for a driver without one), used to pick the build."""
    mp = mappings.get(mapping)
    short = size // max(rows, 1) <= mp.SMALL_K
    sort = method == C.SORT
    return _threads.run(lambda n, par: get(mapping, n, par, short, sort), name, rows, size,
                        *args, big_rows=mp.BIG_ROWS)


# --------------------------------------------------------------------------- operations
# The same names and arguments in every backend module (cpu, cuda, dask). Arguments come
# checked by sparsemax_nb.api: ``ax`` is a valid axis index, ``code`` a method code,
# ``theta`` a float64 array of the batch shape or of one element.


def asarray(x: Any, name: str = "z") -> np.ndarray:
    """The host array of an argument."""
    return C.host_array(x, name)


def _theta_rows(theta: np.ndarray, n: int) -> np.ndarray:
    if theta.shape == (1,) and theta.dtype == np.float64:
        return theta
    t = np.ascontiguousarray(theta, dtype=np.float64).reshape(-1)
    return t if t.shape[0] in (1, n) else np.broadcast_to(t, (n,)).copy()


def forward(mapping: str, z: np.ndarray, ax: int, out: Any, code: int, theta: np.ndarray,
            dt: np.dtype, stream: Any = None) -> np.ndarray:
    z2 = rows_view(z, ax, dt)
    o = Output(out, z.shape, dt, ax, (z2,))
    n, K = z2.shape
    if z2.size:
        m = C.pick_method(code, K)
        _run(mapping, "forward", n, z2.size, m, z2, o.rows, m, _theta_rows(theta, n))
    return o.finish()


def threshold(mapping: str, z: np.ndarray, ax: int, code: int, theta: np.ndarray,
              dt: np.dtype, stream: Any = None) -> tuple[np.ndarray, np.ndarray]:
    z2 = rows_view(z, ax, dt)
    n, K = z2.shape
    tau = np.full(n, np.nan, dt)
    k = np.zeros(n, np.int64)
    if z2.size:
        m = C.pick_method(code, K)
        _run(mapping, "threshold", n, z2.size, m, z2, tau, k, m, _theta_rows(theta, n))
    batch = batch_shape(z.shape, ax)
    return tau.reshape(batch), k.reshape(batch)


def jvp(mapping: str, p: np.ndarray, v: np.ndarray, ax: int, out: Any, theta: np.ndarray,
        dt: np.dtype, stream: Any = None) -> np.ndarray:
    p2 = rows_view(p, ax, dt)
    v2 = rows_view(v, ax, dt)
    o = Output(out, v.shape, dt, ax, (p2, v2))
    n, K = v2.shape
    if v2.size:
        _run(mapping, "jvp", n, v2.size, -1, p2, v2, o.rows, _theta_rows(theta, n))
    return o.finish()


def theta_vjp(mapping: str, p: np.ndarray, g: np.ndarray, ax: int, theta: np.ndarray,
              dt: np.dtype, stream: Any = None) -> np.ndarray:
    """``sum g * dp/dtheta`` per row, for a mapping with the ``theta_vjp`` hook."""
    p2 = rows_view(p, ax, dt)
    g2 = rows_view(g, ax, dt)
    n, K = g2.shape
    res = np.full(n, np.nan, dt)
    if g2.size:
        _run(mapping, "theta_vjp", n, g2.size, -1, p2, g2, res, _theta_rows(theta, n))
    return res.reshape(batch_shape(g.shape, ax))


def loss(mapping: str, z: np.ndarray, target: np.ndarray, kind: str, ax: int,
         reduction: str, ignore_index: int | None, code: int, theta: np.ndarray,
         dt: np.dtype, want_grad: bool, out: Any, stream: Any = None,
         checked: bool = False) -> tuple[Any, np.ndarray | None]:
    """``(loss, grad)``; ``kind`` is ``"labels"`` or ``"dist"``. With ``checked`` the
    target's data rules are taken as already applied (the Dask backend does so per block
    with global positions)."""
    batch = batch_shape(z.shape, ax)
    K = z.shape[ax]
    z2 = rows_view(z, ax, dt)
    n = z2.shape[0]
    if kind == "labels":
        if not checked:
            C.check_labels(target, batch, K, ignore_index)
        labels = np.ascontiguousarray(target, dtype=np.int64).reshape(-1)
        # Labels are >= 0 here, so -1 never matches.
        ignore = np.int64(-1 if ignore_index is None else ignore_index)
        n_valid = labels.size if ignore_index is None else int(np.count_nonzero(labels != ignore))
        rows_in: tuple[np.ndarray, ...] = (z2, labels)
    else:
        if not checked:
            C.check_distributions(target, ax)
        q2 = rows_view(target, ax, dt)
        n_valid = n
        rows_in = (z2, q2)
    scale = 1.0
    if reduction == "mean":
        scale = 1.0 / n_valid if n_valid else 0.0
    if want_grad:
        o = Output(out, z.shape, dt, ax, rows_in, "out")
        grad_rows = o.rows
    else:
        # (n, 0): the drivers may take row r of it (zero length) when no gradient is wanted
        grad_rows = np.empty((n, 0), dt)
    per_row = np.empty(n, dt)
    m = C.pick_method(code, K)
    th = _theta_rows(theta, n)
    if n:
        if kind == "labels":
            _run(mapping, "loss_labels", n, z2.size, m, z2, labels, ignore, scale, per_row,
                 grad_rows, want_grad, m, th)
        else:
            _run(mapping, "loss_dist", n, z2.size, m, z2, q2, scale, per_row, grad_rows,
                 want_grad, m, th)
    if reduction == "none":
        loss_out: Any = per_row.reshape(batch)
    else:
        total = float(np.sum(per_row, dtype=np.float64))
        if reduction == "mean":
            total = total / n_valid if n_valid else np.nan
        loss_out = dt.type(total)
    return loss_out, (o.finish() if want_grad else None)


def proportions(y: np.ndarray, ax: int, dt: np.dtype, stream: Any = None,
                checked: bool = False) -> np.ndarray:
    s = np.sum(y, axis=ax, keepdims=True, dtype=np.float64)
    if not checked:
        C.check_01(y)
        C.check_nonempty(np.squeeze(s, axis=ax))
    return (y / s).astype(dt, copy=False)
