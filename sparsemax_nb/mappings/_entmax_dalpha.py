"""The derivative of alpha-entmax with respect to alpha, as an ``@njit`` row function.

With ``a = alpha - 1``, ``p_i = y_i^(1/a)`` and ``y_i = a z_i - tau`` on the support ``S``,
differentiating ``log p_i = log(y_i) / a`` and the constraint ``sum dp/dalpha = 0`` gives,
with ``s_i = p_i^(2 - alpha)`` and ``L_i = log p_i`` (``s_i y_i = p_i``, so ``z`` drops out),

    ``dp_i/dalpha = ((p_i - s_i / sum s) / a + s_i (sum p L) / sum s - p_i L_i) / a``

(Correia, Niculae & Martins, EMNLP 2019, derive the same gradient for adaptively sparse
attention). Written that way it divides by ``a^2`` a difference that is ``O(a^2)``: as
alpha -> 1 it loses about ``eps / a^2``. The row function uses an equivalent form with no
division by ``a``: with ``u_i = -a L_i >= 0``,

    ``s_i = p_i (1 + a f_i)``, ``f_i = expm1(u_i) / a``, and ``h_i = (f_i + L_i) / a
    = L_i^2 phi(u_i)``, ``phi(u) = (expm1(u) - u) / u^2``,

so that for a cotangent ``g`` (``V = sum g p``, ``A = sum p L``, ``B = sum g p L``,
``F = sum p f``, ``Fg = sum g p f``, ``H = sum p h``, ``Hg = sum g p h``)

    ``sum_i g_i dp_i/dalpha = (V H - Hg + Fg A - B F) / (1 + a F)``.

Every term is bounded as ``a -> 0`` (``f -> -L``, ``h -> L^2 / 2``), and ``phi`` is summed
as its series where ``expm1(u) - u`` would cancel. For alpha >= 2 the first form is
cancellation-free and is used, with ``s`` scaled by its largest value: ``p^(2 - alpha)``
overflows for tiny ``p`` when alpha > 2.
"""

import numpy as np
from numba import njit

from . import _fastmath as fm
from ._rows import JIT

# phi(u) = sum_{n >= 0} u^n / (n + 2)!, to 18 terms: below u = 1 the first dropped term is
# under 1e-17 of the sum. Coefficients highest first, for Horner.
_PHI_TERMS = 18
_PHI_C = np.array([1.0 / float(np.prod(np.arange(1, n + 3, dtype=np.float64)))
                   for n in range(_PHI_TERMS, -1, -1)])


@njit(**JIT)
def _phi_series(u):
    """``(expm1(u) - u) / u^2`` for ``0 <= u <= 1``, without cancellation."""
    acc = 0.0
    for c in _PHI_C:
        acc = acc * u + c
    return acc


@njit(**JIT)
def alpha_vjp(p, g, alpha):
    """``sum_i g_i dp_i/dalpha`` for one row ``p = entmax_bisect(z, alpha)``.

    A row of ``p`` holding NaN, or with no positive entry, gives NaN. The loops are
    branch-free (off-support entries are clamped to ``p = 1`` and weighted by ``p = 0``),
    with the vectorisable ``exp`` and ``log`` of :mod:`._fastmath`.
    """
    a = alpha - 1.0
    nan = False
    npos = 0
    for i in range(p.shape[0]):
        pi = np.float64(p[i])
        nan |= pi != pi
        npos += pi > 0.0
    if nan or npos == 0:
        return np.nan
    V = 0.0
    A = 0.0
    B = 0.0
    if a < 1.0:
        F = 0.0
        Fg = 0.0
        H = 0.0
        Hg = 0.0
        for i in range(p.shape[0]):
            p0 = np.float64(p[i])
            on = p0 > 0.0
            pi = p0 if on else 0.0
            L = fm.log(p0 if on else 1.0)
            gi = np.float64(g[i]) if on else 0.0
            u = -a * L
            # s = p^(2 - alpha) = p e^u, finite for every p (its exponent is negative).
            s = fm.exp((1.0 - a) * L)
            small = u < 1.0
            phi = _phi_series(u if small else 1.0)
            # u < 1: the series, no cancellation; u >= 1: p (e^u - 1) = s - p and
            # p (e^u - 1 - u) = s - p (1 + u), with s >= e p (at most two bits lost, and
            # no overflow of e^u where p is subnormal).
            pf = pi * u * (1.0 + u * phi) / a if small else (s - pi) / a
            ph = pi * L * L * phi if small else (s - pi * (1.0 + u)) / (a * a)
            V += gi * pi
            A += pi * L
            B += gi * pi * L
            F += pf
            Fg += gi * pf
            H += ph
            Hg += gi * ph
        return (V * H - Hg + Fg * A - B * F) / (1.0 + a * F)
    # alpha >= 2: s scaled by max s = p_min^(2 - alpha) (for alpha == 2, s = 1 throughout).
    lmin = np.inf
    for i in range(p.shape[0]):
        p0 = np.float64(p[i])
        lmin = min(lmin, fm.log(p0) if p0 > 0.0 else np.inf)
    S = 0.0
    Sg = 0.0
    for i in range(p.shape[0]):
        p0 = np.float64(p[i])
        on = p0 > 0.0
        pi = p0 if on else 0.0
        L = fm.log(p0 if on else 1.0)
        gi = np.float64(g[i]) if on else 0.0
        w = fm.exp((1.0 - a) * (L - lmin)) if on else 0.0
        V += gi * pi
        A += pi * L
        B += gi * pi * L
        S += w
        Sg += gi * w
    return ((V - Sg / S) / a + Sg * A / S - B) / a
