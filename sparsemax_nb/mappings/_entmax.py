"""Row functions shared by the entmax mappings (Peters, Niculae & Martins, ACL 2019).

alpha-entmax is ``p_i = [(alpha - 1) z_i - tau]_+ ^ (1 / (alpha - 1))`` with ``tau`` such that
the row sums to 1: alpha = 2 is sparsemax, alpha = 1.5 is 1.5-entmax, alpha -> 1 is softmax.
Pure ``@njit`` code, no backend; :mod:`.entmax15` and :mod:`.entmax_bisect` build the mapping
interface from it.

Coordinates
-----------
Each row is shifted by its maximum ``m`` and scaled: ``x_i = (alpha - 1) (z_i - m)``, so
``max x = 0``. ``p_max <= 1`` puts the shifted threshold ``t`` in ``[-1, 0)``, so only the
candidates ``x > -1`` can be in the support, and ``p_i = y_i^r`` with ``y_i = (x_i - t)_+``
and ``r = 1 / (alpha - 1)``. The threshold is carried as ``v = t - L`` and each entry as
``w_i = x_i - v`` (so ``y_i = w_i - L``; ``w > L`` is the support test everywhere), with
the offset ``L`` chosen so that ``y`` keeps its digits where they matter:

* ``L = -1`` for alpha <= 2 (``v = t + 1``, ``p_i = exp(r log1p(w_i))``): as alpha -> 1,
  ``r`` grows like ``1 / (alpha - 1)`` while ``w_i`` shrinks like ``alpha - 1``, and
  ``log1p`` of the small ``w_i`` keeps the relative accuracy that ``y_i = 1 + w_i`` would
  round away (carrying ``t`` itself, ``p`` would lose ``r`` ulps). The absolute error of
  ``y`` is then ``eps``, which costs ``p`` at most ``r eps y^(r-1) <= r eps``.
* ``L = 0`` for alpha > 2 (``v = t``): there ``r < 1`` and ``y^(r-1)`` is unbounded, so
  ``y`` must be accurate relative to itself, and ``t`` can be as small as ``-K^(1-alpha)``.

The Fenchel-Young loss with the Tsallis ``Omega(p) = (sum p^alpha - 1) / (alpha (alpha - 1))``
is evaluated as a sum of non-negative terms: the Bregman divergence of
``phi(x) = x^alpha / (alpha (alpha - 1))`` between ``q_i`` and ``p_i``, entry by entry, plus
``q_j (tau / (alpha - 1) - z_j)`` over the entries off the support (as sparsemax's loss).
With ``e = alpha - 1``, ``p_i^e = y_i = 1 + u_i`` on the support and ``q_i^e = 1 + E_i`` with
``E_i = expm1(e log q_i)``, the divergence term is
``(q_i (E_i - u_i) / e - (1 + u_i)(q_i - p_i)) / alpha``: ``E_i`` and ``u_i`` are both
``O(e)``, so nothing blows up as alpha -> 1.

Speed
-----
Outside r = 1 and 2 a power is an exp and a log. Numba's ``math.exp``/``math.log1p`` are
scalar libm calls, so the passes take them from :mod:`._fastmath` (vectorisable, about
one ulp) in branch-free loops. The passes after the threshold (the outputs, the loss,
the Jacobian's weights) list the support first and take the powers on the list only.
The r = 2 forms (1.5-entmax, shared with :mod:`.entmax15`) are unchanged.
"""

import math

import numpy as np
from numba import njit

from . import _fastmath as FM
from ._rows import JIT, JIT_SUMS

EPS = np.finfo(np.float64).eps


@njit(**JIT)
def gather(z, m, a1, buf):
    """``x = a1 (z - m)`` (float64) of the candidates ``x > -1`` into ``buf``; their count."""
    n = 0
    for i in range(z.shape[0]):
        x = a1 * (np.float64(z[i]) - m)
        # Branch-free stream compaction: always write, advance only for a candidate.
        buf[n] = x
        n += x > -1.0
    return n


