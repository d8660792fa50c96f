"""CUDA kernels (``numba.cuda``) for the entmax mappings: 1.5-entmax and alpha-entmax.

The layout, the work split (groups of ``G`` threads per row, ``ITEMS`` entries per thread
kept in registers when the row fits) and the group reductions are those of
:mod:`sparsemax_nb.backends.cuda_kernels`; the maths is that of
:mod:`sparsemax_nb.mappings._entmax`, whose coordinates are used unchanged: each row is
shifted by its maximum ``m`` and scaled, ``x = (alpha - 1)(z - m)``, the threshold is carried
as ``v = t - L`` with the offset ``L = -1`` for alpha <= 2 and ``0`` for alpha > 2, and
``p = (x - v - L)_+^r`` with ``r = 1 / (alpha - 1)``.

Threshold search
----------------
One search serves every alpha (1.5-entmax is alpha = 1.5): the CPU's bracketed Newton
(``_entmax.tau_bracket_newton``) without its compaction. On the CPU each pass moves the
entries above the trial point to the front and drops the rest at a lower bound; here a
group re-reads its row (from registers, or from global memory for long rows) every pass,
and an entry at or below a lower bound simply contributes nothing to any later pass (the
trial points only rise above a lower bound), so the sums, the bracket and the steps are the
CPU's. Per pass the group reduces three float64 sums: ``F = sum (w - L)^r``, ``F'``-like
``sum (w - L)^(r-1)`` and the count of the entries above the point. For alpha <= 2 a few
cheap passes (sums of ``x`` only, no powers) first raise the lower bound by Michelot's
iteration on the Jensen bound, as on the CPU. The stopping rules are the CPU's: exact to
rounding, not to a tolerance; at most 16 + 200 passes.

No mapping-specific method runs here: 1.5-entmax's sort and quadratic finish (the CPU's
``method="sort"``/``"select"``) are not used, so its results agree with the CPU's to
rounding (a few ulps), not bit for bit.

Rounding
--------
As in :mod:`.cuda_kernels`, products that feed a support decision (``x = (alpha - 1)(z - m)``
and the square of 1.5-entmax) go through ``mul_rn``, so the CUDA toolchain cannot fuse
them into the following addition: ``x`` and ``w = x - v`` then round as on the CPU.
"""

import math

from numba import cuda, float64, int64

from .cuda_kernels import ITEMS, _n_mine, _setup
from .cuda_warp import SH_SHAPE, group_all, mul_rn, next_down, next_up, reduce3, reduce3_sum

_INF = math.inf
_NAN = math.nan
EPS = 2.0**-52
PRELUDE_PASSES = 16  # Michelot passes on the Jensen bound (alpha <= 2), as on the CPU
NEWTON_PASSES = 200  # hard stop of the Newton passes, as on the CPU
BISECT_AFTER = 60  # past this many Newton passes every step bisects


# --------------------------------------------------------------------------- scalar maths
@cuda.jit(device=True)
def _offset(a1):
    return 0.0 if a1 > 1.0 else -1.0


@cuda.jit(device=True)
def _power(w, r, L):
    """``y^r`` with ``y = w - L > 0`` (the forms of ``_entmax.power``)."""
    if L == 0.0:
        return math.exp(r * math.log(w))
    if r == 2.0:
        y = 1.0 + w
        return mul_rn(y, y)
    if r == 1.0:
        return 1.0 + w
    return math.exp(r * math.log1p(w))


@cuda.jit(device=True)
def _power_or_zero(w, r, L):
    if w > L:
        return _power(w, r, L)
    return 0.0


@cuda.jit(device=True)
def _q_power_m1(q, a1):
    """``q^(alpha - 1) - 1`` for ``q > 0``."""
    if a1 == 0.5:
        return math.sqrt(q) - 1.0
    if a1 == 1.0:
        return q - 1.0
    return math.expm1(a1 * math.log(q))


@cuda.jit(device=True)
def _weight(pj, b):
    """``pj^b`` for ``pj > 0``, else 0 (the Jacobian's weights, ``b = 2 - alpha``)."""
    if not pj > 0.0:
        return 0.0
    if b == 0.5:
        return math.sqrt(pj)
    if b == 0.0:
        return 1.0
    return math.exp(b * math.log(pj))


@cuda.jit(device=True)
def _term(w, L, q, a1, alpha, r):
    """The loss term of one entry (``_entmax._term``): ``w = x - v``, ``q`` the target."""
    on = w > L
    has_q = q != 0.0
    e = _q_power_m1(q, a1) if has_q else 0.0
    if on:
        y = w - L
        u = w if L == -1.0 else y - 1.0
        pv = _power(w, r, L)
        if not has_q:
            return pv * y / alpha
        return (q * (e - u) / a1 - y * (q - pv)) / alpha
    if not has_q:
        return 0.0  # no 0 * inf for a masked entry
    return q * (1.0 + e) / (a1 * alpha) + q * (L - w) / a1


