"""CPU kernels: Numba ``@njit`` functions over rows of a C-contiguous 2-D array.

Everything here works on a ``(n_rows, K)`` C-contiguous array; the dispatch layer
(:mod:`sparsemax_nb._dispatch`) moves the user's ``axis`` last, fixes the dtype and
byte order, and picks the parallel or the serial build of each driver.

Numerical choices shared by every kernel
----------------------------------------
* A row is first shifted by its maximum ``m`` (``d = z - m``, so ``max d = 0``). Sparsemax
  is invariant to the shift, and it keeps ``1e308``-sized rows exact: ``d`` is exact for
  entries within a factor two of ``m`` (Sterbenz), and the rest lie far outside the support.
* All sums accumulate in float64, whatever the input dtype.
* Only entries with ``d > -1`` can be in the support (``p_max <= 1`` gives ``tau >= m - 1``),
  so both thresholds first copy those candidates into a float64 buffer and work there.
* ``tau`` is always finished by the exact support formula ``tau = (sum_S d - 1) / k``.
* A row holding a NaN or ``+inf``, or with no finite entry, has ``k = 0``; its outputs are NaN.
"""

import numpy as np
from numba import njit, prange

SORT = 0
SELECT = 1

_JIT = dict(cache=True, nogil=True, error_model="numpy")


# --------------------------------------------------------------------------- row helpers
@njit(**_JIT)
def _row_max(z):
    """Row maximum as float64, or NaN when the row cannot be projected.

    NaN, ``+inf`` and an all ``-inf`` row give NaN (SPEC section 4).
    """
    m = -np.inf
    nan = False
    for i in range(z.shape[0]):
        x = np.float64(z[i])
        nan |= x != x
        if x > m:
            m = x
    if nan or m == np.inf or m == -np.inf:
        return np.nan
    return m


@njit(**_JIT)
def _gather(z, m, buf):
    """Copy ``d = z - m`` of the entries with ``d > -1`` into ``buf``; return their count."""
    n = 0
    for i in range(z.shape[0]):
        d = np.float64(z[i]) - m
        # Branch-free stream compaction: always write, advance only for a candidate.
        buf[n] = d
        n += d > -1.0
    return n


@njit(**_JIT)
def _tau_sort(buf, n):
    """Sort-based threshold of Martins & Astudillo (2016), eq. (4), on ``buf[:n]``.

    Returns ``(tau, k)`` in shifted coordinates. The candidates are sorted ascending and
    scanned from the top: ``k`` is the last index with ``1 + k d_(k) > sum_{j<=k} d_(j)``;
    the set of indices meeting the test is a prefix, so the scan stops at the first miss.
    """
    c = buf[:n]
    c.sort()
    cs = 0.0
    s = 0.0
    k = 0
    for j in range(1, n + 1):
        x = c[n - j]
        cs += x
        if 1.0 + j * x > cs:
            k = j
            s = cs
        else:
            break
    return (s - 1.0) / k, k


@njit(**_JIT)
def _insertion_sort(a, lo, hi):
    for i in range(lo + 1, hi):
        x = a[i]
        j = i - 1
        while j >= lo and a[j] > x:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = x


@njit(**_JIT)
def _partition3(a, lo, hi, v):
    """Dutch-flag partition of ``a[lo:hi]`` into ``[> v | == v | < v]``.

    Returns ``(n_gt, n_eq, sum_gt)``.
    """
    i = lo  # a[lo:i] > v
    j = lo  # a[i:j] == v
    t = hi  # a[t:hi] < v
    s = 0.0
    while j < t:
        x = a[j]
        if x > v:
            a[j] = a[i]
            a[i] = x
            s += x
            i += 1
            j += 1
        elif x < v:
            t -= 1
            a[j] = a[t]
            a[t] = x
        else:
            j += 1
    return i - lo, j - i, s


