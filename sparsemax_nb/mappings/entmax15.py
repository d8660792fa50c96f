"""1.5-entmax (Peters, Niculae & Martins, ACL 2019): the maths, as ``@njit`` row functions.

``entmax15(z) = [z / 2 - tau]_+^2`` with ``tau`` such that the row sums to 1. In the shifted
coordinates of :mod:`._entmax` (``x = (z - m) / 2``, ``max x = 0``) the threshold ``t`` is
the root in ``[-1, 0)`` of the convex, decreasing, piecewise-quadratic
``f(t) = sum (x_i - t)_+^2 - 1``. On a known support ``S`` of size ``k`` it solves the
quadratic ``k t^2 - 2 A t + B - 1 = 0``; written around a centre ``c`` (``A = sum (x - c)``,
``B = sum (x - c)^2`` over ``S``) its smaller root is

    ``t = c + (B - 1) / (A + sqrt(A^2 - k (B - 1)))``,

free of cancellation when ``c`` is the least entry of the support (then ``B < 1`` and the
discriminant is ``A^2 + k (1 - B)``, a sum of non-negative terms), or at or below ``t``
and close to it (then ``B ~ 1``). Around a ``c`` far below ``t`` (a row with thousands of
entries in the support, ``c = -1``) it is a difference of huge, nearly equal numbers.
Every threshold ends with that formula on the identified support:

* ``method="sort"``: the candidates ``x > -1`` sorted, and the support found by the running
  sums ``P = sum_{j<k} (x_(j) - x_(k))`` and ``W = sum_{j<k} (x_(j) - x_(k))^2``, updated
  with non-negative terms only (``x_(k)`` is in the support iff ``W < 1``).
* ``"select"``/``"auto"`` (:func:`_tau_newton`): Newton's method from the left on
  ``h(t) = sqrt(F(t)) - 1``, ``F(t) = sum (x - t)_+^2``. ``h`` is convex (a norm of the
  vector ``(x - t)_+``) and nearly affine, so from ``t = -1`` the iterates rise towards
  tau without passing it, in about four passes on a normal row of 1024 (Newton on ``f``
  itself takes about six). Each pass is one vectorised read of the row, in the row's own
  dtype (eight float32 lanes a register for float32 rows), with no data moved: the count,
  ``sum (x - t)``, ``sum (x - t)^2`` and the minimum of ``x - t`` over the entries above
  ``t``. From these the quadratic's root on the set ``C`` above ``t`` is tried: the root on
  a superset of the support lies at or above tau (``sum_C (x - s)^2 >= F(s)``), and it is
  tau exactly when it lies at or below ``min C`` (then ``C`` is the support). For float32
  rows (and for float64 rows when ``t`` is far below the root) the root is then recomputed
  in float64 over ``C``, around ``min C`` (:func:`_sums_centred`); where the test is
  ill-conditioned (``t`` far below the root of a row with a large support) it is made
  there too, exactly. When a step lands past tau by rounding (float32 rows with
  thousands of entries in the support), the pivot search below finishes on the few
  entries between the last two points. Rows that
  do not settle within ``NEWTON_PASSES`` passes (never seen on random rows; evenly spaced
  rows of 10^5 take seven) have their entries above the last lower bound copied out and
  :func:`_support_pivot` finishes on them: a pivot search, O(n) in the worst case.

The outputs and the Jacobian are those of alpha-entmax at alpha = 1.5 (:mod:`._entmax`);
the loss is the same Fenchel-Young loss, specialised here to alpha = 1.5 (square roots and
cubes, no logarithms, each entry's term a product of non-negative factors).
"""

import math

import numpy as np
from numba import njit

from .._checks import SORT
from ._rows import (JIT, JIT_SUMS, bits_to_float, cast_like, float_to_bits, no_small_rows,
                    row_max)
from .sparsemax import _kth_largest

NAME = "entmax15"
SCRATCH = 1
SMALL_K = 0
BIG_ROWS = False
small_rows = no_small_rows

ALPHA = 1.5  # the member of the alpha-entmax family this mapping is
# Newton passes over the whole row before the rest goes to the linear-time finish.
NEWTON_PASSES = 12
# |D| below this fraction of a^2: the support test of a pass is ill-conditioned (_tau_newton).
ILL = 2.0**-10


