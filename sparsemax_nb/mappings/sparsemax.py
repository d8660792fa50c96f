"""Sparsemax (Martins & Astudillo, ICML 2016): the maths, as ``@njit`` row functions.

``sparsemax(z) = max(z - tau, 0)`` with ``tau`` such that the row sums to 1; the support is
``S = {i : z_i > tau}``, ``k = |S|`` and ``tau = (sum_S z - 1) / k``. The Jacobian is
``diag(s) - s s^T / k`` and the loss ``L(z; q) = 1/2 ||p - q||^2 + sum_{j not in S} q_j (tau - z_j)``
(docs/contract.md has the maths and the rules these functions follow).

This module is backend-free: every backend (the CPU drivers, the gufuncs, the ``@njit``
overloads, the attention kernels) calls the interface functions at the end, with the
signatures every mapping shares (see :mod:`sparsemax_nb.mappings`).

Numerical choices
-----------------
* Each row is shifted by its maximum ``m`` (:func:`~sparsemax_nb.mappings._rows.row_max`).
* All sums accumulate in float64, whatever the input dtype.
* Only entries with ``d = z - m > -1`` can be in the support (``p_max <= 1`` gives
  ``tau >= m - 1``), so the thresholds work on those candidates.
* ``tau`` is always finished by the exact support formula ``tau = (sum_S d - 1) / k``.
"""

import numpy as np
from numba import njit

from .._checks import SORT
from ._rows import JIT, JIT_SUMS, cast_like, max_bad, row_max

NAME = "sparsemax"
# Float64 scratch entries a row of K needs, per entry.
SCRATCH = 1
# Rows the parallel backends may split between threads: the Newton passes of _tau_newton
# run block by block (see the CPU backend's "big" driver and the hooks it calls here).
BIG_ROWS = True


@njit(**JIT_SUMS)
def sum_above(z, m, t):
    """``(sum, count)`` of ``d = z - m`` over the entries with ``d > t``.

    ``m`` and ``t`` come in the dtype of ``z`` and so does the arithmetic: one vectorised
    pass, eight float32 lanes a register for float32 rows (``reassoc`` lets the sum use
    several lanes). The sum only steers the search; the final tau comes from
    :func:`sum_above_f64`. It gives ``f(t) = sum (d - t)_+ - 1`` and its slope.
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


@njit(**JIT_SUMS)
def sum_above_f64(z, m, t):
    """The float64 sum of ``d = z - m`` over the entries with ``d > t`` (``d`` compared in
    the dtype of ``z``, as in :func:`sum_above`, so both passes see the same set)."""
    s = 0.0
    for i in range(z.shape[0]):
        d = z[i] - m
        s += np.float64(z[i]) - np.float64(m) if d > t else 0.0
    return s


@njit(**JIT)
def gather_sparse(z, m, t, buf):
    """Copy ``d = z - m`` (float64) of the entries with ``d > t`` into ``buf``.

    ``m`` and ``t`` are in the row's dtype and the test is made in it, as in
    :func:`sum_above`. Made for few candidates: blocks of 64 are tested with vectorised
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


@njit(**JIT)
def _gather(z, m, t, buf):
    """Copy ``d = z - m`` of the entries with ``d > t`` into ``buf``; return their count."""
    n = 0
    for i in range(z.shape[0]):
        d = np.float64(z[i]) - m
        # Branch-free stream compaction: always write, advance only for a candidate.
        buf[n] = d
        n += d > t
    return n


@njit(**JIT)
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


@njit(**JIT)
def _insertion_sort(a, lo, hi):
    for i in range(lo + 1, hi):
        x = a[i]
        j = i - 1
        while j >= lo and a[j] > x:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = x


@njit(**JIT)
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