@njit(**JIT)
def offset(a1):
    """The offset ``L`` of the coordinates for ``a1 = alpha - 1`` (module notes)."""
    return 0.0 if a1 > 1.0 else -1.0


@njit(**JIT)
def power(w, r, L):
    """``p = y^r`` with ``y = w - L > 0`` (module notes for the forms)."""
    if L == 0.0:
        return math.exp(r * math.log(w))
    if r == 2.0:
        y = 1.0 + w
        return y * y
    if r == 1.0:
        return 1.0 + w
    return math.exp(r * math.log1p(w))


@njit(**JIT)
def power_or_zero(w, r, L):
    """``power(w, r, L)`` on the support (``w > L``), else 0.

    For r = 1 and 2 it is branch-free on a clamped ``y`` (vectorisable, and no square of a
    huge ``-y``, whose overflow flag NumPy would report from a gufunc); otherwise a real
    branch, so the logarithm and exponential are paid on the support only.
    """
    if L == -1.0 and (r == 2.0 or r == 1.0):
        y = max(1.0 + w, 0.0)
        # y * min(y, 1) is y * y on the support (y <= 1 there); written as y * y, LLVM
        # folds the product of two equal selects into a select of the unclamped square.
        return y * min(y, 1.0) if r == 2.0 else y
    if w > L:
        return power(w, r, L)
    return 0.0


@njit(**JIT)
def q_power_m1(q, a1):
    """``q^(alpha - 1) - 1`` for ``q > 0``, accurate for alpha near 1 (``expm1``)."""
    if a1 == 0.5:
        return math.sqrt(q) - 1.0
    if a1 == 1.0:
        return q - 1.0
    return math.expm1(a1 * math.log(q))


# --------------------------------------------------------------------------- vector passes
# The passes over a row take a power per entry. Written branch-free (the argument clamped
# into the domain by a select, the result masked) with the vectorisable exp and log of
# :mod:`._fastmath`, LLVM runs them four entries to a vector, the sums reduced in vector
# lanes (JIT_SUMS; the exp and log are compiled apart, without reassociation, and the
# loops' own arithmetic is single operations that reassociation cannot reorder).


@njit(**JIT)
def _pow1p(w, r):
    """``(1 + w)_+^r`` (L = -1, any r)."""
    on = w > -1.0
    wc = w if on else 0.0
    p = FM.exp(r * FM.log1p(wc))
    return p if on else 0.0


@njit(**JIT)
def _pow0(w, r):
    """``w_+^r`` (L = 0, any r)."""
    on = w > 0.0
    wc = w if on else 1.0
    p = FM.exp(r * FM.log(wc))
    return p if on else 0.0


# One loop per form of the power (a function passed as an argument would not be inlined
# into the loop, and the loop would not vectorise). Each gives ``(F, G, H, c)`` at ``v``
# over ``buf[:n]``: ``sum p``, ``sum p / y``, ``sum p / y^2`` (for Halley's step; 0 where
# unused) and ``#{w > L}``, ``w = x - v``.


@njit(**JIT_SUMS)
def _pass_1p(buf, n, v, r, tmp):
    # Two loops, the log then the exp: fused, one entry's chain of dependent operations
    # is too long for the core to overlap enough entries (measured twice as slow).
    for i in range(n):
        w = buf[i] - v
        on = w > -1.0
        lg = r * FM.log1p(w if on else 0.0)
        tmp[i] = lg if on else -np.inf  # exp(-inf) = 0: the mask carried to the next loop
    F = 0.0
    G = 0.0
    H = 0.0
    c = 0
    for i in range(n):
        p = FM.exp(tmp[i])
        w = buf[i] - v
        on = w > -1.0
        iy = 1.0 / (1.0 + w) if on else 0.0
        g = p * iy
        F += p
        G += g
        H += g * iy
        c += on
    return F, G, H, c