# --------------------------------------------------------------------------- Newton's passes
# In the passes the row is read as d = z - m (x = d / 2) and the threshold as T = 2 t, so
# that the arithmetic is in the row's dtype with no scaling: the quadratic becomes
# sum_C (d - T)^2 = 4, and Newton on h steps by (b - 2 sqrt(b)) / a.


@njit(**JIT_SUMS)
def _pass(z, mw, T):
    """``(a, b, c, mn)``: over the entries with ``u = (z - mw) - T > 0``, the sums of ``u``
    and ``u^2``, their count and the least ``u`` (``inf`` if none), all in the row's dtype
    (``mw`` and ``T`` are of it) and returned as float64.

    ``d`` is clamped at -4 first: no entry below -2 is counted (``T >= -2``), and the
    clamp keeps every square small whatever LLVM makes of the selects (it may square
    ``u`` before selecting, and the huge ``u`` of a far entry would raise an overflow flag,
    which NumPy reports from a gufunc). The minimum is taken over the integer images of the
    positive ``u`` (ordered as the floats are): a float minimum does not vectorise, an
    integer one does.
    """
    zero = cast_like(0.0, mw)
    one = cast_like(1.0, mw)
    lo = cast_like(-4.0, mw)
    big = float_to_bits(cast_like(np.inf, mw))
    a = zero
    b = zero
    c = zero  # a count in the row's dtype keeps every lane 32-bit for float32 rows
    mn = big
    for i in range(z.shape[0]):
        d = z[i] - mw
        u = (d if d > lo else lo) - T
        keep = u > zero
        y = u if keep else zero
        a += y
        b += y * y
        c += one if keep else zero
        mn = min(mn, float_to_bits(u) if keep else big)
    return np.float64(a), np.float64(b), np.float64(c), np.float64(bits_to_float(mn))


@njit(**JIT_SUMS)
def _sums_centred(z, m, T, Tc):
    """``(a, b, c)`` in float64 over the entries with ``d - T > 0``, ``d = z - m``: the sums
    of ``d - Tc`` and ``(d - Tc)^2`` around the centre ``Tc``, and their count.

    Used once the entries above ``T`` are known to be the support, with ``Tc`` their
    minimum: around it the quadratic's root is free of cancellation (module notes), where
    around a ``T`` far below the root (a row with thousands of entries in the support)
    ``a^2 - c (b - 4)`` is a difference of huge, nearly equal numbers. The test is made in
    float64 (for a float32 row, a float32 test widened to 64-bit lanes costs twice as
    much), so an entry within float32 rounding of ``T`` may fall on the other side than in
    the float32 pass: the caller compares the counts. No clamp: the squares here come from
    a float32 row (which cannot overflow a float64) or follow the pass's clamp.
    """
    a = 0.0
    b = 0.0
    c = 0.0
    for i in range(z.shape[0]):
        d = np.float64(z[i]) - m
        d = d if d > -4.0 else -4.0  # as in _pass (float64 rows: no overflow, same test)
        keep = d - T > 0.0
        y = d - Tc if keep else 0.0
        a += y
        b += y * y
        c += 1.0 if keep else 0.0
    return a, b, c


@njit(**JIT)
def _gather_above(z, m, mw, Tw, buf):
    """Copy ``x = (z - m) / 2`` (float64) of the entries with ``(z - mw) - Tw > 0`` into
    ``buf``; their count. Blocks of 64 are tested with vectorised compares and only a
    block holding an entry is copied (as sparsemax's ``gather_sparse``)."""
    B = 64
    K = z.shape[0]
    zero = cast_like(0.0, mw)
    n = 0
    for s in range(0, K, B):
        e = min(s + B, K)
        hit = False
        for j in range(s, e):
            hit |= (z[j] - mw) - Tw > zero
        if hit:
            for j in range(s, e):
                if (z[j] - mw) - Tw > zero:
                    buf[n] = 0.5 * (np.float64(z[j]) - m)
                    n += 1
    return n


