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
from numba import njit, prange, types
from numba.extending import intrinsic, overload

SORT = 0
SELECT = 1

_JIT = dict(cache=True, nogil=True, error_model="numpy")


# --------------------------------------------------------------------------- row helpers
@intrinsic
def _bits_to_float(typingctx, x):
    """Reinterpret an int32 (int64) as the float32 (float64) with the same bits."""
    if x == types.int32:
        ret = types.float32
    elif x == types.int64:
        ret = types.float64
    else:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(ret))

    return ret(x), codegen


def _max_bad(z):
    """``(max as float64, bad)``: ``bad`` if the entries hold a NaN or ``+inf``."""


@overload(_max_bad, jit_options=_JIT)
def _max_bad_impl(z):
    if isinstance(z, types.Array) and z.layout == "C" and z.dtype in (types.float32, types.float64):
        bits, top = (np.int32, 31) if z.dtype == types.float32 else (np.int64, 63)
        imin, imax = int(np.iinfo(bits).min), int(np.iinfo(bits).max)
        inf_image = _float_image(bits, np.inf)
        ninf_image = _float_image(bits, -np.inf)

        def impl(z):
            # A float max reduction only vectorises under fast-math ``nnan``; the same max
            # over integers does without it. Flipping the magnitude bits of negative
            # numbers maps IEEE order onto signed-integer order: -NaN < -inf < ... < +inf
            # < +NaN, so the entries are bad iff hi >= image(+inf) or lo < image(-inf).
            b = z.view(bits)
            hi = bits(imin)
            lo = bits(imax)
            for i in range(b.shape[0]):
                x = b[i]
                y = x ^ ((x >> bits(top)) & bits(imax))
                hi = max(hi, y)
                lo = min(lo, y)
            if hi >= inf_image or lo < ninf_image:
                return np.nan, True
            return np.float64(_bits_to_float(bits(hi ^ ((hi >> bits(top)) & bits(imax))))), False

        return impl

    def generic(z):
        m = -np.inf
        nan = False
        for i in range(z.shape[0]):
            x = np.float64(z[i])
            nan |= x != x
            if x > m:
                m = x
        if nan or m == np.inf:
            return np.nan, True
        return m, False

    return generic


@njit(**_JIT)
def _row_max(z):
    """Row maximum as float64, or NaN when the row cannot be projected.

    NaN, ``+inf`` and an all ``-inf`` row give NaN (SPEC section 4).
    """
    m, bad = _max_bad(z)
    if bad or m == -np.inf:
        return np.nan
    return m


def _float_image(bits, value):
    """The signed-integer image of a float used by _row_max (a compile-time constant)."""
    x = int(np.array(value, dtype=np.float32 if bits == np.int32 else np.float64).view(bits))
    return x ^ int(np.iinfo(bits).max) if x < 0 else x


@njit(fastmath={"reassoc", "contract"}, **_JIT)
def _sum_above(z, m, t):
    """``(sum, count)`` of ``d = z - m`` over the entries with ``d > t``.

    ``m`` and ``t`` come in the dtype of ``z`` and so does the arithmetic: one vectorised
    pass, eight float32 lanes a register for float32 rows (``reassoc`` lets the sum use
    several lanes). The sum only steers the search; the final tau comes from
    :func:`_sum_above_f64`. It gives ``f(t) = sum (d - t)_+ - 1`` and its slope.
    """
    K = z.shape[0]
    if K > 1 << 24:
        # Beyond 2^24 a float32 count could round: count in int64, sum in float64.
        s64 = 0.0
        k = 0
        for i in range(K):
            d = z[i] - m
            keep = d > t
            s64 += np.float64(d) if keep else 0.0
            k += keep
        return s64, k
    zero = t - t
    one = zero + 1
    s = zero
    c = zero  # counting in the row's dtype keeps every lane 32-bit for float32 rows
    for i in range(K):
        d = z[i] - m
        keep = d > t
        s += d if keep else zero
        c += one if keep else zero
    return np.float64(s), int(c)


@njit(fastmath={"reassoc", "contract"}, **_JIT)
def _sum_above_f64(z, m, t):
    """The float64 sum of ``d = z - m`` over the entries with ``d > t`` (``d`` compared in
    the dtype of ``z``, as in :func:`_sum_above`, so both passes see the same set)."""
    s = 0.0
    for i in range(z.shape[0]):
        d = z[i] - m
        s += np.float64(z[i]) - np.float64(m) if d > t else 0.0
    return s