@njit(**JIT_SUMS)
def _pass_0(buf, n, v, r, tmp):
    for i in range(n):
        w = buf[i] - v
        on = w > 0.0
        lg = r * FM.log(w if on else 1.0)
        tmp[i] = lg if on else -np.inf
    F = 0.0
    G = 0.0
    c = 0
    for i in range(n):
        p = FM.exp(tmp[i])
        w = buf[i] - v
        on = w > 0.0
        F += p
        G += p / w if on else 0.0
        c += on
    return F, G, 0.0, c


@njit(**JIT_SUMS)
def _pass_sq(buf, n, v, r):
    F = 0.0
    G = 0.0
    c = 0
    for i in range(n):
        w = buf[i] - v
        on = w > -1.0
        y = 1.0 + w if on else 0.0
        F += y * y
        G += y
        c += on
    return F, G, np.float64(c), c


@njit(**JIT_SUMS)
def _pass_lin(buf, n, v, r):
    F = 0.0
    c = 0
    for i in range(n):
        w = buf[i] - v
        on = w > -1.0
        F += 1.0 + w if on else 0.0
        c += on
    return F, np.float64(c), 0.0, c


@njit(**JIT)
def _pass_any(buf, n, v, r, L):
    if L == 0.0 or not (r == 2.0 or r == 1.0):
        # scratch for the logs: the free tail of buf (SCRATCH = 2), else a new array
        tmp = buf[n:2 * n] if buf.shape[0] >= 2 * n else np.empty(n, np.float64)
        if L == 0.0:
            return _pass_0(buf, n, v, r, tmp)
        return _pass_1p(buf, n, v, r, tmp)
    if r == 2.0:
        return _pass_sq(buf, n, v, r)
    return _pass_lin(buf, n, v, r)


@njit(**JIT)
def _compact(buf, n, v, L):
    """Keep the candidates with ``x - v > L`` at the front of ``buf``; their count."""
    c = 0
    for i in range(n):
        x = buf[i]
        buf[c] = x
        c += x - v > L
    return c


@njit(**JIT_SUMS)
def _count_above(buf, n, v, L):
    """``#{x - v > L}`` over ``buf[:n]``."""
    c = 0
    for i in range(n):
        c += buf[i] - v > L
    return c


@njit(**JIT_SUMS)
def _sum_above(buf, n, lo, L):
    """``(sum x, count)`` over the candidates with ``x - lo > L``."""
    sx = 0.0
    c = 0
    for i in range(n):
        x = buf[i]
        keep = x - lo > L
        sx += x if keep else 0.0
        c += keep
    return sx, c


# The sampled start (alpha <= 2, long rows): every SAMPLE_STEP-th candidate, whose
# threshold for SAMPLE_MASS / SAMPLE_STEP (more than its share, so that the estimate
# tends to fall below tau, where the rise from below compacts the candidates) is found
# first, on a sixteenth of the entries; the passes over the row then start near tau
# instead of at Michelot's bound, on about half as many candidates. (Measured at alpha =
# 1.3, K = 1024: a step of 16 beat 8, a mass of 1.5 beat 2.5 and 3; a start above tau
# costs a put-back, not a wrong answer.)
SAMPLE_FROM = 256
SAMPLE_STEP = 16
SAMPLE_MASS = 1.5
SAMPLE_TOL = 2.0**-20


@njit(**JIT)
def tau_bracket_newton(buf, n, r, L, tol=0.0):
    """``(v, k)`` for the candidates ``buf[:n]`` (:func:`_newton`; ``buf`` holds at least
    ``2 n`` entries, the rest is scratch). ``tol``: the error in ``v`` at which the search
    may stop (0: to rounding)."""
    v0 = -np.inf  # no start (not NaN: an ordered comparison with NaN raises FE_INVALID)
    if r >= 1.0 and L == -1.0 and n >= SAMPLE_FROM and buf.shape[0] >= 2 * n:
        v0 = _sampled_start(buf, n, r)
    return _newton(buf, n, r, L, tol, v0)