@njit(**_JIT)
def _kth_largest(a, lo, hi, k):
    """Value of the ``k``-th largest (0-based) of ``a[lo:hi]``, reordering it in place.

    Median-of-medians pivots (groups of five): O(hi - lo) in the worst case.
    """
    while True:
        n = hi - lo
        if n <= 16:
            _insertion_sort(a, lo, hi)
            return a[hi - 1 - k]
        ng = n // 5
        for g in range(ng):
            b = lo + 5 * g
            _insertion_sort(a, b, b + 5)
            x = a[b + 2]
            a[b + 2] = a[lo + g]
            a[lo + g] = x
        v = _kth_largest(a, lo, lo + ng, ng // 2)
        n_gt, n_eq, _ = _partition3(a, lo, hi, v)
        if k < n_gt:
            hi = lo + n_gt
        elif k < n_gt + n_eq:
            return v
        else:
            k -= n_gt + n_eq
            lo += n_gt + n_eq


@njit(**_JIT)
def _support_pivot(a, n):
    """Support sum and size of ``a[:n]`` by pivoting, O(n) in the worst case.

    Invariant: every entry already counted in ``(s, k)`` is in the support and larger than
    every entry of the active range ``a[lo:hi]``, which is larger than every discarded one.
    A pivot ``v`` is in the support iff ``1 + c v > sum`` over the ``c`` entries ``>= v``
    (ties at ``v`` are all in or all out). A median-of-three pivot is used while the active
    range shrinks to at most 3/4 per step; after a worse step the next pivot is the exact
    median (median of medians), so the range at least halves every two steps.
    """
    lo = 0
    hi = n
    s = 0.0
    k = 0
    exact = False
    while hi > lo:
        size = hi - lo
        if exact:
            v = _kth_largest(a, lo, hi, size // 2)
        else:
            x = a[lo]
            y = a[lo + size // 2]
            z = a[hi - 1]
            v = max(min(x, y), min(max(x, y), z))
        n_gt, n_eq, s_gt = _partition3(a, lo, hi, v)
        c = k + n_gt + n_eq
        sc = s + s_gt + n_eq * v
        if 1.0 + c * v > sc:
            k = c
            s = sc
            lo += n_gt + n_eq
        else:
            hi = lo + n_gt
        exact = 4 * (hi - lo) > 3 * size
    return s, k


@njit(**_JIT)
def _tau_select(buf, n):
    """Linear-time threshold on ``buf[:n]``; returns ``(tau, k)`` in shifted coordinates.

    Michelot's fixed point: ``tau = (sum_C d - 1) / |C|`` over a superset ``C`` of the
    support never exceeds the true tau, so entries ``<= tau`` can be dropped and the step
    repeated until nothing moves. It usually ends in a few passes, but can drop a single
    entry per pass (for example ``d_i = -2^-i``), so it runs within a budget of ``4 n``
    entry visits; what is left then goes to :func:`_support_pivot`, linear in the worst case.
    """
    k = n
    s = 0.0
    for i in range(n):
        s += buf[i]
    budget = 4 * n + 64
    while True:
        tau = (s - 1.0) / k
        j = 0
        s2 = 0.0
        for i in range(k):
            x = buf[i]
            keep = x > tau
            buf[j] = x
            j += keep
            s2 += x if keep else 0.0
        if j == k:
            return (s2 - 1.0) / k, k
        budget -= k
        k = j
        s = s2
        if budget < 0:
            s, k = _support_pivot(buf, k)
            return (s - 1.0) / k, k


@njit(**_JIT)
def _row_threshold(z, buf, method):
    """``(m, tau_shifted, k)`` for one row; ``k == 0`` marks a row of NaN."""
    m = _row_max(z)
    if m != m:
        return m, np.nan, 0
    n = _gather(z, m, buf)
    if method == SORT:
        tau, k = _tau_sort(buf, n)
    else:
        tau, k = _tau_select(buf, n)
    return m, tau, k


@njit(**_JIT)
def _row_write(z, p, m, tau, k):
    if k == 0:
        for i in range(z.shape[0]):
            p[i] = np.nan
        return
    for i in range(z.shape[0]):
        # (z - m) - tau rather than z - (m + tau): exact for huge rows, see module notes.
        p[i] = max((np.float64(z[i]) - m) - tau, 0.0)


# --------------------------------------------------------------------------- drivers
# The drivers are built twice from one source: with ``loop = prange`` for the parallel
# build and ``loop = range`` for the serial one. ``loop`` is a closure variable, so Numba
# keys the two builds apart in its on-disk cache. ``nchunk`` splits the rows; each chunk
# owns one scratch buffer, so nothing is allocated per row.


def _make_drivers(loop):

    def _forward_rows(z, p, method, nchunk):
        n, K = z.shape
        for c in loop(nchunk):
            buf = np.empty(K, np.float64)
            for r in range(c * n // nchunk, (c + 1) * n // nchunk):
                m, tau, k = _row_threshold(z[r], buf, method)
                _row_write(z[r], p[r], m, tau, k)

    def _threshold_rows(z, tau_out, k_out, method, nchunk):
        n, K = z.shape
        for c in loop(nchunk):
            buf = np.empty(K, np.float64)
            for r in range(c * n // nchunk, (c + 1) * n // nchunk):
                m, tau, k = _row_threshold(z[r], buf, method)
                tau_out[r] = m + tau
                k_out[r] = k

    def _jvp_rows(p, v, out, nchunk):
        n, K = p.shape
        for c in loop(nchunk):
            for r in range(c * n // nchunk, (c + 1) * n // nchunk):
                s = 0.0
                k = 0
                nan = False
                for j in range(K):
                    pj = p[r, j]
                    if pj > 0:
                        s += np.float64(v[r, j])
                        k += 1
                    nan |= pj != pj
                if nan or k == 0:
                    # No support (not a sparsemax output) or a NaN row: J is undefined.
                    for j in range(K):
                        out[r, j] = np.nan
                    continue
                mean = s / k
                for j in range(K):
                    out[r, j] = np.float64(v[r, j]) - mean if p[r, j] > 0 else 0.0

    def _loss_labels_rows(z, y, ignore, scale, loss, grad, want_grad, method, nchunk):
        """Loss (and gradient) for class-index targets, one pass after tau.

        ``L = 1/2 ||p - q||^2 + sum_{j not in S} q_j (tau - z_j)``: the two forms of the SPEC
        expanded around ``p``; both terms are non-negative, so there is no cancellation near
        ``L = 0``, and ``q_j = 0`` terms are skipped so a ``-inf`` mask never meets ``0 * inf``.
        """
        n, K = z.shape
        for c in loop(nchunk):
            buf = np.empty(K, np.float64)
            for r in range(c * n // nchunk, (c + 1) * n // nchunk):
                label = y[r]
                if label == ignore:
                    loss[r] = 0.0
                    if want_grad:
                        for j in range(K):
                            grad[r, j] = 0.0
                    continue
                m, tau, k = _row_threshold(z[r], buf, method)
                if k == 0:
                    loss[r] = np.nan
                    if want_grad:
                        for j in range(K):
                            grad[r, j] = np.nan
                    continue
                # Read before the loop: grad may be z itself (in place).
                dy = np.float64(z[r, label]) - m
                acc = 0.0
                for j in range(K):
                    pj = max((np.float64(z[r, j]) - m) - tau, 0.0)
                    g = pj - 1.0 if j == label else pj
                    acc += g * g
                    if want_grad:
                        grad[r, j] = g * scale
                acc *= 0.5
                if not dy > tau:
                    acc += tau - dy
                loss[r] = acc

    def _loss_dist_rows(z, q, scale, loss, grad, want_grad, method, nchunk):
        """Loss (and gradient) for one target distribution per row; see _loss_labels_rows."""
        n, K = z.shape
        for c in loop(nchunk):
            buf = np.empty(K, np.float64)
            for r in range(c * n // nchunk, (c + 1) * n // nchunk):
                m, tau, k = _row_threshold(z[r], buf, method)
                if k == 0:
                    loss[r] = np.nan
                    if want_grad:
                        for j in range(K):
                            grad[r, j] = np.nan
                    continue
                acc = 0.0
                off = 0.0
                for j in range(K):
                    d = np.float64(z[r, j]) - m
                    pj = max(d - tau, 0.0)
                    qj = np.float64(q[r, j])
                    g = pj - qj
                    acc += g * g
                    if qj != 0.0 and not d > tau:
                        off += qj * (tau - d)
                    if want_grad:
                        grad[r, j] = g * scale
                loss[r] = 0.5 * acc + off

    return {
        "forward": _forward_rows,
        "threshold": _threshold_rows,
        "jvp": _jvp_rows,
        "loss_labels": _loss_labels_rows,
        "loss_dist": _loss_dist_rows,
    }


_SOURCES = {False: _make_drivers(range), True: _make_drivers(prange)}
_BUILT = {}


def get(name, parallel):
    """The compiled driver ``name`` (parallel or serial build).

    Compiled lazily on first use for the dtypes it meets, and cached on disk by Numba.
    """
    key = (name, parallel)
    fn = _BUILT.get(key)
    if fn is None:
        fn = njit(parallel=parallel, **_JIT)(_SOURCES[parallel][name])
        _BUILT[key] = fn
    return fn
