"""``exp`` and ``log1p`` in float64 that LLVM can vectorise (no libm call), for the entmax rows.

Numba lowers ``math.exp`` and ``math.log1p`` to scalar libm calls, so a loop that takes a
power per entry (alpha-entmax's ``p = y^r = exp(r log1p(w))``) runs one entry at a time.
These are straight-line float64 code (range reduction, a polynomial, an exponent put in or
taken out through the bits of the float), which LLVM inlines into the loop and runs four
entries to an AVX2 vector (compiled with fused multiply-adds allowed, no reassociation).
They stay within one ulp of ``math``'s results over the ranges the mappings use
(tests/test_entmax_bisect_speedpaths.py checks them there and at the edges).

* :func:`exp`: ``x = k ln2 + s`` with ``|s| <= ln2 / 2`` (``ln2`` in two parts, so ``s``
  is exact), ``exp(s)`` by its Taylor polynomial to degree 13 (truncation below
  ``2^-57``; Estrin's scheme), times ``2^k`` as two powers of two ``2^k1 2^k2`` (so that
  ``2^k`` itself need not be a normal float): the result rounds once more only when it
  is subnormal. Overflow gives ``inf``, ``x <= -746`` gives 0, ``-inf`` gives 0.
* :func:`log` and :func:`log1p`: ``u = 2^e (1 + g)`` with ``1 + g`` in
  ``[sqrt(1/2), sqrt(2))`` (``e`` and ``g`` from the bits of ``u``; a subnormal ``u``, the
  log of a subnormal ``p``, is scaled up first) and ``log(1 + g) = g - g^2/2 + s (g^2/2 +
  R(s^2))`` with ``s = g / (2 + g)`` and ``R`` the series of ``2 atanh(s) / s - 2``
  (``|s| < 0.172``: nine terms reach ``2^-60`` relative). For ``log1p``, ``u = 1 + w``
  rounded; where the digits of ``w`` below ``u``'s ulp matter (``e = 0, -1``), ``g`` is
  taken from ``w`` exactly (``w``, ``1 + 2 w``), so tiny ``w`` (alpha -> 1) keep their
  relative accuracy. ``log(0) = log1p(-1) = -inf``. (For ``w > sqrt(2) - 1``, unused by
  the mappings, ``log1p`` is within two ulps.)

Neither handles NaN (the mappings never pass one: a row with a NaN is a NaN row before
any power is taken), and the argument is clamped with selects rather than branches, so
the loops that call them stay branch-free.
"""

import numpy as np
from numba import njit

from ._rows import JIT, bits_to_float, float_to_bits

# Contraction to fused multiply-adds only (no reassociation: the range reductions below
# depend on the order of their operations).
FMA = dict(JIT, fastmath={"contract"})


# The bit casts, float64 <-> int64 here.
_as_int = float_to_bits
_as_float = bits_to_float


# Adding ROUND (1.5 * 2^52) to a float of magnitude below 2^51 rounds it to an integer,
# which then sits in the low bits of the sum: the sum's bits minus ROUND's are that integer.
ROUND = 6755399441055744.0
ROUND_BITS = 0x4338000000000000
INV_LN2 = 1.4426950408889634
# ln2 = LN2_HI + LN2_LO, LN2_HI with its low 32 bits zero: k * LN2_HI is exact for |k| < 2^20.
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
EXP_MIN = -746.0  # exp(-746) < 2^-1075 / 2 rounds to 0
EXP_MAX = 710.0  # exp(710) overflows
# 1 / n!, n = 2..13
E2 = 1.0 / 2.0
E3 = 1.0 / 6.0
E4 = 1.0 / 24.0
E5 = 1.0 / 120.0
E6 = 1.0 / 720.0
E7 = 1.0 / 5040.0
E8 = 1.0 / 40320.0
E9 = 1.0 / 362880.0
E10 = 1.0 / 3628800.0
E11 = 1.0 / 39916800.0
E12 = 1.0 / 479001600.0
E13 = 1.0 / 6227020800.0