@njit(**JIT)
def _sampled_start(buf, n, r):
    """An estimate of ``v`` from a sample of the candidates ``buf[:n]`` (L = -1)."""
    xm = -np.inf
    for i in range(0, n, SAMPLE_STEP):
        xm = max(xm, buf[i])
    # The sample's threshold t for mass mu: sum (x - t)_+^r = mu, i.e. in x' = (x - xm) / s
    # with s = mu^(1/r), sum (x' - t')_+^r = 1 with max x' = 0: the problem solved below.
    s = math.exp(math.log(SAMPLE_MASS / SAMPLE_STEP) / r)
    sub = buf[n:]
    ns = 0
    for i in range(0, n, SAMPLE_STEP):
        x = (buf[i] - xm) / s
        sub[ns] = x
        ns += x > -1.0
    vs, _ = _newton(sub, ns, r, -1.0, SAMPLE_TOL, -np.inf)
    return (vs - 1.0) * s + xm + 1.0


@njit(**JIT)
def _newton(buf, n, r, L, tol, v0):
    """``(v, k)`` for the candidates ``buf[:n]`` (``x`` values), any ``r = 1/(alpha-1) > 0``.

    ``F(v) = sum (w_i - L)_+^r`` with ``w_i = x_i - v`` is decreasing, with
    ``F(-1 - L) >= 1`` (the maximum gives 1) and ``F(-n^(1 - alpha) - L) <= 1`` (each term
    at most ``1/n``). Each pass evaluates ``F`` and its derivatives at one point (a
    branch-free vector loop, :func:`_pass_any`), updates the bracket ``[lo, hi]`` (at a
    lower bound the candidates at or below it are off the support and are dropped for
    good) and steps, or bisects when the step leaves the bracket. ``buf[n:]`` is scratch.

    Without a start (``v0 = -inf``) the search starts from Michelot's bound (alpha <= 2) or
    ``lo``. With one (:func:`_sampled_start`) the candidates above ``v0`` are kept and the
    others saved at the end of ``buf``, put back as far as needed while the passes are
    above tau.

    For alpha <= 2 (``r >= 1``) the step is Newton's on ``h = F^(1/r) - 1``, convex (a norm
    of an affine map) and nearly affine, with Halley's correction (clamped): from below it
    rises towards the root; once the entries above ``v`` are the support it is a smooth
    convex function, quadratic (cubic) to the end. It stops when a step no longer moves
    ``v``, when the residual is within the rounding of its own sum and the steps no longer
    shrink, or when the error predicted after a shrinking step (from the last two steps)
    is below ``tol`` or a sixteenth of an ulp of ``v``: exact to rounding (float32 rows:
    ``tol = 2^-40``, far below their rounding), not to a bisection tolerance. For alpha > 2
    Newton runs on ``F - 1``, concave on a fixed support (Newton from above falls
    monotonically) but its slope is unbounded where an entry enters the support, where
    Newton can crawl: there a step that does not move ``v`` is not trusted: the next point
    is the neighbouring float towards the root, and the search ends when the bracket is
    two adjacent floats (the end where ``|f|`` is smaller is returned). Past 60 passes
    (never seen, but it bounds the work) every step bisects.
    """
    a1 = 1.0 / r
    lo = -1.0 - L
    hi = -math.expm1(-a1 * math.log(n)) if L == -1.0 else -math.exp(-a1 * math.log(n))
    saved = 0
    end = buf.shape[0]
    if lo < v0 < hi and end >= 2 * n:
        # A start v0 (an estimate, often below tau): the candidates above it are kept at
        # the front, the others saved at the end of buf (beyond the scratch of the
        # passes, buf[n:2n]), to be put back as far as needed if v0 is above tau.
        c = 0
        for i in range(n):
            x = buf[i]
            keep = x - v0 > L
            buf[c] = x
            buf[end - 1 - (i - c)] = x
            c += keep
        saved = n - c
        n = c
    elif r >= 1.0:
        # A cheap lower bound first (sums only, no powers): for any set C, by Jensen,
        # F(t) >= |C'|^(1-r) (sum_C' (x - t))^r over C' = C minus its entries below t, so
        # t = mean_C x - |C|^(-a1) has F(t) >= 1. Michelot's iteration on that bound
        # (C = the candidates above the last bound) raises lo and drops the candidates
        # below it before the passes that evaluate powers.
        for _ in range(16):
            sx, c = _sum_above(buf, n, lo, L)
            # mean - c^(-a1), as v = t - L; for L = -1: 1 - c^(-a1) = -expm1(-a1 log c)
            if L == -1.0:
                v_new = sx / c - math.expm1(-a1 * math.log(c))
            else:
                v_new = sx / c - math.exp(-a1 * math.log(c))
            if not v_new > lo:
                break
            lo = min(v_new, hi)
        n = _compact(buf, n, lo, L)
    v = v0 if saved or lo < v0 < hi else lo
    c_lo = n
    c_hi = 0
    e_lo = np.inf  # |f| at the ends, to return the better end of a collapsed bracket
    e_hi = np.inf
    hi_tried = False
    prev_step = np.inf
    cubic = False
    for it in range(200):
        F, G, H, c = _pass_any(buf, n, v, r, L)
        if F == 1.0:
            return v, c
        below = F > 1.0
        if saved and below:
            saved = 0  # a lower bound: the saved candidates are off the support for good
        if below:
            lo = v
            c_lo = c
            e_lo = F - 1.0
            if c < n:
                # at a lower bound the entries at or below it are off the support for good
                n = _compact(buf, n, v, L)
        else:
            hi = v
            c_hi = c
            e_hi = 1.0 - F
        if r >= 1.0:
            # Newton on h(v) = F^(1/r) - 1 rather than on F - 1: h is a norm of the
            # candidates above v (convex, like F) and nearly affine, so far from the root
            # Newton gains much more per pass than on F (on one entry h is affine: one
            # step). h'/h = F'/(r F) gives this step, with expm1 for alpha near 1.
            d = -math.expm1(-a1 * math.log(F))  # 1 - F^(-1/r)
            step = F * d / G
            if r > 1.0:
                # Halley's correction: h h'' / (2 h'^2) = (r - 1) d (F H - G^2) / (2 G^2)
                # (F H >= G^2 by Cauchy-Schwarz: h is convex). Cubic convergence saves a
                # pass from the sampled start. Clamped: far from tau the step is at most
                # twice Newton's from below (h'' is large where entries leave the support).
                u = (r - 1.0) * d * (F * H - G * G) / (2.0 * G * G)
                uc = min(max(u, -1.0), 0.5)
                step = step / (1.0 - uc)
                # cubic convergence is counted on for r >= 3 only (alpha <= 4/3): below,
                # h'' has kinks where entries leave the support (y^(r-2) in F'')
                cubic = uc == u and r >= 3.0
        else:
            step = (F - 1.0) / (r * G)  # alpha > 2: h is not convex, F did better
        v_new = v + step
        if r >= 1.0 and below and 0.0 < step <= 0.125 * prev_step < np.inf:
            # Quadratic convergence is under way (the step shrank by 8 or more): the error
            # left after this step is about C step^2 with C ~ step / prev_step^2 (for an
            # unclamped Halley step, C step^3 with C ~ step / prev_step^3: were the last
            # step less than cubic, that C is an overestimate). Four times that below
            # the tolerance (tol, or a sixteenth of an ulp of v), the step is taken
            # without a pass to confirm it; only the count is redone.
            q = step / prev_step
            pred = 4.0 * step * q * (q * q if cubic else q)
            if pred <= max(tol, 0.0625 * EPS * v):
                return v_new, _count_above(buf, n, v_new, L)
        if abs(F - 1.0) <= 4.0 * EPS * c and abs(step) >= prev_step:
            # The residual is within the rounding of its own sum and Newton's steps have
            # stopped shrinking: converged (more steps would walk on rounding noise).
            return v, c
        prev_step = abs(step)
        if below and not v_new > v:
            if r >= 1.0:
                return v, c  # convex: Newton from below has converged
            v_new = np.nextafter(v, np.inf)  # Newton crawls: probe the next float
        elif not below and not v_new < v:
            v_new = np.nextafter(v, -np.inf)
        if not (lo < v_new < hi) or it >= 60:
            if v_new >= hi and not hi_tried and it < 60:
                # Newton overshot (alpha > 2): try the bound itself first, the root when
                # the candidates are all equal, and else an upper bound to step down from.
                v_new = hi
                hi_tried = True
            else:
                v_new = 0.5 * (lo + hi)
                if not (lo < v_new < hi):
                    break  # lo and hi are adjacent floats
        if saved:
            # Every pass so far was above tau: the saved candidates above the next point
            # come back (off the support at the points so far, the passes' sums and counts
            # held for them too); the others stay saved until a lower bound is found.
            back = 0
            keep = 0
            for j in range(saved):
                x = buf[end - 1 - j]
                up = x - v_new > L
                buf[n + back] = x
                buf[end - 1 - keep] = x
                back += up
                keep += not up
            n += back
            saved = keep
        v = v_new
    if e_hi < e_lo:
        return hi, c_hi
    return lo, c_lo