@njit(**JIT)
def _kth_largest(a, lo, hi, k):
    """Value of the ``k``-th largest (0-based) of ``a[lo:hi]``, reordering it in place.

    Median-of-medians pivots (groups of five): O(hi - lo) in the worst case. The search
    for the median of the medians is the algorithm's recursion; it runs on an explicit
    stack of ``(lo, hi, k)`` frames (depth ``log_5 n``), because Numba's type inference of
    a recursive function took about 1.9 s of a 8.3 s cold first call (asv_bench/NOTES.md).
    """
    stack = np.empty((64, 3), np.int64)
    depth = 0
    while True:
        n = hi - lo
        if n > 16:
            ng = n // 5
            for g in range(ng):
                b = lo + 5 * g
                _insertion_sort(a, b, b + 5)
                x = a[b + 2]
                a[b + 2] = a[lo + g]
                a[lo + g] = x
            # descend: the median of the medians a[lo:lo + ng] first
            stack[depth, 0] = lo
            stack[depth, 1] = hi
            stack[depth, 2] = k
            depth += 1
            hi = lo + ng
            k = ng // 2
            continue
        _insertion_sort(a, lo, hi)
        v = a[hi - 1 - k]
        # v answers the current frame: resume the frames waiting for their pivot
        resumed = False
        while depth > 0:
            depth -= 1
            lo = stack[depth, 0]
            hi = stack[depth, 1]
            k = stack[depth, 2]
            n_gt, n_eq, _ = _partition3(a, lo, hi, v)
            if k < n_gt:
                hi = lo + n_gt
                resumed = True
                break
            if k >= n_gt + n_eq:
                k -= n_gt + n_eq
                lo += n_gt + n_eq
                resumed = True
                break
            # k falls among the entries equal to v: this frame's answer is v as well
        if not resumed:
            return v


@njit(**JIT)
def _support_pivot(a, n):
    """Support sum and size of ``a[:n]`` by pivoting, O(n) in the worst case.

    Invariant: every entry already counted in ``(s, k)`` is in the support and larger than
    every entry of the active range ``a[lo:hi]``, which is larger than every discarded one.
    A pivot ``v`` is in the support iff ``1 + c v > sum`` over the ``c`` entries ``>= v``
    (ties at ``v`` are all in or all out). A median-of-three pivot is used while the active
    range shrinks to at most 3/4 per step; after a worse step the next pivot is the exact
    median (median of medians), so the range at least halves every two steps.
    """
    # Not ``lo = 0``: a literal start made Numba compile the callees once more for
    # ``Literal[int](0)`` arguments while it inferred the loop's types.
    lo = n - n
    hi = n
    s = 0.0
    k = n - n
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


@njit(**JIT)
def tau_select(buf, n):
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
        j = k - k  # not a literal 0: see _support_pivot
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
# Rows at least this long start Newton from a guess of tau made on every SAMPLE_STEP-th
# entry (_tau_estimate).
SAMPLE_FROM = 256
SAMPLE_STEP = 16


@njit(**JIT)
def _tau_estimate(z, m, buf):
    """A guess of tau (shifted) from every ``SAMPLE_STEP``-th entry of the row.

    The sample's threshold for a mass of ``2 / SAMPLE_STEP`` (twice its share, so the
    guess tends to fall left of tau, where Newton's rise starts) is the threshold of the
    sample scaled by ``SAMPLE_STEP / 2`` for a mass of 1, which :func:`tau_select` finds in
    O(K / SAMPLE_STEP). Entries with ``d <= -1`` cannot be in any support and are left out.
    Only a starting point: the caller checks on which side of tau it fell.
    """
    scale = SAMPLE_STEP / 2.0
    n = 0
    for i in range(0, z.shape[0], SAMPLE_STEP):
        d = np.float64(z[i]) - m
        # clamped: no overflow on -1e308-sized entries, which are not kept anyway
        buf[n] = max(d, -1.0) * scale
        n += d > -1.0
    if n == 0:
        return -1.0
    ts, _ = tau_select(buf, n)
    return max(ts / scale, -1.0)