@njit(**FMA)
def exp(x):
    """``e^x`` for float64 ``x`` (not NaN), about one ulp; vectorisable (module notes)."""
    x = x if x > EXP_MIN else EXP_MIN
    x = x if x < EXP_MAX else EXP_MAX
    t = x * INV_LN2 + ROUND
    kd = t - ROUND
    s = (x - kd * LN2_HI) - kd * LN2_LO
    # Estrin's scheme: the polynomial's latency, not its operation count, bounds the
    # vectorised loops (the terms fall fast, so the grouping costs no accuracy)
    s2 = s * s
    s4 = s2 * s2
    q = ((E2 + E3 * s) + (E4 + E5 * s) * s2) + ((E6 + E7 * s) + (E8 + E9 * s) * s2) * s4
    q = q + ((E10 + E11 * s) + (E12 + E13 * s) * s2) * (s4 * s4)
    # e^s = 1 + s + s^2 q: the 1 added last keeps the small terms' digits
    es = 1.0 + (s + s2 * q)
    k = _as_int(t) - ROUND_BITS
    # k = k1 + k2 with both halves in the normal exponent range for |k| <= 1100
    k1 = _as_int(kd * 0.5 + ROUND) - ROUND_BITS
    k2 = k - k1
    return es * _as_float((k1 + 1023) << 52) * _as_float((k2 + 1023) << 52)


SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # the bits of sqrt(1/2)
# Adding SHIFT to the bits of u > 0 puts 1023 + (the exponent of u / sqrt(1/2)) in the
# exponent field: the mantissa put back under sqrt(1/2)'s bits lands in [sqrt(1/2), sqrt(2)).
SHIFT = 0x3FF0000000000000 - SQRT_HALF_BITS
MANT = 0x000FFFFFFFFFFFFF
TINY = 2.2250738585072014e-308  # smallest normal float64
TWO54 = 18014398509481984.0
# 2 / (2n + 1), n = 1..9: R(z) = sum L_n z^n, z = s^2
L1 = 2.0 / 3.0
L2 = 2.0 / 5.0
L3 = 2.0 / 7.0
L4 = 2.0 / 9.0
L5 = 2.0 / 11.0
L6 = 2.0 / 13.0
L7 = 2.0 / 15.0
L8 = 2.0 / 17.0
L9 = 2.0 / 19.0


@njit(**FMA)
def _log(u, w, plus1):
    """``log(u)`` for ``u >= 0`` (``-inf`` at 0); with ``plus1``, ``log(1 + w)`` where
    ``u`` is ``1 + w`` rounded."""
    sub = u < TINY
    uu = u * TWO54 if sub else u
    b = _as_int(uu) + SHIFT
    # the exponent field (b >= 0 for u > 0: the mask lets LLVM shift without the sign)
    ef = (b >> 52) & 0x7FF
    # ef as a float through ROUND's bits (exact; AVX2 has no int64 -> float64 convert)
    ed = (_as_float(ef + ROUND_BITS) - ROUND) - (1023.0 + (54.0 if sub else 0.0))
    g = _as_float((b & MANT) + SQRT_HALF_BITS) - 1.0  # exact (Sterbenz)
    # u = 2^ed (1 + g). For log1p, 1 + g is u scaled, which lost the digits of w below
    # u's ulp; where they can matter (ed = 0, -1: u in [sqrt(1/2) / 2, sqrt(2))) g is
    # taken from w itself, exactly: w, and 1 + 2 w (Sterbenz: 2 w in (-1.3, -0.58)).
    # Elsewhere 1 + w is exact (w <= -1/2) or those digits are below log u's rounding.
    if plus1:
        g = w if ed == 0.0 else g
        g = 1.0 + 2.0 * w if ed == -1.0 else g
    s = g / (2.0 + g)
    z = s * s
    z2 = z * z
    z4 = z2 * z2
    R = ((L1 + L2 * z) + (L3 + L4 * z) * z2) + ((L5 + L6 * z) + (L7 + L8 * z) * z2) * z4
    R = (R + L9 * (z4 * z4)) * z
    hg2 = 0.5 * g * g
    lg = ed * LN2_HI + (g - (hg2 - (s * (hg2 + R) + ed * LN2_LO)))
    return lg if u > 0.0 else -np.inf


@njit(**FMA)
def log(x):
    """``log(x)`` for float64 ``x >= 0`` (not NaN), about one ulp; vectorisable."""
    return _log(x, 0.0, False)


@njit(**FMA)
def log1p(w):
    """``log(1 + w)`` for float64 ``w >= -1`` (not NaN), about one ulp; vectorisable."""
    return _log(1.0 + w, w, True)