@njit(**JIT)
def write(z, p, m, v, k, a1):
    """``p_i = (w_i - L)_+^r`` with ``w_i = a1 (z_i - m) - v``; a NaN row when ``k == 0``."""
    if k == 0:
        for i in range(z.shape[0]):
            p[i] = np.nan
        return
    r = 1.0 / a1
    L = offset(a1)
    if (L == -1.0 and (r == 2.0 or r == 1.0)) or SPARSE * k <= z.shape[0]:
        for i in range(z.shape[0]):
            w = a1 * (np.float64(z[i]) - m) - v
            p[i] = power_or_zero(w, r, L)
        return
    ws, ix, n = support_of(z, m, v, k, a1, L)
    if n > k:  # (never seen: k is the count of the same test) a list for any count
        ws, ix, n = support_of(z, m, v, z.shape[0], a1, L)
    powers(ws, n, r, L)
    for i in range(z.shape[0]):
        p[i] = 0.0
    for j in range(n):
        p[ix[j]] = ws[j]


# --------------------------------------------------------------------------- support lists
# Outside r = 1, 2 a power costs an exp and a log even vectorised, and most entries of a
# row are off the support: the passes after the threshold list the support first
# (``w`` and the index, a cheap branch-free compaction) and take the powers on the list.
# Where the support is at most 1/SPARSE of the row, the entry-by-entry loop with a branch
# (rarely taken, so well predicted) costs less than the listing, and is kept for the
# outputs and the loss (alpha 2.5 and 4 on normal scores: 0.6 x softmax listed, 0.4 kept).
SPARSE = 32