@njit(**_JIT)
def _gather_sparse(z, m, t, buf):
    """Copy ``d = z - m`` (float64) of the entries with ``d > t`` into ``buf``.

    ``m`` and ``t`` are in the row's dtype and the test is made in it, as in
    :func:`_sum_above`. Made for few candidates: blocks of 64 are tested with vectorised
    compares and only a block holding a candidate is copied entry by entry (64 measured
    faster than 16 or 32 on sparse rows).
    """
    B = 64
    K = z.shape[0]
    mf = np.float64(m)
    n = 0
    for b in range(0, K - K % B, B):
        hit = False
        for j in range(b, b + B):
            hit |= z[j] - m > t
        if hit:
            for j in range(b, b + B):
                if z[j] - m > t:
                    buf[n] = np.float64(z[j]) - mf
                    n += 1
    for j in range(K - K % B, K):
        if z[j] - m > t:
            buf[n] = np.float64(z[j]) - mf
            n += 1
    return n


@njit(**_JIT)
def _gather(z, m, t, buf):
    """Copy ``d = z - m`` of the entries with ``d > t`` into ``buf``; return their count."""
    n = 0
    for i in range(z.shape[0]):
        d = np.float64(z[i]) - m
        # Branch-free stream compaction: always write, advance only for a candidate.
        buf[n] = d
        n += d > t
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


# Full passes Newton may make before the rest of a row goes to the linear-time finish.
NEWTON_PASSES = 12


def _cast_like(x, like):
    """``x`` converted to the type of the scalar ``like`` (jitted code only)."""


@overload(_cast_like, jit_options=_JIT)
def _cast_like_impl(x, like):
    target = like.dtype if isinstance(like, types.Array) else like
    return lambda x, like: target(x)


@njit(**_JIT)
def _tau_newton(z, m, buf):
    """Linear-time threshold of one row (shifted by its max ``m``): ``(tau, k)``.

    Newton's method on the convex, decreasing, piecewise-linear ``f(t) = sum (d - t)_+ - 1``
    from ``t = -1 <= tau``: ``t <- (sum_{d > t} d - 1) / #{d > t}``. From the left it rises
    monotonically and stops exactly, in a few passes on most rows (this is Michelot's
    algorithm without moving any data); each pass is one vectorised read of a row that
    stays in cache, in the row's own precision. The step is exact when a pass no longer
    changes the count; for float32 rows tau is then recomputed in float64 over that
    support. Once at most K/8 entries lie above ``t``, or after NEWTON_PASSES passes (for
    example an evenly spaced row with K = 10^5), the entries above ``t`` are copied out
    and :func:`_tau_select` finishes on them, O(K) in the worst case.
    """
    mw = _cast_like(m, z)  # exact: m is one of the row's entries
    t = _cast_like(-1.0, z)
    K = z.shape[0]
    s, k = _sum_above(z, mw, t)
    for _ in range(NEWTON_PASSES):
        if 8 * k <= K:
            break  # few candidates left: finish on them
        t = _cast_like((s - 1.0) / k, z)
        s2, k2 = _sum_above(z, mw, t)
        if k2 == k:
            # The support at t is the one t was computed from, so t is exact but for
            # the rounding of the pass; recompute it in float64 for float32 rows.
            if z.itemsize == 8:
                return (s2 - 1.0) / k, k
            return (_sum_above_f64(z, mw, t) - 1.0) / k, k
        if k2 > k:
            break  # the count can only grow as rounding at the fixed point
        s = s2
        k = k2
    n = _gather_sparse(z, mw, t, buf)
    return _tau_select(buf, n)


@njit(**_JIT)
def _tau_small(z, m, buf):
    """Sort-based threshold for a short row: insertion sort of ``d = z - m``, then the
    closed form. O(K^2) but with no call or loop set-up, which is what short rows cost."""
    for i in range(z.shape[0]):
        _insert_desc(buf, i, np.float64(z[i]) - m)
    return _scan_desc(buf, z.shape[0])


@njit(**_JIT)
def _insert_desc(buf, i, x):
    """Insert ``x`` into the descending ``buf[:i]``."""
    j = i - 1
    while j >= 0 and buf[j] < x:
        buf[j + 1] = buf[j]
        j -= 1
    buf[j + 1] = x


@njit(**_JIT)
def _scan_desc(buf, n):
    """``(tau, k)`` from the descending ``buf[:n]`` by the paper's closed form."""
    cs = 0.0
    s = 0.0
    k = 0
    for j in range(n):
        cs += buf[j]
        if 1.0 + (j + 1) * buf[j] > cs:
            k = j + 1
            s = cs
        else:
            break
    return (s - 1.0) / k, k


