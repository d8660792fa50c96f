"""CUDA kernels (``numba.cuda``) for sparsemax, its threshold, Jacobian and loss.

Layout
------
Every kernel reads a C-contiguous array viewed as ``(outer, K, inner)``: the row ``r`` is
``(o, i) = divmod(r, inner)`` and its entries are ``a[o, j, i]``, ``j < K``. Any ``axis`` of a
C-contiguous N-d array has that view without a copy (``outer = prod(shape[:axis])``,
``inner = prod(shape[axis+1:])``), so no kernel ever transposes.

Work split
----------
A block of ``TPB`` threads is cut into groups of ``G`` threads (``G`` a power of two,
``1 <= G <= TPB``); each group owns one row, so a block handles ``TPB // G`` rows. Thread
``g`` of a group visits ``j = g, g + G, g + 2G, ...`` (coalesced when ``inner == 1``). When a
row fits in ``G * ITEMS`` entries each thread keeps its entries in registers (a local array),
so global memory is read once and written once; longer rows are re-read from global memory
(L1/L2) on each pass. Group reductions (:mod:`sparsemax_nb.backends.cuda_warp`) are warp shuffles
plus, for groups wider than a warp, one barrier; under the simulator they fall back to
shared memory. Groups that share barriers leave the search loop together (rows of a block
that finish early run empty passes until the others are done); groups of at most a warp
vote within their warp only, and a group that is the whole block needs no vote.

Threshold search (all on the device, no host round trip)
--------------------------------------------------------
Rows are shifted by their maximum ``m`` (``d = z - m`` in float64; exact near the top, so
1e38 / 1e308 rows are right). ``tau`` (shifted) lies in ``[-1, -1/K]``. Each pass evaluates,
at a trial point ``t``, the count ``c``, sum ``s`` and minimum ``mn`` of the ``d > t``
(one fused three-value reduction). ``f(t) = s - c t - 1 >= 0`` means ``t <= tau``; then
Michelot's step ``t' = (s - 1) / c`` is again a lower bound, and when ``t' < mn`` the set
``{d > t'}`` is exactly ``{d > t}``, so ``t'`` *is* the threshold (the exact support
formula ``tau = (sum_S d - 1) / k``). Michelot usually ends in 2-6 passes; because it can
need up to ``K`` passes on adversarial rows, the trial point is the bracket midpoint every
second pass after ``MICHELOT_PASSES``, so at most ~130 passes in the worst case (the bracket
reaches adjacent floats), all on the device.

Non-finite rows: a NaN or ``+inf``, or no finite entry, gives ``k = 0`` and NaN outputs.
All sums accumulate in float64 whatever the input dtype.

Rounding
--------
The test ``s - c t - 1 >= 0`` decides which side of ``tau`` a trial point lies on. The
CUDA toolchain fuses ``s - c * t`` into one DFMA by default (ptxas contracts a plain
``mul.f64`` followed by ``sub.f64``; one rounding instead of two), which can flip that
decision on near ties and give a support different from the CPU's; the product goes
through ``mul_rn`` (``__nv_dmul_rn``, emitted as ``mul.rn.f64``, which is never
contracted). The other products (``gj * gj`` in
the loss) only change the last bits of a sum, not a support decision, and are left to the
compiler.
"""

import math

from numba import cuda, float32, float64, int32, int64, uint64

from .cuda_warp import SH_SHAPE, group_all, key_of, mul_rn, reduce3, value_of

ITEMS = 8  # entries of a row kept in registers per thread
MAX_TPB = 256  # largest block size (sizes the shared scratch)
MICHELOT_PASSES = 12  # plain Michelot passes before bisection steps are interleaved
MAX_PASSES = 400  # hard stop; never reached (the bracket collapses first)
ITEMS_REG = 32  # float32 entries per thread in the register-resident kernels
PASSES32 = 8  # float32 Michelot passes before the exact float64 finish
# The float32 passes stop at most this far (shifted units, |tau| <= 1) above or below the
# fixed point: their sums of at most ITEMS_REG + log2(MAX_TPB) rounded terms are off by
# about 40 * 2^-24 relative, 2^-12 is a wide margin. The float64 finish starts this far
# below the float32 estimate, so it starts below tau.
MARGIN32 = 2.0**-12

_INF = math.inf
_NAN = math.nan


# --------------------------------------------------------------------------- device helpers
# Group reductions, loop votes and the rounded product come from cuda_warp: warp shuffles on
# a GPU, shared memory under the simulator (same kernel source for both).