@njit(**JIT)
def support_of(z, m, v, k, a1, L):
    """``(w, index, n)`` of the entries with ``w = a1 (z - m) - v > L`` (``k`` expected)."""
    ws = np.empty(k + 1, np.float64)
    ix = np.empty(k + 1, np.int64)
    n = 0
    for i in range(z.shape[0]):
        w = a1 * (np.float64(z[i]) - m) - v
        j = min(n, k)  # bounds the stores; n > k is reported to the caller
        ws[j] = w
        ix[j] = i
        n += w > L
    return ws, ix, n


@njit(**JIT)
def power_masked(w, r, L):
    """``(w - L)_+^r`` branch-free, through :mod:`._fastmath` (vectorisable)."""
    if L == 0.0:
        return _pow0(w, r)
    return _pow1p(w, r)


@njit(**JIT)
def powers(ws, n, r, L):
    """``ws[:n] <- (ws - L)^r`` in place, the entries all on the support."""
    # the log then the exp in two loops (see _pass_1p)
    if L == 0.0:
        for j in range(n):
            ws[j] = r * FM.log(ws[j])
    else:
        for j in range(n):
            ws[j] = r * FM.log1p(ws[j])
    for j in range(n):
        ws[j] = FM.exp(ws[j])


@njit(**JIT)
def jvp(p, v, out, alpha):
    """``J v = sv * v - (sv . v / sum sv) sv`` with ``sv = p^(2 - alpha)`` on the support.

    A row of ``p`` holding NaN, or with no positive entry, gives NaN.
    """
    b = 2.0 - alpha
    if not (b == 0.5 or b == 0.0):
        _jvp_listed(p, v, out, b)
        return
    ssum = 0.0
    sv = 0.0
    nan = False
    for j in range(p.shape[0]):
        pj = np.float64(p[j])
        nan |= pj != pj
        if pj > 0:
            w = _weight(pj, b)
            ssum += w
            sv += w * np.float64(v[j])
    if nan or not ssum > 0:
        for j in range(p.shape[0]):
            out[j] = np.nan
        return
    c = sv / ssum
    for j in range(p.shape[0]):
        pj = np.float64(p[j])
        out[j] = _weight(pj, b) * (np.float64(v[j]) - c)