@njit(**_JIT)
def _small_rows(z, p, tau_out, k_out, lo, hi, buf, want_p):
    """Rows ``lo:hi`` of a short-row array, indexed in 2-D: no row views, whose reference
    counting costs more than the work on a row of a few entries. Same rules and results
    as _row_threshold + _row_write. ``tau_out``/``k_out`` may be empty (not wanted)."""
    K = z.shape[1]
    want_tau = tau_out.shape[0] > 0
    for r in range(lo, hi):
        m = -np.inf
        bad = False
        for i in range(K):
            x = np.float64(z[r, i])
            bad |= not x < np.inf  # NaN or +inf
            m = x if x > m else m
        if bad or m == -np.inf:
            if want_tau:
                tau_out[r] = np.nan
                k_out[r] = 0
            if want_p:
                for i in range(K):
                    p[r, i] = np.nan
            continue
        for i in range(K):
            _insert_desc(buf, i, np.float64(z[r, i]) - m)
        tau, k = _scan_desc(buf, K)
        if want_tau:
            tau_out[r] = m + tau
            k_out[r] = k
        if want_p:
            # As _row_write: in the row's dtype.
            mw = _cast_like(m, z)
            tw = _cast_like(tau, z)
            zero = tw - tw
            for i in range(K):
                p[r, i] = max((z[r, i] - mw) - tw, zero)


# Rows up to this long take _tau_small whatever the method, and the row drivers index them
# in 2-D (_small_rows). Serial thread time per (2^20 / K, K) float32 array, in copyto units,
# before -> after: K=4 101 -> 31, K=8 68 -> 40, K=16 32 -> 37.
SMALL_K = 8


@njit(**_JIT)
def _row_threshold(z, buf, method):
    """``(m, tau_shifted, k)`` for one row; ``k == 0`` marks a row of NaN."""
    m = _row_max(z)
    if m != m:
        return m, np.nan, 0
    if z.shape[0] <= SMALL_K:
        tau, k = _tau_small(z, m, buf)
    elif method == SORT:
        n = _gather(z, m, -1.0, buf)
        tau, k = _tau_sort(buf, n)
    else:
        tau, k = _tau_newton(z, m, buf)
    return m, tau, k


@njit(**_JIT)
def _row_write(z, p, m, tau, k):
    if k == 0:
        for i in range(z.shape[0]):
            p[i] = np.nan
        return
    # (z - m) - tau rather than z - (m + tau): exact for huge rows, see module notes.
    # In the row's dtype: for float32, z - m is exact near the top (Sterbenz) and tau is
    # in [-1, 0], so p is within 1.5 float32 ulps of the float64 value.
    mw = _cast_like(m, z)
    tw = _cast_like(tau, z)
    zero = tw - tw
    for i in range(z.shape[0]):
        p[i] = max((z[i] - mw) - tw, zero)


@njit(fastmath={"reassoc", "contract"}, **_JIT)
def _support_sum(p, v):
    """``(sum of v over p > 0 in float64, that count, whether p holds a NaN)``."""
    s = 0.0
    c = 0.0
    nan = False
    for j in range(p.shape[0]):
        on = p[j] > 0
        s += np.float64(v[j]) if on else 0.0
        c += 1.0 if on else 0.0
        nan |= p[j] != p[j]
    return s, int(c), nan


@njit(**_JIT)
def _row_jvp(p, v, out):
    """``J(p) v = s * (v - mean_S v)`` for one row; NaN if ``p`` has a NaN or no support."""
    s, k, nan = _support_sum(p, v)
    if nan or k == 0:
        for j in range(p.shape[0]):
            out[j] = np.nan
        return
    mean = _cast_like(s / k, out)
    zero = mean - mean
    for j in range(p.shape[0]):
        out[j] = v[j] - mean if p[j] > 0 else zero


def _loss_kernels(with_grad):
    """Row loss kernels: ``1/2 ||p - e_label||^2`` (the label's off-support term is added by
    the caller), and the full loss for a target distribution; with_grad also writes
    ``scale * (p - q)``. ``reassoc`` lets the float64 sums use several lanes."""

    def labels(z, label, m, tau, scale, grad):
        acc = 0.0
        for j in range(z.shape[0]):
            pj = max((np.float64(z[j]) - m) - tau, 0.0)
            g = pj - 1.0 if j == label else pj
            acc += g * g
            if with_grad:
                grad[j] = g * scale
        return 0.5 * acc

    def dist(z, q, m, tau, scale, grad):
        acc = 0.0
        off = 0.0
        for j in range(z.shape[0]):
            d = np.float64(z[j]) - m
            pj = max(d - tau, 0.0)
            qj = np.float64(q[j])
            g = pj - qj
            acc += g * g
            # q_j = 0 terms are skipped by the select: no 0 * inf for a masked entry.
            off += qj * (tau - d) if (qj != 0.0 and not d > tau) else 0.0
            if with_grad:
                grad[j] = g * scale
        return 0.5 * acc + off

    return labels, dist


_fm = dict(fastmath={"reassoc", "contract"}, **_JIT)
_lg, _dg = _loss_kernels(True)
_l, _d = _loss_kernels(False)
_row_loss_grad = njit(**_fm)(_lg)
_row_loss_dist_grad = njit(**_fm)(_dg)
_row_loss_impl = njit(**_fm)(_l)
_row_loss_dist_impl = njit(**_fm)(_d)