@njit(**JIT)
def _gather_between(z, m, Tlo, Thi, buf):
    """Copy ``x = d / 2`` of the entries with ``Tlo < d <= Thi`` (``d = z - m`` in float64,
    as in :func:`_sums_centred`) into ``buf``; their count. Blocks of 64 as in
    :func:`_gather_above`."""
    B = 64
    K = z.shape[0]
    n = 0
    for s in range(0, K, B):
        e = min(s + B, K)
        hit = False
        for j in range(s, e):
            d = np.float64(z[j]) - m
            hit |= (d > Tlo) & (d <= Thi)
        if hit:
            for j in range(s, e):
                d = np.float64(z[j]) - m
                if d > Tlo and d <= Thi:
                    buf[n] = 0.5 * d
                    n += 1
    return n


# --------------------------------------------------------------------------- linear-time finish
@njit(**JIT)
def _partition3(a, lo, hi, v):
    """Dutch-flag partition of ``a[lo:hi]`` into ``[> v | == v | < v]``.

    Returns ``(n_gt, n_eq, A, B)``: ``A = sum (x - v)`` and ``B = sum (x - v)^2`` over the
    entries ``> v`` (non-negative terms).
    """
    i = lo
    j = lo
    t = hi
    A = 0.0
    B = 0.0
    while j < t:
        x = a[j]
        if x > v:
            a[j] = a[i]
            a[i] = x
            d = x - v
            A += d
            B += d * d
            i += 1
            j += 1
        elif x < v:
            t -= 1
            a[j] = a[t]
            a[t] = x
        else:
            j += 1
    return i - lo, j - i, A, B


@njit(**JIT)
def _support_pivot(a, n):
    """``(t, k)`` from the candidates ``a[:n]`` (``x`` values holding the row's maximum
    and every entry of the support), O(n) in the worst case; ``a`` is reordered
    (:func:`_support_pivot_from` with nothing accepted yet)."""
    return _support_pivot_from(a, n, n - n, 0.0, 0.0, 0.0)