@njit(**JIT)
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
    and :func:`tau_select` finishes on them, O(K) in the worst case.
    """
    mw = cast_like(m, z)  # exact: m is one of the row's entries
    K = z.shape[0]
    t = cast_like(-1.0, z)
    s, k = sum_above(z, mw, t)
    if K >= SAMPLE_FROM and 8 * k > K:
        # A dense row (sparse ones go straight to the finish below): jump near tau
        # instead of ~8 passes up from -1. Newton's step is t' = (s - 1) / k from either
        # side; from the right of tau (f(t) < 0) it lands left of it, since f is convex
        # and -k is a subgradient, and the rise below needs a start on the left.
        te = cast_like(_tau_estimate(z, m, buf), z)
        if te > t:
            se, ke = sum_above(z, mw, te)
            if ke > 0:
                if se - ke * np.float64(te) - 1.0 < 0.0:
                    te = cast_like((se - 1.0) / ke, z)
                    if te > t:
                        se, ke = sum_above(z, mw, te)
                        t, s, k = te, se, ke
                else:
                    t, s, k = te, se, ke
    for _ in range(NEWTON_PASSES):
        if 8 * k <= K:
            break  # few candidates left: finish on them
        t = cast_like((s - 1.0) / k, z)
        s2, k2 = sum_above(z, mw, t)
        if k2 == k:
            # The support at t is the one t was computed from, so t is exact but for
            # the rounding of the pass; recompute it in float64 for float32 rows.
            if z.itemsize == 8:
                return (s2 - 1.0) / k, k
            return (sum_above_f64(z, mw, t) - 1.0) / k, k
        if k2 > k:
            break  # the count can only grow as rounding at the fixed point
        s = s2
        k = k2
    n = gather_sparse(z, mw, t, buf)
    return tau_select(buf, n)


# Rows per block of the short-row path: the rows of a block sit in the lanes of the
# vectors (16 float64 = four 256-bit vectors per step).
LANES = 16


@njit(**JIT)
def _tau_short(z, m):
    """Threshold of a short row (shifted by its max ``m``): ``(tau, k)``.

    Newton's steps from ``t = -1`` in float64, ``t <- (sum_{d > t} d - 1) / #{d > t}``,
    each sum in index order, until the count stops falling; ``tau = (s - 1) / c`` of the
    last pass. At most ``K + 1`` passes (the count falls by one at least), about 3 on most
    rows. This is the scalar twin of :func:`_block_tau`, one lane of it: the same
    operations in the same order, so a row gets the same bits alone or in a block.
    """
    K = z.shape[0]
    t = -1.0
    cp = K + 1.0
    while True:
        s = 0.0
        c = 0.0
        for i in range(K):
            d = np.float64(z[i]) - m
            keep = d > t
            s += d if keep else 0.0
            c += 1.0 if keep else 0.0
        tn = (s - 1.0) / c
        if c >= cp:
            return tn, int(c)
        t = tn
        cp = c


@njit(**JIT)
def _block_tau(z, r0, nb, x, st):
    """Thresholds of rows ``r0:r0+nb`` of a 2-D array, one row a lane.

    ``st`` is ``(8, B)`` float64 with ``B >= nb`` lanes and ``x`` is ``K * B`` float64; ``x``
    receives ``d = z - m`` transposed, ``x[i * B + l]``, so the passes run over the lanes
    with no branch per row. Lanes past ``nb`` and rows that cannot be projected hold zeros
    (a valid dummy row). On return ``st[0]`` holds each lane's max (NaN for a bad row),
    ``st[1]`` its shifted tau (NaN) and ``st[2]`` its support size (0). The arithmetic of
    each lane is that of :func:`_tau_short`: the same operations in the same order, hence
    the same bits.

    The lane count is read from ``st`` at run time on purpose: with a constant count of 8
    or 16, LLVM unrolls the lane loops fully before its loop vectoriser runs, and Numba
    leaves the SLP vectoriser off, so they stayed scalar (no ymm arithmetic in the
    assembly, 1.2-1.7 x slower than one row at a time). As loops, they vectorise, with a
    run-time check that ``x`` and ``st`` do not overlap.
    """
    B = st.shape[1]
    K = z.shape[1]
    for l in range(nb):
        for i in range(K):
            x[i * B + l] = np.float64(z[r0 + l, i])
    for l in range(nb, B):
        for i in range(K):
            x[i * B + l] = 0.0
    # rows: 0 max, 1 tau, 2 k (-1 while running), 3 bad, 4 t, 5 previous count, 6 s, 7 c
    for l in range(B):
        st[0, l] = -np.inf
        st[3, l] = 0.0
    for i in range(K):
        o = i * B
        for l in range(B):
            v = x[o + l]
            st[3, l] += 0.0 if v < np.inf else 1.0  # NaN or +inf
            st[0, l] = v if v > st[0, l] else st[0, l]
    for l in range(B):
        bad = (st[3, l] != 0.0) | (st[0, l] == -np.inf)
        st[3, l] = 1.0 if bad else 0.0
        st[0, l] = 0.0 if bad else st[0, l]
        st[4, l] = -1.0
        st[5, l] = K + 1.0
        st[2, l] = -1.0
        st[1, l] = 0.0
    for i in range(K):
        o = i * B
        for l in range(B):
            x[o + l] = 0.0 if st[3, l] != 0.0 else x[o + l] - st[0, l]
    for _ in range(K + 1):
        for l in range(B):
            st[6, l] = 0.0
            st[7, l] = 0.0
        for i in range(K):
            o = i * B
            for l in range(B):
                v = x[o + l]
                keep = v > st[4, l]
                st[6, l] += v if keep else 0.0
                st[7, l] += 1.0 if keep else 0.0
        more = 0.0
        for l in range(B):
            c = st[7, l]
            tn = (st[6, l] - 1.0) / c
            fresh = st[2, l] < 0.0
            fin = fresh & (c >= st[5, l])
            step = fresh & (c < st[5, l])
            st[1, l] = tn if fin else st[1, l]
            st[2, l] = c if fin else st[2, l]
            st[4, l] = tn if step else st[4, l]
            st[5, l] = c if step else st[5, l]
            more += 1.0 if step else 0.0
        if more == 0.0:
            break
    for l in range(B):
        bad = st[3, l] != 0.0
        st[0, l] = np.nan if bad else st[0, l]
        st[1, l] = np.nan if bad else st[1, l]
        st[2, l] = 0.0 if bad else st[2, l]


@njit(**JIT)
def _small_rows(z, p, tau_out, k_out, lo, hi, want_p):
    """Rows ``lo:hi`` of a short-row array, :data:`LANES` rows at a time
    (:func:`_block_tau`), indexed in 2-D: no row views, whose reference counting costs more
    than the work on a row of a few entries. Same results as _row_threshold + _row_write.
    ``tau_out``/``k_out`` may be empty (not wanted)."""
    K = z.shape[1]
    B = LANES
    want_tau = tau_out.shape[0] > 0
    x = np.empty(K * B, np.float64)
    st = np.empty((8, B), np.float64)
    for r0 in range(lo, hi, B):
        nb = min(B, hi - r0)
        _block_tau(z, r0, nb, x, st)
        for l in range(nb):
            r = r0 + l
            m = st[0, l]
            tau = st[1, l]
            k = int(st[2, l])
            if want_tau:
                tau_out[r] = m + tau
                k_out[r] = k
            if want_p:
                if k == 0:
                    for i in range(K):
                        p[r, i] = np.nan
                    continue
                # As _row_write: in the row's dtype.
                mw = cast_like(m, z)
                tw = cast_like(tau, z)
                zero = tw - tw
                for i in range(K):
                    p[r, i] = max((z[r, i] - mw) - tw, zero)


# Rows up to this long take the short-row path whatever the method: _tau_short per row,
# _small_rows (blocks of LANES rows) in the row drivers.
SMALL_K = 64


@njit(**JIT)
def _row_threshold_select(z, buf):
    """``(m, tau_shifted, k)`` for one row by the select path (method "select" or
    "auto"); ``k == 0`` marks a row of NaN. No sort code, so a caller that never sorts
    does not compile one."""
    m = row_max(z)
    if m != m:
        return m, np.nan, 0
    if z.shape[0] <= SMALL_K:
        tau, k = _tau_short(z, m)
    else:
        tau, k = _tau_newton(z, m, buf)
    return m, tau, k


@njit(**JIT)
def _row_threshold(z, buf, method):
    """``(m, tau_shifted, k)`` for one row; ``k == 0`` marks a row of NaN."""
    if method != SORT or z.shape[0] <= SMALL_K:
        return _row_threshold_select(z, buf)
    m = row_max(z)
    if m != m:
        return m, np.nan, 0
    n = _gather(z, m, -1.0, buf)
    tau, k = _tau_sort(buf, n)
    return m, tau, k


@njit(**JIT)
def _row_write(z, p, m, tau, k):
    if k == 0:
        for i in range(z.shape[0]):
            p[i] = np.nan
        return
    # (z - m) - tau rather than z - (m + tau): exact for huge rows, see module notes.
    # In the row's dtype: for float32, z - m is exact near the top (Sterbenz) and tau is
    # in [-1, 0], so p is within 1.5 float32 ulps of the float64 value.
    mw = cast_like(m, z)
    tw = cast_like(tau, z)
    zero = tw - tw
    for i in range(z.shape[0]):
        p[i] = max((z[i] - mw) - tw, zero)


@njit(**JIT_SUMS)
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


@njit(**JIT)
def _row_jvp(p, v, out):
    """``J(p) v = s * (v - mean_S v)`` for one row; NaN if ``p`` has a NaN or no support."""
    s, k, nan = _support_sum(p, v)
    if nan or k == 0:
        for j in range(p.shape[0]):
            out[j] = np.nan
        return
    mean = cast_like(s / k, out)
    zero = mean - mean
    for j in range(p.shape[0]):
        out[j] = v[j] - mean if p[j] > 0 else zero



# --------------------------------------------------------------------------- the interface
# Every mapping module defines these, with these signatures. ``theta`` is the mapping's
# parameter for this row (sparsemax has none and ignores it); ``(m, tau, k)`` is the row
# max, the threshold in shifted coordinates and the support size (``k == 0``: a NaN row).


@njit(**JIT)
def threshold(z, buf, method, theta):
    """``(m, tau_shifted, k)`` for row ``z`` (``buf``: ``SCRATCH * K`` float64)."""
    return _row_threshold(z, buf, method)


@njit(**JIT)
def threshold_select(z, buf, theta):
    """:func:`threshold` for the methods other than "sort" (optional hook; same bits)."""
    return _row_threshold_select(z, buf)


@njit(**JIT)
def tau_of(m, tau, theta):
    """The threshold in the row's own coordinates."""
    return m + tau


