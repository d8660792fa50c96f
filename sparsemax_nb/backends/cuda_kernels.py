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
(L1/L2) on each pass. Group reductions are segmented tree reductions in shared memory;
every thread of the block runs every ``syncthreads`` (rows of a block that finish early run
empty passes until the whole block is done: ``syncthreads_and``).

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
"""

import math

from numba import cuda, float64, int64

ITEMS = 8  # entries of a row kept in registers per thread
MAX_TPB = 256  # largest block size (sizes the shared scratch)
MICHELOT_PASSES = 12  # plain Michelot passes before bisection steps are interleaved
MAX_PASSES = 400  # hard stop; never reached (the bracket collapses first)

_INF = math.inf
_NAN = math.nan


# --------------------------------------------------------------------------- device helpers
@cuda.jit(device=True)
def _reduce3(sh, t, g, G, a, b, c):
    """Segmented reduction over the group of ``G`` threads: (sum a, sum b, min c).

    All threads of the block must call it (it holds ``syncthreads``).
    """
    cuda.syncthreads()
    sh[0, t] = a
    sh[1, t] = b
    sh[2, t] = c
    cuda.syncthreads()
    h = G // 2
    while h > 0:
        if g < h:
            sh[0, t] += sh[0, t + h]
            sh[1, t] += sh[1, t + h]
            sh[2, t] = min(sh[2, t], sh[2, t + h])
        cuda.syncthreads()
        h //= 2
    base = t - g
    return sh[0, base], sh[1, base], sh[2, base]


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
    if ss - cs * tt - 1.0 >= 0.0:
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
def _row_tau(z3, o, i, kk, K, g, G, t, sh, loc, cached):
    """``(m, tau_shifted, k)`` of the group's row; ``k == 0`` marks a NaN (or absent) row.

    ``kk`` is ``K`` for an active row and 0 for a row the group skips (past the end, or an
    ignored label); such a group still runs every reduction. With ``cached`` the row is
    left in ``loc`` (entry ``j = g + c G`` in ``loc[c]``, ``-inf`` past the row's end).
    """
    # Pass 1: maximum (as the min of -x, so one reduction routine serves) and bad flags.
    bad = 0.0
    negmax = _INF
    if cached:
        # A loop of constant trip count with constant indices once unrolled: ``loc`` can
        # live in registers.
        for c in range(ITEMS):
            j = g + c * G
            x = float64(z3[o, j, i]) if j < kk else -_INF
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
    nbad, _, negmax = _reduce3(sh, t, g, G, bad, 0.0, negmax)
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
        cs, ss, mm = _reduce3(sh, t, g, G, cs, ss, mm)
        if not done:
            lo, hi, tt, tc_lo, c_lo, tau, k, done, it = _step(
                cs, ss, mm, lo, hi, tt, tc_lo, c_lo, it
            )
        if cuda.syncthreads_and(1 if done else 0):
            break
    if not (k > 0.0):
        return m, _NAN, 0
    return m, tau, int(k)


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


# --------------------------------------------------------------------------- kernels
@cuda.jit
def k_forward(z3, p3, n_rows, inner, G):
    """``p = max(z - tau, 0)`` per row (NaN rows for bad input)."""
    sh = cuda.shared.array((3, MAX_TPB), float64)
    loc = cuda.local.array(ITEMS, float64)
    t, g, r, valid, o, i = _setup(n_rows, inner, G)
    K = z3.shape[1]
    cached = K <= G * ITEMS
    kk = K if valid else 0
    m, tau, k = _row_tau(z3, o, i, kk, K, g, G, t, sh, loc, cached)
    if cached:
        for c in range(ITEMS):
            j = g + c * G
            if j < kk:
                p3[o, j, i] = _p_of(loc[c], m, tau, k)
    else:
        for j in range(g, kk, G):
            p3[o, j, i] = _p_of(float64(z3[o, j, i]), m, tau, k)


@cuda.jit
def k_threshold(z3, tau_out, k_out, n_rows, inner, G):
    """``tau`` (unshifted) and the support size per row."""
    sh = cuda.shared.array((3, MAX_TPB), float64)
    loc = cuda.local.array(ITEMS, float64)
    t, g, r, valid, o, i = _setup(n_rows, inner, G)
    K = z3.shape[1]
    cached = K <= G * ITEMS
    kk = K if valid else 0
    m, tau, k = _row_tau(z3, o, i, kk, K, g, G, t, sh, loc, cached)
    if valid and g == 0:
        tau_out[r] = m + tau if k > 0 else _NAN
        k_out[r] = k


@cuda.jit
def k_jvp(p3, v3, out3, n_rows, inner, G):
    """``J(p) v = s * (v - mean_S v)``; a row of ``p`` with a NaN or no support gives NaN."""
    sh = cuda.shared.array((3, MAX_TPB), float64)
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
    cnt, s, nan = _reduce3(sh, t, g, G, cnt, s, nan)
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
    sh = cuda.shared.array((3, MAX_TPB), float64)
    loc = cuda.local.array(ITEMS, float64)
    t, g, r, valid, o, i = _setup(n_rows, inner, G)
    K = z3.shape[1]
    cached = K <= G * ITEMS
    label = int64(y[r]) if valid else int64(0)
    active = valid and label != ignore
    kk = K if active else 0
    # Read z_y before any thread of the group writes the gradient (it may be z itself).
    zy = float64(z3[o, label, i]) if active else 0.0
    m, tau, k = _row_tau(z3, o, i, kk, K, g, G, t, sh, loc, cached)
    acc = 0.0
    if cached:
        for c in range(ITEMS):
            j = g + c * G
            if j < kk:
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
    acc, _, _ = _reduce3(sh, t, g, G, acc, 0.0, 0.0)
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
    sh = cuda.shared.array((3, MAX_TPB), float64)
    loc = cuda.local.array(ITEMS, float64)
    t, g, r, valid, o, i = _setup(n_rows, inner, G)
    K = z3.shape[1]
    cached = K <= G * ITEMS
    kk = K if valid else 0
    m, tau, k = _row_tau(z3, o, i, kk, K, g, G, t, sh, loc, cached)
    acc = 0.0
    off = 0.0
    if cached:
        for c in range(ITEMS):
            j = g + c * G
            if j < kk:
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
    acc, off, _ = _reduce3(sh, t, g, G, acc, off, 0.0)
    if valid and g == 0:
        loss[r] = _NAN if k == 0 else 0.5 * acc + off


@cuda.jit
def k_sum(x, div, res):
    """``res[0] = sum(x) / div`` in float64, one block (a loss reduction)."""
    sh = cuda.shared.array((3, MAX_TPB), float64)
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    s = 0.0
    for j in range(t, x.shape[0], T):
        s += float64(x[j])
    s, _, _ = _reduce3(sh, t, t, T, s, 0.0, 0.0)
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
# row is cut into chunks of ``blockDim * ITEMS`` entries, one block per chunk (a 2-D grid:
# x = chunk, y = row). Blocks of a row cooperate through device memory across a fixed
# sequence of launches (no host round trip, no grid-wide barrier):
#
# 1. ``k_mb_gather``: read the row once; per chunk, the chunk maximum ``mb`` and the
#    candidates ``z > mb - 1`` (a superset of the row's candidates ``z > m - 1``, since
#    ``mb <= m``) are appended to a per-row buffer (one global atomic per block).
# 2. ``k_mb_solve``: one block per row merges the chunk maxima and, when the buffer did not
#    overflow, runs the whole threshold search on the (usually tiny) buffer.
# 3. Only for rows whose buffer overflowed (more than ``cap`` candidates): ``passes`` x
#    (``k_mb_pass`` over the row + ``k_mb_update``), then ``k_mb_finish`` (one block per row)
#    completes the search. Blocks of finished rows return at once.
# 4. ``k_mb_write`` (or ``k_mb_tau``) writes the result.
#
# Per-row state (float64): see the S_* indices.
S_M, S_LO, S_HI, S_TT, S_TCLO, S_CLO, S_TAU, S_K, S_DONE, S_IT, S_FULL = range(11)
NSTATE = 11


@cuda.jit
def k_mb_gather(z3, inner, part, cand, cnt, cap):
    """Chunk maxima (``part[r, b] = (bad, -max)``) and candidate compaction into ``cand``."""
    sh = cuda.shared.array((3, MAX_TPB), float64)
    shc = cuda.shared.array(2, int64)
    loc = cuda.local.array(ITEMS, float64)
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    b = cuda.blockIdx.x
    r = cuda.blockIdx.y
    o = r // inner
    i = r % inner
    K = z3.shape[1]
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
        shc[0] = 0
    bad, _, negmax = _reduce3(sh, t, t, T, bad, 0.0, negmax)
    mb = -negmax
    if t == 0:
        part[r, b, 0] = bad
        part[r, b, 1] = negmax
    # Candidates of this chunk: x - mb > -1 (a NaN / inf chunk makes the whole row NaN).
    mine = 0
    if bad == 0.0 and mb != _INF and mb != -_INF:
        for q in range(ITEMS):  # padding is -inf: never a candidate
            if loc[q] - mb > -1.0:
                mine += 1
    off = cuda.atomic.add(shc, 0, mine)
    cuda.syncthreads()
    if t == 0:
        shc[1] = cuda.atomic.add(cnt, r, shc[0])
    cuda.syncthreads()
    pos = shc[1] + off
    if mine > 0:
        for q in range(ITEMS):
            if loc[q] - mb > -1.0:
                if pos < cap:
                    cand[r, pos] = loc[q]
                pos += 1


@cuda.jit
def k_mb_solve(part, cand, cnt, cap, K, state):
    """Merge the chunk maxima; search ``tau`` on the candidate buffer when it is complete."""
    sh = cuda.shared.array((3, MAX_TPB), float64)
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    r = cuda.blockIdx.x
    B = part.shape[1]
    bad = 0.0
    negmax = _INF
    for b in range(t, B, T):
        bad += part[r, b, 0]
        negmax = min(negmax, part[r, b, 1])
    bad, _, negmax = _reduce3(sh, t, t, T, bad, 0.0, negmax)
    m = -negmax
    done = bad > 0.0 or m == _INF or m == -_INF
    n = cnt[r]
    full = n > cap
    lo = -1.0
    hi = -1.0 / K
    tt = lo
    tc_lo = lo
    c_lo = 0.0
    tau = _NAN
    k = 0.0
    it = 0
    if not full:
        # Every thread runs the same number of passes (the state is block-uniform).
        while not done:
            cs = 0.0
            ss = 0.0
            mm = _INF
            for q in range(t, n, T):
                d = cand[r, q] - m
                if d > tt:
                    cs += 1.0
                    ss += d
                    mm = min(mm, d)
            cs, ss, mm = _reduce3(sh, t, t, T, cs, ss, mm)
            lo, hi, tt, tc_lo, c_lo, tau, k, done, it = _step(
                cs, ss, mm, lo, hi, tt, tc_lo, c_lo, it
            )
    cuda.syncthreads()  # every thread has read cnt[r]
    if t == 0:
        cnt[r] = 0  # ready for the next call that reuses this scratch
        state[r, S_M] = m
        state[r, S_LO] = lo
        state[r, S_HI] = hi
        state[r, S_TT] = tt
        state[r, S_TCLO] = tc_lo
        state[r, S_CLO] = c_lo
        state[r, S_TAU] = tau
        state[r, S_K] = k
        state[r, S_DONE] = 1.0 if done else 0.0
        state[r, S_IT] = it
        state[r, S_FULL] = 1.0 if full else 0.0


@cuda.jit
def k_mb_pass(z3, inner, state, part):
    """Count, sum and minimum of the shifted entries above the trial point, per chunk."""
    sh = cuda.shared.array((3, MAX_TPB), float64)
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    b = cuda.blockIdx.x
    r = cuda.blockIdx.y
    if state[r, S_DONE] != 0.0:
        return  # block-uniform: the whole block leaves
    o = r // inner
    i = r % inner
    K = z3.shape[1]
    m = state[r, S_M]
    tt = state[r, S_TT]
    start = b * T * ITEMS
    stop = min(start + T * ITEMS, K)
    cs = 0.0
    ss = 0.0
    mm = _INF
    for j in range(start + t, stop, T):
        d = float64(z3[o, j, i]) - m
        if d > tt:
            cs += 1.0
            ss += d
            mm = min(mm, d)
    cs, ss, mm = _reduce3(sh, t, t, T, cs, ss, mm)
    if t == 0:
        part[r, b, 0] = cs
        part[r, b, 1] = ss
        part[r, b, 2] = mm


@cuda.jit
def k_mb_update(state, part):
    """Merge a pass's chunk results and take one search step (one block per row)."""
    sh = cuda.shared.array((3, MAX_TPB), float64)
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    r = cuda.blockIdx.x
    if state[r, S_DONE] != 0.0:
        return
    B = part.shape[1]
    cs = 0.0
    ss = 0.0
    mm = _INF
    for b in range(t, B, T):
        cs += part[r, b, 0]
        ss += part[r, b, 1]
        mm = min(mm, part[r, b, 2])
    cs, ss, mm = _reduce3(sh, t, t, T, cs, ss, mm)
    if t == 0:
        lo, hi, tt, tc_lo, c_lo, tau, k, done, it = _step(
            cs, ss, mm, state[r, S_LO], state[r, S_HI], state[r, S_TT], state[r, S_TCLO],
            state[r, S_CLO], int(state[r, S_IT]),
        )
        state[r, S_LO] = lo
        state[r, S_HI] = hi
        state[r, S_TT] = tt
        state[r, S_TCLO] = tc_lo
        state[r, S_CLO] = c_lo
        state[r, S_TAU] = tau
        state[r, S_K] = k
        state[r, S_IT] = it
        state[r, S_DONE] = 1.0 if done else 0.0


@cuda.jit
def k_mb_finish(z3, inner, state):
    """Finish the search of rows still open after the multi-block passes (one block per row).

    Only adversarial rows (many candidates and a slow fixed point) get here.
    """
    sh = cuda.shared.array((3, MAX_TPB), float64)
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    r = cuda.blockIdx.x
    if state[r, S_DONE] != 0.0:
        return
    o = r // inner
    i = r % inner
    K = z3.shape[1]
    m = state[r, S_M]
    lo = state[r, S_LO]
    hi = state[r, S_HI]
    tt = state[r, S_TT]
    tc_lo = state[r, S_TCLO]
    c_lo = state[r, S_CLO]
    it = int(state[r, S_IT])
    tau = _NAN
    k = 0.0
    done = False
    while not done:
        cs = 0.0
        ss = 0.0
        mm = _INF
        for j in range(t, K, T):
            d = float64(z3[o, j, i]) - m
            if d > tt:
                cs += 1.0
                ss += d
                mm = min(mm, d)
        cs, ss, mm = _reduce3(sh, t, t, T, cs, ss, mm)
        lo, hi, tt, tc_lo, c_lo, tau, k, done, it = _step(
            cs, ss, mm, lo, hi, tt, tc_lo, c_lo, it
        )
    if t == 0:
        state[r, S_TAU] = tau
        state[r, S_K] = k
        state[r, S_DONE] = 1.0


@cuda.jit
def k_mb_write(z3, p3, inner, state):
    """``p = max((z - m) - tau, 0)`` per chunk, NaN rows for bad input."""
    b = cuda.blockIdx.x
    r = cuda.blockIdx.y
    T = cuda.blockDim.x
    o = r // inner
    i = r % inner
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
def k_mb_tau(state, tau_out, k_out):
    r = cuda.grid(1)
    if r < state.shape[0]:
        if state[r, S_K] > 0.0:
            tau_out[r] = state[r, S_M] + state[r, S_TAU]
            k_out[r] = int(state[r, S_K])
        else:
            tau_out[r] = _NAN
            k_out[r] = 0