@cuda.jit(device=True)
def _hi(c, a1, L):
    """The upper bound of ``v`` for ``c`` candidates: ``t = -c^(1 - alpha)``."""
    if L == -1.0:
        return -math.expm1(-a1 * math.log(c))
    return -math.exp(-a1 * math.log(c))


@cuda.jit(device=True)
def _alpha(th, r):
    """alpha of row ``r``: one value for all rows, or one per row."""
    if th.shape[0] > 1:
        return th[r]
    return th[0]


# --------------------------------------------------------------------------- the search
@cuda.jit(device=True)
def _acc(x, v, r, L, newton, a, b, c):
    """Add entry ``x`` to the partial sums at ``v``: ``(F, F'', count)`` when ``newton``,
    else ``(sum x, count, 0)``, over the entries with ``w = x - v > L``."""
    w = x - v
    if w > L:
        if newton:
            pv = _power(w, r, L)
            a += pv
            b += pv / (w - L)
            c += 1.0
        else:
            a += x
            b += 1.0
    return a, b, c


@cuda.jit(device=True)
def _pass(z3, o, i, kk, g, G, loc, cached, m, a1, v, r, L, newton):
    """This thread's partial sums (see ``_acc``) at ``v``."""
    a = 0.0
    b = 0.0
    c = 0.0
    if cached:
        # -inf padding: never above v.
        for q in range(ITEMS):
            a, b, c = _acc(loc[q], v, r, L, newton, a, b, c)
    else:
        for j in range(g, kk, G):
            x = mul_rn(a1, float64(z3[o, j, i]) - m)
            a, b, c = _acc(x, v, r, L, newton, a, b, c)
    return a, b, c


@cuda.jit(device=True)
def _row_v(z3, o, i, kk, g, G, t, sh, loc, cached, a1):
    """``(m, v, k, par)`` of the group's row at ``alpha = 1 + a1``; ``k == 0`` marks a NaN
    (or absent) row.

    ``kk`` is ``K`` for an active row and 0 for a row the group skips; such a group still
    runs every reduction. With ``cached``, ``loc`` holds the row's ``x`` on return (entry
    ``j = g + c G`` in ``loc[c]``, ``-inf`` past the row's end). ``par`` is the shared
    buffer the caller's next reduction must use.
    """
    bad = 0.0
    negmax = _INF
    if cached:
        nv = _n_mine(kk, g, G)
        for c in range(ITEMS):
            j = g + c * G
            x = float64(z3[o, j, i]) if c < nv else -_INF
            loc[c] = x
            if x != x:
                bad = 1.0
            elif -x < negmax:
                negmax = -x
    else:
        for j in range(g, kk, G):
            x = float64(z3[o, j, i])
            if x != x:
                bad = 1.0
            elif -x < negmax:
                negmax = -x
    nbad, _, negmax = reduce3(sh, t, g, G, bad, 0.0, negmax, 0)
    par = 1
    m = -negmax
    done = nbad > 0.0 or m == _INF or m == -_INF or kk == 0
    if cached and not done:
        for c in range(ITEMS):
            loc[c] = mul_rn(a1, loc[c] - m)
    r = 1.0 / a1
    L = _offset(a1)
    lo = -1.0 - L
    hi = lo
    have_hi = False
    c_lo = 0.0
    # Prelude (alpha <= 2): at the lower bound lo, the entries above it are C, and
    # t = mean_C x - |C|^(-a1) is again a lower bound (Jensen); it rises to a fixed point.
    pre = done or r < 1.0
    for _ in range(PRELUDE_PASSES):
        a = 0.0
        b = 0.0
        if not pre:
            a, b, _c = _pass(z3, o, i, kk, g, G, loc, cached, m, a1, lo, r, L, False)
        sx, cnt, _c = reduce3_sum(sh, t, g, G, a, b, 0.0, par)
        par = 1 - par
        if not pre:
            if not have_hi:
                hi = _hi(cnt, a1, L)
                have_hi = True
            c_lo = cnt
            if L == -1.0:
                v_new = sx / cnt - math.expm1(-a1 * math.log(cnt))
            else:
                v_new = sx / cnt - math.exp(-a1 * math.log(cnt))
            if not v_new > lo:
                pre = True
            else:
                lo = min(v_new, hi)
        if group_all(pre, G):
            break
    # Newton (on h = F^(1/r) - 1 for alpha <= 2, on F - 1 above), bracket kept.
    v = lo
    c_hi = 0.0
    e_lo = _INF
    e_hi = _INF
    hi_tried = False
    prev_step = _INF
    it = 0
    v_res = _NAN
    k_res = 0.0
    while True:
        a = 0.0
        b = 0.0
        c = 0.0
        if not done:
            a, b, c = _pass(z3, o, i, kk, g, G, loc, cached, m, a1, v, r, L, True)
        F, Fd, c = reduce3_sum(sh, t, g, G, a, b, c, par)
        par = 1 - par
        if not done:
            if not have_hi:
                hi = _hi(c, a1, L)
                have_hi = True
                c_lo = c
            if F == 1.0:
                v_res = v
                k_res = c
                done = True
            else:
                below = F > 1.0
                if below:
                    lo = v
                    c_lo = c
                    e_lo = F - 1.0
                else:
                    hi = v
                    c_hi = c
                    e_hi = 1.0 - F
                if r >= 1.0:
                    step = -F * math.expm1(-a1 * math.log(F)) / Fd
                else:
                    step = (F - 1.0) / (r * Fd)
                v_new = v + step
                if abs(F - 1.0) <= 4.0 * EPS * c and abs(step) >= prev_step:
                    v_res = v
                    k_res = c
                    done = True
                else:
                    prev_step = abs(step)
                    if below and not v_new > v:
                        if r >= 1.0:
                            v_res = v  # convex: Newton from below has converged
                            k_res = c
                            done = True
                        else:
                            v_new = next_up(v)  # Newton crawls: probe the next float
                    elif not below and not v_new < v:
                        v_new = next_down(v)
                    if not done:
                        if not (lo < v_new and v_new < hi) or it >= BISECT_AFTER:
                            if v_new >= hi and not hi_tried and it < BISECT_AFTER:
                                v_new = hi
                                hi_tried = True
                            else:
                                v_new = 0.5 * (lo + hi)
                                if not (lo < v_new and v_new < hi):
                                    done = True  # lo and hi are adjacent floats
                        v = v_new
                        it += 1
                        if it >= NEWTON_PASSES:
                            done = True
                        if done:
                            # The end of the bracket where |F - 1| is smaller.
                            if e_hi < e_lo:
                                v_res = hi
                                k_res = c_hi
                            else:
                                v_res = lo
                                k_res = c_lo
        if group_all(done, G):
            break
    if not (k_res > 0.0):
        return m, _NAN, 0, par
    return m, v_res, int64(k_res), par