@njit(**JIT)
def write(z, p, m, tau, k, theta):
    """``p = max(z - tau, 0)`` (a NaN row when ``k == 0``)."""
    _row_write(z, p, m, tau, k)


@njit(**JIT)
def jvp(p, v, out, theta):
    """``J(p) v = s * (v - mean_S v)``."""
    _row_jvp(p, v, out)


@njit(**JIT_SUMS)
def _loss_label_sum(z, label, m, tau):
    # Read-only pass: with no store in the loop, its vectorised sum has one lane order
    # whatever the gradient buffer is, so the loss is the same bits in every call.
    acc = 0.0
    for j in range(z.shape[0]):
        pj = max((np.float64(z[j]) - m) - tau, 0.0)
        g = pj - 1.0 if j == label else pj
        acc += g * g
    return 0.5 * acc


@njit(**JIT)
def _loss_label_short(z, label, m, tau, scale, grad, want_grad):
    """:func:`loss_label` of a short row: one pass, the loss summed in index order (no
    reassociation), so :func:`_loss_label_short2` gives the same bits on a row of a 2-D
    array."""
    dy = np.float64(z[label]) - m  # read before any write: grad may be z itself
    acc = 0.0
    for j in range(z.shape[0]):
        pj = max((np.float64(z[j]) - m) - tau, 0.0)
        g = pj - 1.0 if j == label else pj
        acc += g * g
        if want_grad:
            grad[j] = g * scale
    acc = 0.5 * acc
    if not dy > tau:
        acc += tau - dy
    return acc