@njit(**JIT)
def _jvp_listed(p, v, out, b):
    """:func:`jvp` for ``b = 2 - alpha`` other than 0 and 1/2: the weights ``p^b`` (an exp
    and a log each) taken on the list of the support only."""
    K = p.shape[0]
    ix = np.empty(K + 1, np.int64)
    n = 0
    nan = False
    for j in range(K):
        pj = np.float64(p[j])
        nan |= pj != pj
        ix[n] = j
        n += pj > 0
    ws = np.empty(n, np.float64)
    ssum, sv = _weights(p, v, ix, ws, n, b)
    if nan or not ssum > 0:
        for j in range(K):
            out[j] = np.nan
        return
    c = sv / ssum
    for j in range(K):
        out[j] = 0.0 * (np.float64(v[j]) - c)  # as p^b (v - c) off the support
    for t in range(n):
        j = ix[t]
        out[j] = ws[t] * (np.float64(v[j]) - c)


@njit(**JIT_SUMS)
def _weights(p, v, ix, ws, n, b):
    """``ws[t] = p^b`` at the listed entries; ``(sum ws, sum ws v)``."""
    for t in range(n):  # the log then the exp in two loops (see _pass_1p)
        ws[t] = b * FM.log(np.float64(p[ix[t]]))
    ssum = 0.0
    sv = 0.0
    for t in range(n):
        w = FM.exp(ws[t])
        ws[t] = w
        ssum += w
        sv += w * np.float64(v[ix[t]])
    return ssum, sv


@njit(**JIT)
def _weight(pj, b):
    """``pj^b`` for ``pj > 0``, else 0 (the argument made harmless, see power_or_zero)."""
    on = pj > 0
    pj = pj if on else 1.0
    if not on:
        return 0.0
    if b == 0.5:
        return math.sqrt(pj)
    if b == 0.0:
        return 1.0
    return math.exp(b * math.log(pj))


@njit(**JIT)
def _term(w, L, q, a1, alpha):
    """The loss term of one entry (module notes): ``w = x - v``, ``q`` the target."""
    on = w > L
    has_q = q != 0.0
    # Only where q > 0: a logarithm per entry would dominate the loss for one-hot targets.
    # (For alpha = 1.5, the gufuncs' case, it is sqrt(q) - 1: harmless at q = 0.)
    e = q_power_m1(q, a1) if has_q else 0.0
    if on:
        y = w - L
        u = w if L == -1.0 else y - 1.0  # y - 1, exact in the alpha <= 2 form
        pv = power_or_zero(w, 1.0 / a1, L)
        if not has_q:
            return pv * y / alpha
        return (q * (e - u) / a1 - y * (q - pv)) / alpha
    if not has_q:
        return 0.0  # no 0 * inf for a masked entry
    # phi(q) plus the off-support term q (tau / (alpha - 1) - z) = q (L - w) / (alpha - 1)
    return q * (1.0 + e) / (a1 * alpha) + q * (L - w) / a1