@cuda.jit(device=True)
def _step(cs, ss, mm, lo, hi, tt, tc_lo, c_lo, it):
    """One step of the threshold search, from the count ``cs``, sum ``ss`` and minimum
    ``mm`` of the shifted entries ``d > tt``.

    Returns ``(lo, hi, tt, tc_lo, c_lo, tau, k, done, it)``: the bracket ``[lo, hi]`` of
    ``tau``, the next trial point ``tt``, Michelot's candidate ``tc_lo`` from the last lower
    bound (with its count ``c_lo``), and, once ``done``, ``tau`` and ``k``.
    """
    it += 1
    tau = _NAN
    k = 0.0
    done = False
    # The product is rounded on its own (mul_rn): a fused multiply-add would round
    # s - c t once, not twice, and could flip this test on near ties relative to the CPU.
    if (ss - mul_rn(cs, tt)) - 1.0 >= 0.0:
        # tt <= tau: {d > tt} holds the support; Michelot's step stays below tau.
        lo = tt
        tc_lo = (ss - 1.0) / cs
        c_lo = cs
        if tc_lo < mm:
            # No entry in (tt, tc_lo]: the support is {d > tt}, tau is exact.
            return lo, hi, tt, tc_lo, c_lo, tc_lo, cs, True, it
    else:
        hi = tt
    nxt = tc_lo
    if (it > MICHELOT_PASSES and it % 2 == 0) or not (nxt > lo and nxt < hi):
        nxt = 0.5 * (lo + hi)
    if not (nxt > lo and nxt < hi) or it >= MAX_PASSES:
        # The bracket is two adjacent floats: {d > lo} differs from the support only by
        # entries within rounding of tau.
        tau = tc_lo
        k = c_lo
        done = True
    return lo, hi, nxt, tc_lo, c_lo, tau, k, done, it