@njit(**JIT)
def _loss_label_short2(z, r, label, m, tau, scale, grad, want_grad):
    """:func:`_loss_label_short` on row ``r`` of 2-D arrays (no row views)."""
    dy = np.float64(z[r, label]) - m
    acc = 0.0
    for j in range(z.shape[1]):
        pj = max((np.float64(z[r, j]) - m) - tau, 0.0)
        g = pj - 1.0 if j == label else pj
        acc += g * g
        if want_grad:
            grad[r, j] = g * scale
    acc = 0.5 * acc
    if not dy > tau:
        acc += tau - dy
    return acc


@njit(**JIT)
def loss_label(z, label, m, tau, k, theta, scale, grad, want_grad):
    """The loss for class ``label`` (``1/2 ||p - e_label||^2`` plus the label's
    off-support term), and with ``want_grad`` ``grad = scale * (p - e_label)``."""
    if z.shape[0] <= SMALL_K:
        return _loss_label_short(z, label, m, tau, scale, grad, want_grad)
    # Read before any write: grad may be z itself (in place).
    dy = np.float64(z[label]) - m
    acc = _loss_label_sum(z, label, m, tau)
    if not dy > tau:
        acc += tau - dy
    if want_grad:
        for j in range(z.shape[0]):
            pj = max((np.float64(z[j]) - m) - tau, 0.0)
            grad[j] = (pj - 1.0 if j == label else pj) * scale
    return acc