@njit(**JIT)
def loss_label(z, label, m, v, k, a1, scale, grad, want_grad):
    """The loss for class ``label``; with ``want_grad``, ``grad = scale * (p - e_label)``."""
    alpha = 1.0 + a1
    L = offset(a1)
    r = 1.0 / a1
    if not (L == -1.0 and (r == 2.0 or r == 1.0)) and SPARSE * k > z.shape[0]:
        return _loss_label_listed(z, label, m, v, k, a1, scale, grad, want_grad)
    acc = 0.0
    # Read-only pass first: grad may be z itself (in place).
    for j in range(z.shape[0]):
        w = a1 * (np.float64(z[j]) - m) - v
        acc += _term(w, L, 1.0 if j == label else 0.0, a1, alpha)
    if want_grad:
        for j in range(z.shape[0]):
            w = a1 * (np.float64(z[j]) - m) - v
            pj = power_or_zero(w, r, L)
            grad[j] = (pj - 1.0 if j == label else pj) * scale
    return acc


@njit(**JIT)
def _loss_label_listed(z, label, m, v, k, a1, scale, grad, want_grad):
    """:func:`loss_label` for r other than 1 and 2: the powers on the support's list."""
    alpha = 1.0 + a1
    L = offset(a1)
    r = 1.0 / a1
    wl = a1 * (np.float64(z[label]) - m) - v  # read first: grad may be z itself
    ws, ix, n = support_of(z, m, v, k, a1, L)
    if n > k:  # (never seen: k is the count of the same test) a list for any count
        ws, ix, n = support_of(z, m, v, z.shape[0], a1, L)
    acc = _listed_terms(ws, ix, n, r, L, label) / alpha
    # the label's own term, q = 1 (its q = 0 term was left out above)
    acc += _term_fm(wl, L, a1, alpha, r)
    if want_grad:
        for i in range(z.shape[0]):
            grad[i] = 0.0
        for j in range(n):
            grad[ix[j]] = ws[j] * scale
        grad[label] = (power_masked(wl, r, L) - 1.0) * scale
    return acc


@njit(**JIT_SUMS)
def _listed_terms(ws, ix, n, r, L, label):
    """``sum p y`` over the listed entries (on the support) but ``label`` (``p = y^r``,
    ``y = w - L``); ``ws`` becomes ``p``."""
    lg = np.empty(n, np.float64)
    # the log then the exp in two loops (see _pass_1p)
    if L == 0.0:
        for j in range(n):
            lg[j] = r * FM.log(ws[j])
    else:
        for j in range(n):
            lg[j] = r * FM.log1p(ws[j])
    acc = 0.0
    for j in range(n):
        pv = FM.exp(lg[j])
        t = pv * (ws[j] - L)
        acc += t if ix[j] != label else 0.0
        ws[j] = pv
    return acc


@njit(**JIT)
def _term_fm(w, L, a1, alpha, r):
    """:func:`_term` at ``q = 1`` with the power of :func:`power_masked`."""
    if w > L:
        y = w - L
        u = w if L == -1.0 else y - 1.0
        pv = power_masked(w, r, L)
        return (-u / a1 - y * (1.0 - pv)) / alpha
    # phi(1) plus the off-support term (L - w) / (alpha - 1)
    return 1.0 / (a1 * alpha) + (L - w) / a1


@njit(**JIT)
def loss_dist(z, q, m, v, k, a1, scale, grad, want_grad):
    """The loss for target distribution ``q``; with ``want_grad``, ``grad = scale * (p - q)``."""
    alpha = 1.0 + a1
    L = offset(a1)
    acc = 0.0
    for j in range(z.shape[0]):
        w = a1 * (np.float64(z[j]) - m) - v
        acc += _term(w, L, np.float64(q[j]), a1, alpha)
    if want_grad:
        r = 1.0 / a1
        for j in range(z.shape[0]):
            w = a1 * (np.float64(z[j]) - m) - v
            pj = power_or_zero(w, r, L)
            grad[j] = (pj - np.float64(q[j])) * scale
    return acc
