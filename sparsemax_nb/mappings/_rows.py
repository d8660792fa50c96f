"""Row primitives every mapping shares: the row maximum with the non-finite rules, and
scalar casts to a row's dtype. Pure ``@njit`` code, no backend.

Every mapping shifts a row by its maximum ``m`` first (``d = z - m``, ``max d = 0``): the
mappings are invariant to the shift, and it keeps ``1e308``-sized rows exact (``d`` is
exact for entries within a factor two of ``m``, by Sterbenz's lemma, and the rest lie far
outside the support). A row holding a NaN or ``+inf``, or with no finite entry, cannot be
projected: :func:`row_max` gives NaN for it, and its outputs are NaN.
"""

import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload

from .._jit import JIT, JIT_SUMS  # noqa: F401  (re-exported for the mapping modules)


@intrinsic
def float_to_bits(typingctx, x):
    """Reinterpret a float32 (float64) as the int32 (int64) with the same bits."""
    if x == types.float32:
        ret = types.int32
    elif x == types.float64:
        ret = types.int64
    else:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(ret))

    return ret(x), codegen


@intrinsic
def bits_to_float(typingctx, x):
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


def max_bad(z):
    """``(max as float64, bad)``: ``bad`` if the entries hold a NaN or ``+inf``."""


@overload(max_bad, jit_options=JIT)  # type: ignore[arg-type]
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
            return np.float64(bits_to_float(bits(hi ^ ((hi >> bits(top)) & bits(imax))))), False

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


@njit(**JIT)
def row_max(z):
    """Row maximum as float64, or NaN when the row cannot be projected.

    NaN, ``+inf`` and an all ``-inf`` row give NaN (docs/contract.md).
    """
    m, bad = max_bad(z)
    if bad or m == -np.inf:
        return np.nan
    return m


def _float_image(bits, value):
    """The signed-integer image of a float used by _row_max (a compile-time constant)."""
    x = int(np.array(value, dtype=np.float32 if bits == np.int32 else np.float64).view(bits))
    return x ^ int(np.iinfo(bits).max) if x < 0 else x


def cast_like(x, like):
    """``x`` converted to the type of the scalar ``like`` (jitted code only)."""


@overload(cast_like, jit_options=JIT)  # type: ignore[arg-type]
def _cast_like_impl(x, like):
    target = like.dtype if isinstance(like, types.Array) else like
    return lambda x, like: target(x)



@njit(**JIT)
def no_small_rows(z, p, tau_out, k_out, lo, hi, buf, want_p, theta):
    """The short-row hook of a mapping that has no short-row path (never called)."""
    return None