@njit(**JIT_SUMS)
def _loss_dist_sum(z, q, m, tau):
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
    return 0.5 * acc + off


@njit(**JIT)
def loss_dist(z, q, m, tau, k, theta, scale, grad, want_grad):
    """The loss for target distribution ``q``, and with ``want_grad``
    ``grad = scale * (p - q)``."""
    acc = _loss_dist_sum(z, q, m, tau)
    if want_grad:
        for j in range(z.shape[0]):
            pj = max((np.float64(z[j]) - m) - tau, 0.0)
            grad[j] = (pj - np.float64(q[j])) * scale
    return acc


@njit(**JIT)
def small_rows(z, p, tau_out, k_out, lo, hi, buf, want_p, theta):
    """Rows ``lo:hi`` of an array of rows of at most ``SMALL_K`` entries."""
    _small_rows(z, p, tau_out, k_out, lo, hi, want_p)


@njit(**JIT)
def small_loss_labels(z, y, ignore, scale, loss, grad, want_grad, lo, hi, theta):
    """Rows ``lo:hi`` of the loss with class labels for rows of at most ``SMALL_K``
    entries: thresholds :data:`LANES` rows at a time (:func:`_block_tau`), then
    :func:`_loss_label_short2` per row, the 2-D twin of what :func:`loss_label` does on
    such a row, so every row gets the bits it gets alone (the gufuncs).
    Rows labelled ``ignore`` get a zero loss and gradient; rows that cannot be projected
    NaN."""
    K = z.shape[1]
    B = LANES
    x = np.empty(K * B, np.float64)
    st = np.empty((8, B), np.float64)
    for r0 in range(lo, hi, B):
        nb = min(B, hi - r0)
        _block_tau(z, r0, nb, x, st)
        for l in range(nb):
            r = r0 + l
            k = int(st[2, l])
            if y[r] == ignore or k == 0:
                v = 0.0 if y[r] == ignore else np.nan
                loss[r] = v
                if want_grad:
                    for j in range(K):
                        grad[r, j] = v
                continue
            loss[r] = _loss_label_short2(z, r, y[r], st[0, l], st[1, l], scale, grad,
                                         want_grad)