@cuda.jit(device=True)
def _p_of(x, v, k, r, L):
    if k == 0:
        return _NAN
    return _power_or_zero(x - v, r, L)


# --------------------------------------------------------------------------- kernels
@cuda.jit
def k_ent_forward(z3, p3, th, n_rows, inner, G):
    """``p = (x - v - L)_+^r`` per row (NaN rows for bad input); ``th``: alpha, one value
    or one per row."""
    sh = cuda.shared.array(SH_SHAPE, float64)
    loc = cuda.local.array(ITEMS, float64)
    t, g, r, valid, o, i = _setup(n_rows, inner, G)
    K = z3.shape[1]
    cached = K <= G * ITEMS
    kk = K if valid else 0
    a1 = _alpha(th, r) - 1.0
    m, v, k, par = _row_v(z3, o, i, kk, g, G, t, sh, loc, cached, a1)
    rr = 1.0 / a1
    L = _offset(a1)
    if cached:
        nv = _n_mine(kk, g, G)
        for c in range(ITEMS):
            j = g + c * G
            if c < nv:
                p3[o, j, i] = _p_of(loc[c], v, k, rr, L)
    else:
        for j in range(g, kk, G):
            x = mul_rn(a1, float64(z3[o, j, i]) - m)
            p3[o, j, i] = _p_of(x, v, k, rr, L)


@cuda.jit
def k_ent_threshold(z3, tau_out, k_out, th, n_rows, inner, G):
    """``tau`` (``p = [(alpha - 1) z - tau]_+^r``) and the support size per row."""
    sh = cuda.shared.array(SH_SHAPE, float64)
    loc = cuda.local.array(ITEMS, float64)
    t, g, r, valid, o, i = _setup(n_rows, inner, G)
    K = z3.shape[1]
    cached = K <= G * ITEMS
    kk = K if valid else 0
    a1 = _alpha(th, r) - 1.0
    m, v, k, par = _row_v(z3, o, i, kk, g, G, t, sh, loc, cached, a1)
    if valid and g == 0:
        tau_out[r] = mul_rn(a1, m) + (v + _offset(a1)) if k > 0 else _NAN
        k_out[r] = k