@njit(**JIT)
def _support_pivot_from(a, n, k, c, A, B):
    """``(t, k)`` from the candidates ``a[:n]`` and ``k`` entries already known to be in
    the support, all above the candidates, with sums ``A = sum (x - c)`` and
    ``B = sum (x - c)^2`` around ``c``, their least ``x`` (``k = 0``: none); the support
    is those ``k`` entries and the candidates above ``t``. O(n) in the worst case; ``a``
    is reordered.

    A pivot ``v`` is in the support iff ``F(v) = sum_{x > v} (x - v)^2 < 1`` (ties at ``v``
    are all in or all out). Invariant: the ``k`` entries accepted so far are in the
    support and above every entry of the active range ``a[lo:hi]``, which is above every
    discarded one; their sums ``A = sum (x - c)`` and ``B = sum (x - c)^2`` are kept around
    the last accepted pivot ``c`` (their minimum), and moved down to a new pivot ``v`` by
    ``d = c - v >= 0`` with non-negative terms only: ``A + k d`` and
    ``B + 2 d A + k d^2``. The pivots are medians of three while the active range shrinks
    to at most 3/4 per step; after a worse step the next pivot is the exact median
    (sparsemax's ``_kth_largest``, median of medians), so the range at least halves every
    two steps. The end is the quadratic's root around ``c`` (module notes).
    """
    lo = n - n  # not a literal 0: see sparsemax's _support_pivot
    hi = n
    exact = False
    while hi > lo:
        size = hi - lo
        if exact:
            v = _kth_largest(a, lo, hi, size // 2)
        else:
            x = a[lo]
            y = a[lo + size // 2]
            w = a[hi - 1]
            v = max(min(x, y), min(max(x, y), w))
        n_gt, n_eq, Ag, Bg = _partition3(a, lo, hi, v)
        d = c - v if k > 0 else 0.0
        Av = A + k * d + Ag
        Bv = B + d * (2.0 * A + k * d) + Bg
        if Bv < 1.0:
            k += n_gt + n_eq
            c = v
            A = Av
            B = Bv
            lo += n_gt + n_eq
        else:
            hi = lo + n_gt
        exact = 4 * (hi - lo) > 3 * size
    return c + (B - 1.0) / (A + math.sqrt(A * A - k * (B - 1.0))), k


@njit(**JIT)
def _finish(z, m, mw, Tlo, buf):
    """``(t, k)`` by :func:`_support_pivot` on the entries above ``Tlo`` (``d`` scale), a
    lower bound of ``2 tau`` up to the rounding of the passes; if the root falls below it
    (an entry above the root may have been left out), again on all candidates ``x > -1``."""
    n = _gather_above(z, m, mw, cast_like(Tlo, mw), buf)
    t, k = _support_pivot(buf, n)
    if not 2.0 * t >= Tlo:
        n = _gather_above(z, m, mw, cast_like(-2.0, mw), buf)
        t, k = _support_pivot(buf, n)
    return t, k


@njit(**JIT)
def _tau_newton(z, m, buf):
    """``(t, k)`` of one row (max ``m``) by Newton's passes (module notes), O(K) always."""
    K = z.shape[0]
    mw = cast_like(m, z)
    narrow = z.itemsize == 4
    if narrow and K > 1 << 24:
        # A float32 count could round beyond 2^24 entries: the pivot search only, O(K).
        return _finish(z, m, mw, -2.0, buf)
    T = -2.0
    Tlo = -2.0  # the last point where the sums showed F >= 1 (a lower bound of 2 tau)
    for _ in range(NEWTON_PASSES):
        Tw = cast_like(T, z)
        T = np.float64(Tw)
        a, b, c, mn = _pass(z, mw, Tw)
        if not b >= 4.0:
            # T is past tau, by a rounding of the float32 sums or of T itself (rows with
            # thousands of entries in the support, where Newton's last step is below the
            # rounding): C is within the support, which is within the set above Tlo. If
            # min C is in the support (in float64 around it, F < 1), the pivot search
            # finishes on the few entries between Tlo and T, C already accepted.
            Tc = T + mn
            A, B, c2 = _sums_centred(z, m, T, Tc)
            if B < 4.0:
                n = _gather_between(z, m, Tlo, T, buf)
                t, k = _support_pivot_from(buf, n, int(c2), 0.5 * Tc, 0.5 * A, 0.25 * B)
                if 2.0 * t >= Tlo:
                    return t, k
            break  # else the finish from the last lower bound
        Tlo = T
        D = a * a - c * (b - 4.0)
        # The quadratic's root on the set C above T is T + dq; C is the support iff it is
        # at or below min C, that is T + mn.
        found = D >= 0.0 and b - 4.0 <= mn * (a + math.sqrt(D))
        # Far below the root of a row with a large support, D is a difference of nearly
        # equal numbers and the test above can go either way: decided around min C.
        ill = abs(D) < ILL * (a * a)
        if found and not (narrow or ill or b > 4.5 or D < 0.5 * a * a):
            return 0.5 * (T + (b - 4.0) / (a + math.sqrt(D))), int(c)
        if found or ill:
            # In float64 around Tc = min C, where C is the support iff F(Tc) < 1 (in the
            # pass's scale, sum (d - Tc)^2 < 4): the exact test of the sorted finish, and
            # the root free of cancellation (module notes).
            Tc = T + mn
            A, B, c2 = _sums_centred(z, m, T, Tc)
            if c2 != c:
                break  # an entry at T within float32 rounding: the exact finish
            if B < 4.0:
                return 0.5 * (Tc + (B - 4.0) / (A + math.sqrt(A * A + c * (4.0 - B)))), int(c)
        T_new = T + (b - 2.0 * math.sqrt(b)) / a
        if not T_new > T:
            break
        T = T_new
    return _finish(z, m, mw, Tlo, buf)


# --------------------------------------------------------------------------- method="sort"
@njit(**JIT)
def _gather(z, m, buf):
    """``x = (z - m) / 2`` (float64) of the candidates ``x > -1`` into ``buf``; their count."""
    n = 0
    for i in range(z.shape[0]):
        x = 0.5 * (np.float64(z[i]) - m)
        # Branch-free stream compaction: always write, advance only for a candidate.
        buf[n] = x
        n += x > -1.0
    return n


@njit(**JIT)
def _sorted_finish(buf, n):
    """``(t, k)`` from the candidates ``buf[:n]`` by sorting (see the module notes)."""
    c = buf[:n]
    c.sort()
    P = 0.0
    W = 0.0
    k = 1
    prev = c[n - 1]
    for j in range(2, n + 1):
        x = c[n - j]
        d = prev - x
        # Moving the centre down by d adds d to each of the j - 1 gaps above it.
        W += d * (2.0 * P + (j - 1) * d)
        P += (j - 1) * d
        prev = x
        if W < 1.0:
            k = j
        else:
            break
    # Centre c = x_(k): A = P and B = W over the top k, as accumulated when j == k.
    P = 0.0
    W = 0.0
    xk = c[n - k]
    for j in range(1, k + 1):
        d = c[n - j] - xk
        P += d
        W += d * d
    return xk + (W - 1.0) / (P + math.sqrt(P * P - k * (W - 1.0))), k


@njit(**JIT)
def _row_threshold_select(z, buf):
    m = row_max(z)
    if m != m:
        return m, np.nan, 0
    t, k = _tau_newton(z, m, buf)
    return m, t + 1.0, k


@njit(**JIT)
def _row_threshold(z, buf, method):
    if method != SORT:
        return _row_threshold_select(z, buf)
    m = row_max(z)
    if m != m:
        return m, np.nan, 0
    t, k = _sorted_finish(buf, _gather(z, m, buf))
    return m, t + 1.0, k


@njit(**JIT)
def _xt(zj, m, s):
    """``x - t`` of one entry, as ``1 + (x - s)`` (``s = t + 1``), with ``z - m`` clamped at
    -4 (``x`` at -2, below every threshold, so only entries off the support are moved):
    whatever LLVM makes of the selects that follow, no square or cube of a huge far entry
    is ever formed (an overflow flag, which NumPy reports from a gufunc)."""
    d = np.float64(zj) - m
    return 1.0 + (0.5 * (d if d > -4.0 else -4.0) - s)


@njit(**JIT)
def _write(z, p, m, s, k):
    """``p = [x - t]_+^2`` with ``x = (z - m) / 2``, ``s = t + 1``; NaN when ``k == 0``."""
    if k == 0:
        for i in range(z.shape[0]):
            p[i] = np.nan
        return
    for i in range(z.shape[0]):
        u = _xt(z[i], m, s)
        y = u if u > 0.0 else 0.0
        p[i] = y * y


# --------------------------------------------------------------------------- the Jacobian
# J v = s * v - (s . v / sum s) s with s = p^(2 - alpha) = sqrt(p) on the support: the
# generic row of _entmax, with the square root in place of exp/log and no branch, so both
# passes vectorise (on a normal row most of the time goes to the square roots).


@njit(**JIT_SUMS)
def _jvp_sums(p, v):
    """``(sum s, s . v, count of NaN in p)`` with ``s = sqrt(p)`` where ``p > 0``, else 0."""
    ssum = 0.0
    sv = 0.0
    bad = 0.0
    for j in range(p.shape[0]):
        pj = np.float64(p[j])
        on = pj > 0.0
        bad += 0.0 if pj == pj else 1.0
        w = math.sqrt(pj if on else 0.0)
        ssum += w
        sv += w * np.float64(v[j]) if on else 0.0  # no 0 * inf off the support
    return ssum, sv, bad


@njit(**JIT)
def _jvp(p, v, out):
    """``J v`` at ``p``; a row of ``p`` holding NaN, or with no positive entry, gives NaN."""
    ssum, sv, bad = _jvp_sums(p, v)
    if bad != 0.0 or not ssum > 0.0:
        for j in range(p.shape[0]):
            out[j] = np.nan
        return
    c = sv / ssum
    for j in range(p.shape[0]):
        pj = np.float64(p[j])
        out[j] = math.sqrt(pj if pj > 0.0 else 0.0) * (np.float64(v[j]) - c)


# --------------------------------------------------------------------------- the loss
# The Fenchel-Young loss of _entmax at alpha = 1.5, entry by entry: with y = (x - t)_+
# (p = y^2) and r = sqrt(q), the Bregman term of phi(u) = u^1.5 / 0.75 between q and p is
#     (4/3) q r - 2 q y + (2/3) y^3 = (2/3) (r - y)^2 (2 r + y),
# a product of non-negative factors (no cancellation, whatever p and q), and an entry off
# the support adds q (tau / (alpha - 1) - z) = 2 q (t - x) >= 0, taken only where q > 0
# (no 0 * inf for a masked entry). For a class label (q one-hot) an entry j != label
# gives (2/3) y^3, and the label (r = 1) (2/3) (1 - y)^2 (2 + y) + 2 (t - x)_+.


@njit(**JIT_SUMS)
def _loss_label_sum(z, label, m, s):
    # Read-only: with no store in the loop, its vectorised sum has one lane order whatever
    # the gradient buffer is, so the loss is the same bits in every call.
    acc = 0.0
    for j in range(z.shape[0]):
        u = _xt(z[j], m, s)
        y = u if u > 0.0 else 0.0
        acc += y * y * y if j != label else 0.0
    return acc


@njit(**JIT)
def _loss_label(z, label, m, s, scale, grad, want_grad):
    # The label's entry unclamped (its off-support term may be infinite: a masked label),
    # and read before any write: grad may be z itself.
    u = 1.0 + (0.5 * (np.float64(z[label]) - m) - s)
    y = u if u > 0.0 else 0.0
    off = 0.0 if u > 0.0 else -u
    d = 1.0 - y
    acc = (2.0 / 3.0) * (_loss_label_sum(z, label, m, s) + d * d * (2.0 + y)) + 2.0 * off
    if want_grad:
        for j in range(z.shape[0]):
            u = _xt(z[j], m, s)
            y = u if u > 0.0 else 0.0
            pj = y * y
            grad[j] = (pj - 1.0 if j == label else pj) * scale
    return acc


@njit(**JIT_SUMS)
def _loss_dist_sum(z, q, m, s):
    acc = 0.0
    for j in range(z.shape[0]):
        u = _xt(z[j], m, s)
        y = u if u > 0.0 else 0.0
        qj = np.float64(q[j])
        r = math.sqrt(qj)
        d = r - y
        acc += (2.0 / 3.0) * (d * d * (2.0 * r + y))
        # the off-support term from the unclamped x (infinite where q > 0 on a masked z)
        off = -(1.0 + (0.5 * (np.float64(z[j]) - m) - s))
        acc += 2.0 * qj * off if (qj != 0.0 and off >= 0.0) else 0.0
    return acc


@njit(**JIT)
def _loss_dist(z, q, m, s, scale, grad, want_grad):
    acc = _loss_dist_sum(z, q, m, s)
    if want_grad:
        for j in range(z.shape[0]):
            u = _xt(z[j], m, s)
            y = u if u > 0.0 else 0.0
            grad[j] = (y * y - np.float64(q[j])) * scale
    return acc


# --------------------------------------------------------------------------- the interface
# ``(m, s, k)``: the row max, the threshold carried as s = t + 1 (the offset L = -1 of
# _entmax, x = (z - m) / 2) and the support size (k == 0: a NaN row). theta is unused.


@njit(**JIT)
def threshold(z, buf, method, theta):
    """``(m, s, k)`` for row ``z`` (``buf``: ``K`` float64)."""
    return _row_threshold(z, buf, method)


@njit(**JIT)
def threshold_select(z, buf, theta):
    """:func:`threshold` for the methods other than "sort" (optional hook; same bits)."""
    return _row_threshold_select(z, buf)


@njit(**JIT)
def tau_of(m, s, theta):
    """``tau`` with ``entmax15(z) = [z / 2 - tau]_+^2``."""
    return 0.5 * m + (s - 1.0)


@njit(**JIT)
def write(z, p, m, s, k, theta):
    """``p = [z / 2 - tau]_+^2`` (a NaN row when ``k == 0``)."""
    _write(z, p, m, s, k)


@njit(**JIT)
def jvp(p, v, out, theta):
    """``J v = sqrt(p) * v - (sqrt(p) . v / sum sqrt(p)) sqrt(p)``."""
    _jvp(p, v, out)


@njit(**JIT)
def loss_label(z, label, m, s, k, theta, scale, grad, want_grad):
    """The Tsallis-1.5 Fenchel-Young loss for class ``label`` (and its gradient)."""
    return _loss_label(z, label, m, s, scale, grad, want_grad)


@njit(**JIT)
def loss_dist(z, q, m, s, k, theta, scale, grad, want_grad):
    """The Tsallis-1.5 Fenchel-Young loss for target distribution ``q`` (and its gradient)."""
    return _loss_dist(z, q, m, s, scale, grad, want_grad)
