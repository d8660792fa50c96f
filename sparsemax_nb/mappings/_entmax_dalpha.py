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

import math

import numpy as np
from numba import njit

from ._rows import JIT

# phi(u) = sum_{n >= 0} u^n / (n + 2)!, to 18 terms: below u = 1 the first dropped term is
# under 1e-17 of the sum. Written out (no loop), so that the row loops calling it vectorise.
_P0 = 1.0 / 2.0
_P1 = 1.0 / 6.0
_P2 = 1.0 / 24.0
_P3 = 1.0 / 120.0
_P4 = 1.0 / 720.0
_P5 = 1.0 / 5040.0
_P6 = 1.0 / 40320.0
_P7 = 1.0 / 362880.0
_P8 = 1.0 / 3628800.0
_P9 = 1.0 / 39916800.0
_P10 = 1.0 / 479001600.0
_P11 = 1.0 / 6227020800.0
_P12 = 1.0 / 87178291200.0
_P13 = 1.0 / 1307674368000.0
_P14 = 1.0 / 20922789888000.0
_P15 = 1.0 / 355687428096000.0
_P16 = 1.0 / 6402373705728000.0
_P17 = 1.0 / 121645100408832000.0
_P18 = 1.0 / 2432902008176640000.0


@njit(**JIT)
def _phi_series(u):
    """``(expm1(u) - u) / u^2`` for ``0 <= u <= 1``, without cancellation (Horner)."""
    return (_P0 + u * (_P1 + u * (_P2 + u * (_P3 + u * (_P4 + u * (_P5 + u * (_P6
            + u * (_P7 + u * (_P8 + u * (_P9 + u * (_P10 + u * (_P11 + u * (_P12
            + u * (_P13 + u * (_P14 + u * (_P15 + u * (_P16 + u * (_P17
            + u * (_P18)))))))))))))))))))


@njit(**JIT)
def _phi(u):
    """``(expm1(u) - u) / u^2`` for ``u >= 0`` (the series below 1)."""
    if u < 1.0:
        return _phi_series(u)
    return (math.expm1(u) - u) / (u * u)


@njit(**JIT)
def alpha_vjp(p, g, alpha):
    """``sum_i g_i dp_i/dalpha`` for one row ``p = entmax_bisect(z, alpha)``.

    A row of ``p`` holding NaN, or with no positive entry, gives NaN.
    """
    a = alpha - 1.0
    nan = False
    npos = 0
    lmin = np.inf
    for i in range(p.shape[0]):
        pi = np.float64(p[i])
        nan |= pi != pi
        if pi > 0.0:
            npos += 1
            lmin = min(lmin, math.log(pi))
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
            pi = np.float64(p[i])
            if not pi > 0.0:
                continue
            gi = np.float64(g[i])
            L = math.log(pi)
            u = -a * L
            if u < 700.0:
                pf = pi * math.expm1(u) / a
                ph = pi * L * L * _phi(u)
            else:
                # p is subnormal and alpha near 2: p e^u = p^(2 - alpha) stays finite
                # where e^u alone would overflow (no cancellation at this u).
                s = math.exp((1.0 - a) * L)
                pf = (s - pi) / a
                ph = (s - pi * (1.0 + u)) / (a * a)
            V += gi * pi
            A += pi * L
            B += gi * pi * L
            F += pf
            Fg += gi * pf
            H += ph
            Hg += gi * ph
        return (V * H - Hg + Fg * A - B * F) / (1.0 + a * F)
    # alpha >= 2: s scaled by max s = p_min^(2 - alpha) (for alpha == 2, s = 1 throughout).
    S = 0.0
    Sg = 0.0
    for i in range(p.shape[0]):
        pi = np.float64(p[i])
        if not pi > 0.0:
            continue
        gi = np.float64(g[i])
        L = math.log(pi)
        w = math.exp((1.0 - a) * (L - lmin))
        V += gi * pi
        A += pi * L
        B += gi * pi * L
        S += w
        Sg += gi * w
    return ((V - Sg / S) / a + Sg * A / S - B) / a