@njit(**_JIT)
def _row_loss(z, label, m, tau):
    return _row_loss_impl(z, label, m, tau, 1.0, z)


@njit(**_JIT)
def _row_loss_dist(z, q, m, tau):
    return _row_loss_dist_impl(z, q, m, tau, 1.0, z)


# --------------------------------------------------------------------------- drivers
# The drivers are built twice from one source: with ``loop = prange`` for the parallel
# build and ``loop = range`` for the serial one. ``loop`` is a closure variable, so Numba
# keys the two builds apart in its on-disk cache. ``nchunk`` splits the rows; each chunk
# owns one scratch buffer, so nothing is allocated per row.


def _make_drivers(loop):

    def _forward_rows(z, p, method, nchunk):
        n, K = z.shape
        if K <= SMALL_K:
            dummy_tau = np.empty(0, np.float64)
            dummy_k = np.empty(0, np.int64)
        for c in loop(nchunk):
            buf = np.empty(K, np.float64)
            if K <= SMALL_K:
                _small_rows(z, p, dummy_tau, dummy_k, c * n // nchunk, (c + 1) * n // nchunk, buf, True)
                continue
            for r in range(c * n // nchunk, (c + 1) * n // nchunk):
                m, tau, k = _row_threshold(z[r], buf, method)
                _row_write(z[r], p[r], m, tau, k)

    def _big_rows(z, p, tau_out, k_out, method, want_p, nblk):
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
            if method == SORT:
                m, tau, k = _row_threshold(row, buf, method)
            else:
                for b in loop(nblk):
                    mb, bad = _max_bad(row[b * K // nblk : (b + 1) * K // nblk])
                    bm[b] = np.inf if bad else mb
                m = bm.max()
                k = 0
                tau = np.nan
                if m == np.inf or m == -np.inf:
                    m = np.nan
                else:
                    mw = _cast_like(m, row)
                    t = _cast_like(-1.0, row)
                    for b in loop(nblk):
                        bs[b], bk[b] = _sum_above(row[b * K // nblk : (b + 1) * K // nblk], mw, t)
                    s = bs.sum()
                    kc = bk.sum()
                    for _ in range(NEWTON_PASSES):
                        if 8 * kc <= K:
                            break
                        t = _cast_like((s - 1.0) / kc, row)
                        for b in loop(nblk):
                            seg = row[b * K // nblk : (b + 1) * K // nblk]
                            bs[b], bk[b] = _sum_above(seg, mw, t)
                        s2 = bs.sum()
                        k2 = bk.sum()
                        if k2 == kc:
                            if row.itemsize == 4:
                                for b in loop(nblk):
                                    seg = row[b * K // nblk : (b + 1) * K // nblk]
                                    bs[b] = _sum_above_f64(seg, mw, t)
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
                            bk[b] = _gather_sparse(row[lo : (b + 1) * K // nblk], mw, t, buf[lo:])
                        c = 0
                        for b in range(nblk):
                            lo = b * K // nblk
                            for i in range(bk[b]):
                                buf[c + i] = buf[lo + i]
                            c += bk[b]
                        tau, k = _tau_select(buf, c)
            tau_out[r] = m + tau
            k_out[r] = k
            if want_p:
                for b in loop(nblk):
                    lo = b * K // nblk
                    hi = (b + 1) * K // nblk
                    _row_write(row[lo:hi], p[r, lo:hi], m, tau, k)

    def _threshold_rows(z, tau_out, k_out, method, nchunk):
        n, K = z.shape
        if K <= SMALL_K:
            dummy_p = np.empty((0, 0), z.dtype)
        for c in loop(nchunk):
            buf = np.empty(K, np.float64)
            if K <= SMALL_K:
                _small_rows(z, dummy_p, tau_out, k_out, c * n // nchunk, (c + 1) * n // nchunk, buf, False)
                continue
            for r in range(c * n // nchunk, (c + 1) * n // nchunk):
                m, tau, k = _row_threshold(z[r], buf, method)
                tau_out[r] = m + tau
                k_out[r] = k

    def _jvp_rows(p, v, out, nchunk):
        n, K = p.shape
        for c in loop(nchunk):
            for r in range(c * n // nchunk, (c + 1) * n // nchunk):
                _row_jvp(p[r], v[r], out[r])

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
                if want_grad:
                    acc = _row_loss_grad(z[r], label, m, tau, scale, grad[r])
                else:
                    acc = _row_loss(z[r], label, m, tau)
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
                if want_grad:
                    loss[r] = _row_loss_dist_grad(z[r], q[r], m, tau, scale, grad[r])
                else:
                    loss[r] = _row_loss_dist(z[r], q[r], m, tau)

    return {
        "big": _big_rows,
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