@cuda.jit(device=True)
def _n_mine(kk, g, G):
    """How many of the entries ``g, g + G, ...`` are below ``kk``: the unrolled loops test
    ``c < n`` (a small int32 against a constant) rather than 32 live 64-bit ``g + c G < kk``
    (which cost ~45 registers)."""
    if kk <= g:
        return int32(0)
    return int32((kk - g + G - 1) // G)


@cuda.jit(device=True)
def _row_tau(z3, o, i, kk, K, g, G, t, sh, loc, cached):
    """``(m, tau_shifted, k, par)`` of the group's row; ``k == 0`` marks a NaN (or absent) row.

    ``kk`` is ``K`` for an active row and 0 for a row the group skips (past the end, or an
    ignored label); such a group still runs every reduction. With ``cached`` the row is
    left in ``loc`` (entry ``j = g + c G`` in ``loc[c]``, ``-inf`` past the row's end).
    ``par`` is the shared buffer the next reduction of the caller must use.
    """
    # Pass 1: maximum (as the min of -x, so one reduction routine serves) and bad flags.
    bad = 0.0
    negmax = _INF
    if cached:
        # A loop of constant trip count with constant indices once unrolled: ``loc`` can
        # live in registers.
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
    lo = -1.0
    hi = -1.0 / K
    tt = lo
    tc_lo = lo
    c_lo = 0.0
    tau = _NAN
    k = 0.0
    it = 0
    while True:
        cs = 0.0
        ss = 0.0
        mm = _INF
        if not done:
            if cached:
                # Padding entries are -inf: never above tt.
                for c in range(ITEMS):
                    d = loc[c] - m
                    if d > tt:
                        cs += 1.0
                        ss += d
                        mm = min(mm, d)
            else:
                for j in range(g, kk, G):
                    d = float64(z3[o, j, i]) - m
                    if d > tt:
                        cs += 1.0
                        ss += d
                        mm = min(mm, d)
        cs, ss, mm = reduce3(sh, t, g, G, cs, ss, mm, par)
        par = 1 - par
        if not done:
            lo, hi, tt, tc_lo, c_lo, tau, k, done, it = _step(
                cs, ss, mm, lo, hi, tt, tc_lo, c_lo, it
            )
        # Threads that share reductions leave together (a warp vote when a group fits in
        # a warp; a block barrier only when a block holds several multi-warp groups).
        if group_all(done, G):
            break
    if not (k > 0.0):
        return m, _NAN, 0, par
    return m, tau, int(k), par


@cuda.jit(device=True)
def _p_of(x, m, tau, k):
    if k == 0:
        return _NAN
    # (z - m) - tau, not z - (m + tau): exact for huge rows.
    return max((x - m) - tau, 0.0)


@cuda.jit(device=True)
def _setup(n_rows, inner, G):
    t = cuda.threadIdx.x
    g = t % G
    r = cuda.blockIdx.x * (cuda.blockDim.x // G) + t // G
    valid = r < n_rows
    if not valid:
        r = 0
    return t, g, r, valid, r // inner, r % inner


# --------------------------------------------------------------------------- register-resident
# Float32 rows of a few hundred to a few thousand entries (``cuda.py`` routes them here): each
# thread holds ITEMS_REG = 32 float32 entries in registers, so a row of up to 1024 entries
# is one warp (no block barrier at all: shuffles and a warp vote) and up to 8192 entries
# are at most 8 warps. The search runs in two phases:
#
# 1. At most PASSES32 Michelot passes in float32 (count and sum over ``x - m > t``, two
#    float32 shuffles per level), stopping at the fixed point (the count repeats).
# 2. The exact finish of ``_row_tau`` in float64 from ``t - MARGIN32``: usually a single
#    pass confirms the support (``f(t) >= 0`` and no entry between ``t`` and the support
#    formula's ``tau``), otherwise the float64 search simply continues (Michelot with the
#    bisection guard), so the result is the float64 kernel's, bit for bit in the
#    decisions, whatever the float32 phase did.
#
# Float64 work is one pass plus the output (about 6 float64 operations per entry instead
# of ~27), which matters on GPUs whose FP64 rate is 1/64 of FP32.


@cuda.jit(device=True)
def _row_tau_reg(z1, base, step, kk, K, g, G, t, sh, sh32, loc):
    """``(m, tau_shifted, k, par)`` of the group's row, entries cached in ``loc`` (float32,
    ``-inf`` padding); ``k == 0`` marks a NaN (or absent) row. Entry ``j = g + c G`` of the
    row is ``z1[base + c step]`` (flat, unsigned indices: no negative-index fix-ups)."""
    ninf32 = float32(-_INF)
    bad = float32(0.0)
    negmax = float32(_INF)
    nv = _n_mine(kk, g, G)
    for c in range(ITEMS_REG):
        x = float32(z1[base + uint64(c) * step]) if c < nv else ninf32
        loc[c] = x
        if x != x:
            bad = float32(1.0)
        elif -x < negmax:
            negmax = -x
    nbad, _, negmax = reduce3(sh32, t, g, G, bad, float32(0.0), negmax, 0)
    par = 1
    m32 = -negmax
    m = float64(m32)
    done = nbad > 0.0 or m == _INF or m == -_INF or kk == 0
    # Phase 1: float32 Michelot passes (t increases, the count decreases to a fixed point).
    t32 = float32(-1.0)
    cprev = float32(-1.0)
    fixed = done
    for _ in range(PASSES32):
        cs = float32(0.0)
        ss = float32(0.0)
        if not fixed:
            for c in range(ITEMS_REG):
                d = loc[c] - m32
                if d > t32:
                    cs += float32(1.0)
                    ss += d
        cs, ss, _ = reduce3(sh32, t, g, G, cs, ss, float32(0.0), par)
        par = 1 - par
        if not fixed:
            if cs == cprev:
                fixed = True
            else:
                cprev = cs
                t32 = (ss - float32(1.0)) / cs
        if group_all(fixed, G):
            break
    # Phase 2: the exact float64 search, from just below the float32 estimate.
    lo = -1.0
    hi = -1.0 / K
    tt = max(lo, float64(t32) - MARGIN32)
    tc_lo = lo
    c_lo = 0.0
    tau = _NAN
    k = 0.0
    it = 0
    while True:
        cs = 0.0
        ss = 0.0
        mm = _INF
        if not done:
            for c in range(ITEMS_REG):
                d = float64(loc[c]) - m
                if d > tt:
                    cs += 1.0
                    ss += d
                    mm = min(mm, d)
        cs, ss, mm = reduce3(sh, t, g, G, cs, ss, mm, par)
        par = 1 - par
        if not done:
            lo, hi, tt, tc_lo, c_lo, tau, k, done, it = _step(
                cs, ss, mm, lo, hi, tt, tc_lo, c_lo, it
            )
        if group_all(done, G):
            break
    if not (k > 0.0):
        return m, _NAN, 0, par
    return m, tau, int(k), par


@cuda.jit(device=True)
def _flat(n_rows, K, inner, G):
    """Flat unsigned ``(base, step)`` of the group's entries ``g, g + G, ...`` and the
    ``_setup`` values."""
    t, g, r, valid, o, i = _setup(n_rows, inner, G)
    base = (uint64(o) * uint64(K) + uint64(g)) * uint64(inner) + uint64(i)
    step = uint64(G) * uint64(inner)
    return t, g, r, valid, base, step


@cuda.jit
def k_forward_reg(z1, p1, n_rows, K, inner, G):
    """``k_forward`` for float32 rows of at most ``G * ITEMS_REG`` entries (flat arrays)."""
    sh = cuda.shared.array(SH_SHAPE, float64)
    sh32 = cuda.shared.array(SH_SHAPE, float32)
    loc = cuda.local.array(ITEMS_REG, float32)
    t, g, r, valid, base, step = _flat(n_rows, K, inner, G)
    kk = K if valid else 0
    m, tau, k, par = _row_tau_reg(z1, base, step, kk, K, g, G, t, sh, sh32, loc)
    nv = _n_mine(kk, g, G)
    for c in range(ITEMS_REG):
        if c < nv:
            p1[base + uint64(c) * step] = _p_of(float64(loc[c]), m, tau, k)


@cuda.jit
def k_threshold_reg(z1, tau_out, k_out, n_rows, K, inner, G):
    """``k_threshold`` for float32 rows of at most ``G * ITEMS_REG`` entries (flat array)."""
    sh = cuda.shared.array(SH_SHAPE, float64)
    sh32 = cuda.shared.array(SH_SHAPE, float32)
    loc = cuda.local.array(ITEMS_REG, float32)
    t, g, r, valid, base, step = _flat(n_rows, K, inner, G)
    kk = K if valid else 0
    m, tau, k, par = _row_tau_reg(z1, base, step, kk, K, g, G, t, sh, sh32, loc)
    if valid and g == 0:
        tau_out[r] = m + tau if k > 0 else _NAN
        k_out[r] = k


# --------------------------------------------------------------------------- kernels
@cuda.jit
def k_forward(z3, p3, n_rows, inner, G):
    """``p = max(z - tau, 0)`` per row (NaN rows for bad input)."""
    sh = cuda.shared.array(SH_SHAPE, float64)
    loc = cuda.local.array(ITEMS, float64)
    t, g, r, valid, o, i = _setup(n_rows, inner, G)
    K = z3.shape[1]
    cached = K <= G * ITEMS
    kk = K if valid else 0
    m, tau, k, par = _row_tau(z3, o, i, kk, K, g, G, t, sh, loc, cached)
    if cached:
        nv = _n_mine(kk, g, G)
        for c in range(ITEMS):
            j = g + c * G
            if c < nv:
                p3[o, j, i] = _p_of(loc[c], m, tau, k)
    else:
        for j in range(g, kk, G):
            p3[o, j, i] = _p_of(float64(z3[o, j, i]), m, tau, k)


@cuda.jit
def k_threshold(z3, tau_out, k_out, n_rows, inner, G):
    """``tau`` (unshifted) and the support size per row."""
    sh = cuda.shared.array(SH_SHAPE, float64)
    loc = cuda.local.array(ITEMS, float64)
    t, g, r, valid, o, i = _setup(n_rows, inner, G)
    K = z3.shape[1]
    cached = K <= G * ITEMS
    kk = K if valid else 0
    m, tau, k, par = _row_tau(z3, o, i, kk, K, g, G, t, sh, loc, cached)
    if valid and g == 0:
        tau_out[r] = m + tau if k > 0 else _NAN
        k_out[r] = k


@cuda.jit
def k_jvp(p3, v3, out3, n_rows, inner, G):
    """``J(p) v = s * (v - mean_S v)``; a row of ``p`` with a NaN or no support gives NaN."""
    sh = cuda.shared.array(SH_SHAPE, float64)
    t, g, r, valid, o, i = _setup(n_rows, inner, G)
    K = p3.shape[1]
    kk = K if valid else 0
    cnt = 0.0
    s = 0.0
    nan = 0.0
    for j in range(g, kk, G):
        pj = float64(p3[o, j, i])
        if pj > 0.0:
            cnt += 1.0
            s += float64(v3[o, j, i])
        if pj != pj:
            nan = -1.0
    cnt, s, nan = reduce3(sh, t, g, G, cnt, s, nan, 0)
    bad = nan < 0.0 or cnt == 0.0
    mean = s / cnt if not bad else 0.0
    for j in range(g, kk, G):
        # Read p and v before writing: out may be p or v itself.
        pj = float64(p3[o, j, i])
        vj = float64(v3[o, j, i])
        if bad:
            out3[o, j, i] = _NAN
        elif pj > 0.0:
            out3[o, j, i] = vj - mean
        else:
            out3[o, j, i] = 0.0


@cuda.jit
def k_loss_labels(z3, y, ignore, scale, loss, g3, want_grad, n_rows, inner, G):
    """Loss (and gradient) for class-index targets.

    ``L = 1/2 ||p - q||^2 + [z_y not in S] (tau - z_y)``: the cancellation-free form used by
    the CPU kernels (both terms non-negative, no ``0 * inf`` on masked entries).
    """
    sh = cuda.shared.array(SH_SHAPE, float64)
    loc = cuda.local.array(ITEMS, float64)
    t, g, r, valid, o, i = _setup(n_rows, inner, G)
    K = z3.shape[1]
    cached = K <= G * ITEMS
    label = int64(y[r]) if valid else int64(0)
    active = valid and label != ignore
    kk = K if active else 0
    # Read z_y before any thread of the group writes the gradient (it may be z itself).
    zy = float64(z3[o, label, i]) if active else 0.0
    m, tau, k, par = _row_tau(z3, o, i, kk, K, g, G, t, sh, loc, cached)
    acc = 0.0
    if cached:
        nv = _n_mine(kk, g, G)
        for c in range(ITEMS):
            j = g + c * G
            if c < nv:
                gj = _p_of(loc[c], m, tau, k) - (1.0 if j == label else 0.0)
                acc += gj * gj
                if want_grad:
                    g3[o, j, i] = gj * scale
    else:
        for j in range(g, kk, G):
            gj = _p_of(float64(z3[o, j, i]), m, tau, k) - (1.0 if j == label else 0.0)
            acc += gj * gj
            if want_grad:
                g3[o, j, i] = gj * scale
    acc, _, _ = reduce3(sh, t, g, G, acc, 0.0, 0.0, par)
    if valid and want_grad and not active:
        for j in range(g, K, G):
            g3[o, j, i] = 0.0
    if valid and g == 0:
        if not active:
            loss[r] = 0.0
        elif k == 0:
            loss[r] = _NAN
        else:
            val = 0.5 * acc
            dy = zy - m
            if not dy > tau:
                val += tau - dy
            loss[r] = val


@cuda.jit(device=True)
def _dist_term(x, qj, m, tau, k, acc, off):
    """Add one entry's ``(p - q)^2`` to ``acc`` and its ``q (tau - d)`` (off the support,
    ``q > 0`` only: no ``0 * inf``) to ``off``."""
    if k == 0:
        return _NAN, off
    d = x - m
    gj = max(d - tau, 0.0) - qj
    if qj != 0.0 and not d > tau:
        off += qj * (tau - d)
    return acc + gj * gj, off


@cuda.jit
def k_loss_dist(z3, q3, scale, loss, g3, want_grad, n_rows, inner, G):
    """Loss (and gradient) for one target distribution per row; see ``k_loss_labels``."""
    sh = cuda.shared.array(SH_SHAPE, float64)
    loc = cuda.local.array(ITEMS, float64)
    t, g, r, valid, o, i = _setup(n_rows, inner, G)
    K = z3.shape[1]
    cached = K <= G * ITEMS
    kk = K if valid else 0
    m, tau, k, par = _row_tau(z3, o, i, kk, K, g, G, t, sh, loc, cached)
    acc = 0.0
    off = 0.0
    if cached:
        nv = _n_mine(kk, g, G)
        for c in range(ITEMS):
            j = g + c * G
            if c < nv:
                qj = float64(q3[o, j, i])
                acc, off = _dist_term(loc[c], qj, m, tau, k, acc, off)
                if want_grad:
                    g3[o, j, i] = (_p_of(loc[c], m, tau, k) - qj) * scale
    else:
        for j in range(g, kk, G):
            x = float64(z3[o, j, i])
            qj = float64(q3[o, j, i])
            acc, off = _dist_term(x, qj, m, tau, k, acc, off)
            if want_grad:
                g3[o, j, i] = (_p_of(x, m, tau, k) - qj) * scale
    acc, off, _ = reduce3(sh, t, g, G, acc, off, 0.0, par)
    if valid and g == 0:
        loss[r] = _NAN if k == 0 else 0.5 * acc + off


@cuda.jit
def k_sum(x, div, res):
    """``res[0] = sum(x) / div`` in float64, one block (a loss reduction)."""
    sh = cuda.shared.array(SH_SHAPE, float64)
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    s = 0.0
    for j in range(t, x.shape[0], T):
        s += float64(x[j])
    s, _, _ = reduce3(sh, t, t, T, s, 0.0, 0.0, 0)
    if t == 0:
        res[0] = s / div


@cuda.jit
def k_check_labels(y, K, ignore, first, n_valid):
    """``first[0]``: the first flat index of a class index out of range (else unchanged);
    ``n_valid[0]``: the number of labels not equal to ``ignore``."""
    r = cuda.grid(1)
    if r < y.shape[0]:
        lab = int64(y[r])
        if lab != ignore:
            cuda.atomic.add(n_valid, 0, 1)
            if lab < 0 or lab >= K:
                cuda.atomic.min(first, 0, r)


@cuda.jit
def k_check_dist(q3, n_rows, inner, first, sums):
    """``first[0]``: first row with a negative entry; ``first[1]``: first row whose sum is off
    by more than ``1e-6 K``; ``sums[r]``: the float64 row sums."""
    r = cuda.grid(1)
    if r < n_rows:
        o = r // inner
        i = r % inner
        K = q3.shape[1]
        s = 0.0
        neg = False
        for j in range(K):
            x = float64(q3[o, j, i])
            s += x
            if x < 0.0:
                neg = True
        sums[r] = s
        if neg:
            cuda.atomic.min(first, 0, r)
        if not (abs(s - 1.0) <= 1e-6 * K):
            cuda.atomic.min(first, 1, r)


@cuda.jit
def k_check_01(y3, n_rows, inner, first_val, first_empty):
    """Labels: first flat row holding an entry other than 0/1 (``first_val``), first row
    with no label (``first_empty``)."""
    r = cuda.grid(1)
    if r < n_rows:
        o = r // inner
        i = r % inner
        K = y3.shape[1]
        s = 0.0
        for j in range(K):
            x = float64(y3[o, j, i])
            if not (x == 0.0 or x == 1.0):
                cuda.atomic.min(first_val, 0, r)
            s += x
        if s == 0.0:
            cuda.atomic.min(first_empty, 0, r)


@cuda.jit
def k_proportions(y3, q3, n_rows, inner):
    """``q = y / sum(y)`` per row (one thread per row; validated before)."""
    r = cuda.grid(1)
    if r < n_rows:
        o = r // inner
        i = r % inner
        K = y3.shape[1]
        s = 0.0
        for j in range(K):
            s += float64(y3[o, j, i])
        for j in range(K):
            q3[o, j, i] = float64(y3[o, j, i]) / s


# --------------------------------------------------------------------------- long rows
# Few long rows: one block per row would use a handful of the GPU's multiprocessors, so each
# row is cut into chunks of ``blockDim * ITEMS`` entries, one block per chunk. The grid is
# one-dimensional, ``n_rows * B`` blocks (block ``x`` is chunk ``x % B`` of row ``x // B``),
# so no grid dimension limit applies to the number of rows. Two kernels, no host round trip:
#
# 1. ``k_lr_gather``: each block reads its chunk once into registers and takes its maximum
#    ``mb``; one ``atomic.max`` on the order-preserving uint64 key of ``mb`` (see
#    ``cuda_warp.key_of``) returns the row's running maximum ``mrun`` (a lower bound of the
#    row maximum ``m``). The block appends its entries with ``x - mrun > -1`` to the row's
#    candidate buffer: a superset of the support, since ``tau >= m - 1`` and
#    ``x - mrun >= x - m``. Blocks that run late see nearly the final maximum, so a row of
#    N(0, 1) values leaves a few thousand candidates, not one chunk's worth per block. A
#    dense chunk (more than 1/8 of it within 1 of ``mrun``) also computes its own
#    threshold, a lower bound of the row's, and filters against the running maximum of
#    those bounds (a second key), so U(0, 1) rows keep about ``K * (1 - tau_chunk)``
#    entries (~3 % at 2048-entry chunks) instead of all of them. The counters are int32
#    (native atomics). The last block of a row to finish (a ticket
#    counter, after a ``threadfence``) solves ``tau`` for the row: on the candidates when
#    they fit the buffer, else (dense rows, e.g. U(0, 1), where most entries are within 1
#    of the maximum) by the same search over the whole row from global memory. Either way
#    nothing overflows and the result is exact.
# 2. ``k_lr_write`` (or ``k_lr_tau``): ``p`` per chunk, or ``tau`` and ``k`` per row.
#
# The host clears the counters and keys (a memset) before every call, so a call that was
# interrupted between the two kernels leaves nothing behind that the next one could read.
C_BAD, C_CNT, C_DONE = range(3)  # int32 counters per row
NCTR = 3
S_M, S_TAU, S_K = range(3)  # float64 result per row: maximum, shifted tau, support size
NSTATE = 3


@cuda.jit(device=True)
def _block_search(z3, o, i, cand, r, n, from_cand, m, K, t, T, sh, par):
    """``(tau_shifted, k)`` of row ``r`` by one whole block (block-uniform loop).

    The entries are ``cand[r, :n]`` when ``from_cand``, else the row ``z3[o, :, i]``.

    On the candidates, each thread owns a contiguous segment and compacts it in place as it
    reads: entries at or below the bracket's lower end ``lo`` (a lower bound of ``tau``,
    and below every later trial point) can never count again, so they are dropped. On a
    dense row Michelot's passes then read about twice the candidates in all, not once per
    pass (~10 passes for U(0, 1) rows).
    """
    lo = -1.0
    hi = -1.0 / K
    tt = lo
    tc_lo = lo
    c_lo = 0.0
    tau = _NAN
    k = 0.0
    it = 0
    done = False
    seg = (n + T - 1) // T
    first = t * seg
    mine = max(min(seg, n - first), 0)
    while not done:
        cs = 0.0
        ss = 0.0
        mm = _INF
        if from_cand:
            kept = 0
            for q in range(mine):
                x = cand[r, first + q]
                d = x - m
                if d > lo:
                    cand[r, first + kept] = x
                    kept += 1
                    if d > tt:
                        cs += 1.0
                        ss += d
                        mm = min(mm, d)
            mine = kept
        else:
            for q in range(t, K, T):
                d = float64(z3[o, q, i]) - m
                if d > tt:
                    cs += 1.0
                    ss += d
                    mm = min(mm, d)
        cs, ss, mm = reduce3(sh, t, t, T, cs, ss, mm, par)
        par = 1 - par
        lo, hi, tt, tc_lo, c_lo, tau, k, done, it = _step(
            cs, ss, mm, lo, hi, tt, tc_lo, c_lo, it
        )
    return tau, k


@cuda.jit(device=True)
def _loc_search(loc, mb, nb, t, T, sh):
    """The shifted threshold of one chunk held in ``loc`` by the whole block (``-inf``
    padding, ``nb`` real entries, maximum ``mb``)."""
    lo = -1.0
    hi = -1.0 / nb
    tt = lo
    tc_lo = lo
    c_lo = 0.0
    tau = _NAN
    k = 0.0
    it = 0
    done = False
    par = 1
    while not done:
        cs = 0.0
        ss = 0.0
        mm = _INF
        for c in range(ITEMS):
            d = loc[c] - mb
            if d > tt:
                cs += 1.0
                ss += d
                mm = min(mm, d)
        cs, ss, mm = reduce3(sh, t, t, T, cs, ss, mm, par)
        par = 1 - par
        lo, hi, tt, tc_lo, c_lo, tau, k, done, it = _step(
            cs, ss, mm, lo, hi, tt, tc_lo, c_lo, it
        )
    return tau


@cuda.jit
def k_lr_gather(z3, inner, B, keys, ctr, cand, state):
    """Chunk maxima, candidate compaction, and the row's search by its last block."""
    sh = cuda.shared.array(SH_SHAPE, float64)
    shi = cuda.shared.array(4, int32)
    shf = cuda.shared.array(1, float64)
    loc = cuda.local.array(ITEMS, float64)
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    bid = int64(cuda.blockIdx.x)
    r = bid // B
    b = bid - r * B
    o = r // inner
    i = r - o * inner
    K = z3.shape[1]
    cap = cand.shape[1]
    start = b * T * ITEMS
    stop = min(start + T * ITEMS, K)
    bad = 0.0
    negmax = _INF
    for c in range(ITEMS):  # constant trip count: loc stays in registers
        j = start + t + c * T
        x = float64(z3[o, j, i]) if j < stop else -_INF
        loc[c] = x
        if x != x:
            bad = 1.0
        elif -x < negmax:
            negmax = -x
    if t == 0:
        shi[0] = 0
        shi[3] = 0
    bad, _, negmax = reduce3(sh, t, t, T, bad, 0.0, negmax, 0)
    mb = -negmax
    if t == 0:
        if bad > 0.0 or mb == _INF:
            ctr[r, C_BAD] = 1  # NaN or +inf: the whole row is NaN
        old = cuda.atomic.max(keys, (r, 0), key_of(mb))
        # key 0 is "nothing seen yet" (the buffer is cleared before the call).
        shf[0] = max(mb, value_of(old)) if old != 0 else mb
    cuda.syncthreads()
    mrun = shf[0]
    ok = bad == 0.0 and mrun != _INF and mrun != -_INF
    mine = 0
    if ok:
        for q in range(ITEMS):  # padding is -inf: never a candidate
            if loc[q] - mrun > -1.0:
                mine += 1
    # Dense chunk (more than 1/8 of its entries within 1 of the maximum, e.g. U(0, 1)
    # rows): the filter ``x - mrun > -1`` keeps almost everything. The chunk's own
    # threshold is a lower bound of the row's (tau = max over sets A of
    # (sum_A z - 1) / |A|), so entries at or below it are never in the support; a running
    # maximum of these bounds (second key) tightens the filter to a few entries per chunk.
    cuda.atomic.add(shi, 3, mine)
    cuda.syncthreads()
    low = -_INF
    if ok and shi[3] > (T * ITEMS) // 8:  # block-uniform
        nb = min(stop - start, T * ITEMS)
        taub = _loc_search(loc, mb, nb, t, T, sh)
        if t == 0:
            # Rounding margin: the bound must stay below tau as the final search sees it.
            lb = (mb + taub) - 1e-9 * (abs(mb) + 1.0)
            old = cuda.atomic.max(keys, (r, 1), key_of(lb))
            shf[0] = max(lb, value_of(old)) if old != 0 else lb
        cuda.syncthreads()
        low = shf[0]
        mine = 0
        for q in range(ITEMS):
            if loc[q] - mrun > -1.0 and loc[q] > low:
                mine += 1
    off = cuda.atomic.add(shi, 0, mine)
    cuda.syncthreads()
    if t == 0:
        shi[1] = cuda.atomic.add(ctr, (r, C_CNT), shi[0])
    cuda.syncthreads()
    pos = int64(shi[1]) + off
    if mine > 0:
        for q in range(ITEMS):
            if loc[q] - mrun > -1.0 and loc[q] > low:
                if pos >= 0 and pos < cap:
                    cand[r, pos] = loc[q]
                pos += 1
    # Publish this block's candidates before it counts itself finished.
    cuda.threadfence()
    cuda.syncthreads()
    if t == 0:
        ticket = cuda.atomic.add(ctr, (r, C_DONE), 1)
        shi[2] = 1 if ticket == B - 1 else 0
    cuda.syncthreads()
    if shi[2] == 0:
        return  # block-uniform: not the row's last block
    # The row's last block: every other block's candidates and atomics are visible. The
    # counters are read through atomics (at L2), never from a possibly stale cache line.
    if t == 0:
        shi[3] = cuda.atomic.add(ctr, (r, C_CNT), 0)
        shi[0] = cuda.atomic.add(ctr, (r, C_BAD), 0)
        shf[0] = value_of(cuda.atomic.max(keys, (r, 0), 0))
    cuda.syncthreads()
    n = int64(shi[3])
    m = shf[0]
    tau = _NAN
    k = 0.0
    if shi[0] == 0 and m != _INF and m != -_INF:
        from_cand = n >= 0 and n <= cap
        tau, k = _block_search(z3, o, i, cand, r, n, from_cand, m, K, t, T, sh, 1)
    if t == 0:
        state[r, S_M] = m
        state[r, S_TAU] = tau
        state[r, S_K] = k


@cuda.jit
def k_lr_write(z3, p3, inner, B, state):
    """``p = max((z - m) - tau, 0)`` per chunk, NaN rows for bad input."""
    T = cuda.blockDim.x
    bid = int64(cuda.blockIdx.x)
    r = bid // B
    b = bid - r * B
    o = r // inner
    i = r - o * inner
    K = z3.shape[1]
    m = state[r, S_M]
    tau = state[r, S_TAU]
    bad = not (state[r, S_K] > 0.0)
    start = b * T * ITEMS
    stop = min(start + T * ITEMS, K)
    for j in range(start + cuda.threadIdx.x, stop, T):
        x = float64(z3[o, j, i])
        if bad:
            p3[o, j, i] = _NAN
        else:
            p3[o, j, i] = max((x - m) - tau, 0.0)


@cuda.jit
def k_lr_tau(state, tau_out, k_out):
    """``tau`` (unshifted) and ``k`` per row from the long-row state."""
    r = cuda.grid(1)
    if r < tau_out.shape[0]:
        if state[r, S_K] > 0.0:
            tau_out[r] = state[r, S_M] + state[r, S_TAU]
            k_out[r] = int(state[r, S_K])
        else:
            tau_out[r] = _NAN
            k_out[r] = 0