@cuda.jit
def k_ent_jvp(p3, v3, out3, th, n_rows, inner, G):
    """``J v = s * v - (s . v / sum s) s`` with ``s = p^(2 - alpha)`` on the support; a row
    of ``p`` with a NaN or no positive entry gives NaN."""
    sh = cuda.shared.array(SH_SHAPE, float64)
    t, g, r, valid, o, i = _setup(n_rows, inner, G)
    K = p3.shape[1]
    kk = K if valid else 0
    b = 2.0 - _alpha(th, r)
    ssum = 0.0
    sv = 0.0
    nan = 0.0
    for j in range(g, kk, G):
        pj = float64(p3[o, j, i])
        if pj != pj:
            nan = 1.0
        if pj > 0.0:
            w = _weight(pj, b)
            ssum += w
            sv += w * float64(v3[o, j, i])
    ssum, sv, nan = reduce3_sum(sh, t, g, G, ssum, sv, nan, 0)
    bad = nan > 0.0 or not ssum > 0.0
    c = sv / ssum if not bad else 0.0
    for j in range(g, kk, G):
        # Read p and v before writing: out may be p or v itself (one thread per entry).
        pj = float64(p3[o, j, i])
        vj = float64(v3[o, j, i])
        if bad:
            out3[o, j, i] = _NAN
        else:
            out3[o, j, i] = _weight(pj, b) * (vj - c)


@cuda.jit
def k_ent_loss_labels(z3, y, ignore, scale, loss, g3, want_grad, th, n_rows, inner, G):
    """The Tsallis Fenchel-Young loss (and gradient ``scale (p - e_y)``) for class indices;
    rows whose label is ``ignore`` get loss 0 and a zero gradient. Each entry is read and
    written by one thread, so ``g3`` may be ``z3`` itself."""
    sh = cuda.shared.array(SH_SHAPE, float64)
    loc = cuda.local.array(ITEMS, float64)
    t, g, r, valid, o, i = _setup(n_rows, inner, G)
    K = z3.shape[1]
    cached = K <= G * ITEMS
    label = int64(y[r]) if valid else int64(0)
    active = valid and label != ignore
    kk = K if active else 0
    a1 = _alpha(th, r) - 1.0
    m, v, k, par = _row_v(z3, o, i, kk, g, G, t, sh, loc, cached, a1)
    alpha = 1.0 + a1
    rr = 1.0 / a1
    L = _offset(a1)
    acc = 0.0
    # The row is re-read here even when it was cached: the loss term is too large a loop
    # body for LLVM to unroll, and one dynamically indexed read of ``loc`` would move the
    # whole cache to local memory for the search too.
    for j in range(g, kk, G):
        x = mul_rn(a1, float64(z3[o, j, i]) - m)
        on = 1.0 if j == label else 0.0
        acc += _term(x - v, L, on, a1, alpha, rr)
        if want_grad:
            g3[o, j, i] = (_p_of(x, v, k, rr, L) - on) * scale
    acc, _, _ = reduce3_sum(sh, t, g, G, acc, 0.0, 0.0, par)
    if valid and want_grad and not active:
        for j in range(g, K, G):
            g3[o, j, i] = 0.0
    if valid and g == 0:
        if not active:
            loss[r] = 0.0
        elif k == 0:
            loss[r] = _NAN
        else:
            loss[r] = acc


@cuda.jit
def k_ent_loss_dist(z3, q3, scale, loss, g3, want_grad, th, n_rows, inner, G):
    """The loss (and gradient ``scale (p - q)``) for one target distribution per row."""
    sh = cuda.shared.array(SH_SHAPE, float64)
    loc = cuda.local.array(ITEMS, float64)
    t, g, r, valid, o, i = _setup(n_rows, inner, G)
    K = z3.shape[1]
    cached = K <= G * ITEMS
    kk = K if valid else 0
    a1 = _alpha(th, r) - 1.0
    m, v, k, par = _row_v(z3, o, i, kk, g, G, t, sh, loc, cached, a1)
    alpha = 1.0 + a1
    rr = 1.0 / a1
    L = _offset(a1)
    acc = 0.0
    for j in range(g, kk, G):  # re-read, as in k_ent_loss_labels
        x = mul_rn(a1, float64(z3[o, j, i]) - m)
        qj = float64(q3[o, j, i])
        acc += _term(x - v, L, qj, a1, alpha, rr)
        if want_grad:
            g3[o, j, i] = (_p_of(x, v, k, rr, L) - qj) * scale
    acc, _, _ = reduce3_sum(sh, t, g, G, acc, 0.0, 0.0, par)
    if valid and g == 0:
        loss[r] = _NAN if k == 0 else acc
