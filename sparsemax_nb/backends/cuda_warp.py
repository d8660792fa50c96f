"""Device helpers with two implementations: warp intrinsics on a GPU, plain code under the
simulator.

Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) has no warp shuffles or warp votes, and
its ``libdevice`` functions are stubs. The kernels of :mod:`sparsemax_nb.backends.cuda_kernels` call only the
helpers below for those operations, so the same kernel source runs (and is tested) under the
simulator and compiles to shuffles on a GPU. The choice is made once, at import, from
``numba.config.ENABLE_CUDASIM`` (which Numba reads from the environment at its own import).

Group reductions
----------------
``reduce3(sh, t, g, G, a, b, c, par)`` returns ``(sum a, sum b, min c)`` over the group of
``G`` threads (``G`` a power of two) holding thread ``t`` (``g = t % G``), to every thread of
the group.

* GPU: a butterfly of ``shfl_xor_sync`` inside each warp (``log2(min(G, 32))`` steps, no
  barrier); for ``G > 32`` lane 0 of each warp stores its partials in shared memory, one
  ``syncthreads``, and every thread adds its group's ``G / 32`` partials in warp order. The
  shared buffer is double-buffered on ``par`` (callers alternate it), so one barrier per
  reduction is enough: a thread can only write buffer ``par`` again after the barrier of the
  reduction in between, which every reader of the previous use has passed.
* Simulator: the segmented tree reduction in shared memory (``log2(G)`` barriers).

Both give every thread of a group the same bits: IEEE addition and ``min`` are commutative,
and the butterfly combines the same pair in the same order on both lanes. Decisions taken on
the results are therefore uniform over the group.

``reduce3_sum(sh, t, g, G, a, b, c, par)`` is the same with ``sum c`` in place of ``min c``
(the entmax search sums three values per pass), on the same scratch and the same rules.

``group_all(flag, G)`` is the loop-exit vote: a warp vote for ``G <= 32`` (each warp then
loops on its own, no block barrier at all) and ``syncthreads_and`` otherwise (and always
under the simulator, where the reductions use block barriers and every thread of the block
must run the same number of them). A group that is the whole block needs no vote: its flag
is already uniform.

Scalar helpers
--------------
``mul_rn(a, b)``: a float64 product rounded on its own. The CUDA toolchain contracts
``a - b * c`` into a fused multiply-add by default (ptxas fuses a plain ``mul.f64`` with the
following add), which rounds once instead of twice and can flip the sign of ``s - c t - 1``
on near ties; the CPU kernels round the product. ``__nv_dmul_rn`` becomes ``mul.rn.f64``,
which is never contracted.

``next_up(x)`` / ``next_down(x)``: the neighbouring float64 towards ``+inf`` / ``-inf``
(``nextafter``; libdevice on a GPU).

``key_of(x)`` / ``value_of(u)``: the order-preserving map of a float64 to a uint64 (and
back): ``u(x) < u(y)`` iff ``x < y`` for non-NaN values, and ``u = 0`` lies below every
non-NaN value (it is the image of a negative NaN with all mantissa bits set). So a buffer
cleared to zero bytes is a valid "nothing seen yet" for ``atomic.max`` on keys.
"""

import math

import numpy as np
from numba import config, cuda, int64, uint32, uint64

SIM = bool(getattr(config, "ENABLE_CUDASIM", 0))
WARP = 32
MAX_TPB = 256  # largest block size

_TOP = 0x8000000000000000
_ALL = 0xFFFFFFFFFFFFFFFF

if SIM:
    # Shape of the shared scratch a kernel passes as ``sh``: (buffer, value, thread).
    SH_SHAPE = (2, 3, MAX_TPB)

    @cuda.jit(device=True)
    def reduce3(sh, t, g, G, a, b, c, par):
        """Group reduction (sum a, sum b, min c): shared-memory tree (simulator)."""
        cuda.syncthreads()
        sh[par, 0, t] = a
        sh[par, 1, t] = b
        sh[par, 2, t] = c
        cuda.syncthreads()
        h = G // 2
        while h > 0:
            if g < h:
                sh[par, 0, t] += sh[par, 0, t + h]
                sh[par, 1, t] += sh[par, 1, t + h]
                sh[par, 2, t] = min(sh[par, 2, t], sh[par, 2, t + h])
            cuda.syncthreads()
            h //= 2
        base = t - g
        return sh[par, 0, base], sh[par, 1, base], sh[par, 2, base]

    @cuda.jit(device=True)
    def reduce3_sum(sh, t, g, G, a, b, c, par):
        """Group reduction (sum a, sum b, sum c): shared-memory tree (simulator)."""
        cuda.syncthreads()
        sh[par, 0, t] = a
        sh[par, 1, t] = b
        sh[par, 2, t] = c
        cuda.syncthreads()
        h = G // 2
        while h > 0:
            if g < h:
                sh[par, 0, t] += sh[par, 0, t + h]
                sh[par, 1, t] += sh[par, 1, t + h]
                sh[par, 2, t] += sh[par, 2, t + h]
            cuda.syncthreads()
            h //= 2
        base = t - g
        return sh[par, 0, base], sh[par, 1, base], sh[par, 2, base]

    @cuda.jit(device=True)
    def next_up(x):
        """The next float64 above ``x``."""
        return math.nextafter(x, math.inf)

    @cuda.jit(device=True)
    def next_down(x):
        """The next float64 below ``x``."""
        return math.nextafter(x, -math.inf)

    @cuda.jit(device=True)
    def group_all(flag, G):
        """True when ``flag`` holds on every thread that must loop together."""
        if G >= cuda.blockDim.x:
            return flag  # one group per block: already uniform
        return cuda.syncthreads_and(1 if flag else 0) != 0

    @cuda.jit(device=True)
    def mul_rn(a, b):
        """``a * b`` rounded to float64 (never fused into an add)."""
        return a * b

    def key_of(x):
        """Order-preserving uint64 image of a float64."""
        bits = int(np.float64(x).view(np.uint64))
        return bits ^ _ALL if bits & _TOP else bits | _TOP

    def value_of(u):
        """The float64 whose :func:`key_of` is ``u``."""
        u = int(u)
        bits = u ^ _TOP if u & _TOP else u ^ _ALL
        return float(np.uint64(bits).view(np.float64))

    key_of = cuda.jit(device=True)(key_of)
    value_of = cuda.jit(device=True)(value_of)

else:  # pragma: no cover - compiled for a GPU (checked by the PTX test)
    from numba.cuda import libdevice

    SH_SHAPE = (2, 3, MAX_TPB // WARP)

    @cuda.jit(device=True)
    def _lanes():
        # Blocks of fewer than 32 threads have a partial warp: name only its lanes.
        T = cuda.blockDim.x
        if T >= WARP:
            return uint32(0xFFFFFFFF)
        return uint32((1 << T) - 1)

    @cuda.jit(device=True)
    def reduce3(sh, t, g, G, a, b, c, par):
        """Group reduction (sum a, sum b, min c): warp shuffles, then one barrier."""
        mask = _lanes()
        off = min(G, WARP) // 2
        while off > 0:
            a += cuda.shfl_xor_sync(mask, a, off)
            b += cuda.shfl_xor_sync(mask, b, off)
            c = min(c, cuda.shfl_xor_sync(mask, c, off))
            off //= 2
        if G > WARP:
            if t % WARP == 0:
                w = t // WARP
                sh[par, 0, w] = a
                sh[par, 1, w] = b
                sh[par, 2, w] = c
            cuda.syncthreads()
            w0 = (t - g) // WARP
            a = sh[par, 0, w0]
            b = sh[par, 1, w0]
            c = sh[par, 2, w0]
            for w in range(w0 + 1, w0 + G // WARP):
                a += sh[par, 0, w]
                b += sh[par, 1, w]
                c = min(c, sh[par, 2, w])
        return a, b, c

    @cuda.jit(device=True)
    def reduce3_sum(sh, t, g, G, a, b, c, par):
        """Group reduction (sum a, sum b, sum c): warp shuffles, then one barrier."""
        mask = _lanes()
        off = min(G, WARP) // 2
        while off > 0:
            a += cuda.shfl_xor_sync(mask, a, off)
            b += cuda.shfl_xor_sync(mask, b, off)
            c += cuda.shfl_xor_sync(mask, c, off)
            off //= 2
        if G > WARP:
            if t % WARP == 0:
                w = t // WARP
                sh[par, 0, w] = a
                sh[par, 1, w] = b
                sh[par, 2, w] = c
            cuda.syncthreads()
            w0 = (t - g) // WARP
            a = sh[par, 0, w0]
            b = sh[par, 1, w0]
            c = sh[par, 2, w0]
            for w in range(w0 + 1, w0 + G // WARP):
                a += sh[par, 0, w]
                b += sh[par, 1, w]
                c += sh[par, 2, w]
        return a, b, c

    @cuda.jit(device=True)
    def next_up(x):
        """The next float64 above ``x``."""
        return libdevice.nextafter(x, math.inf)

    @cuda.jit(device=True)
    def next_down(x):
        """The next float64 below ``x``."""
        return libdevice.nextafter(x, -math.inf)

    @cuda.jit(device=True)
    def group_all(flag, G):
        """True when ``flag`` holds on every thread that must loop together."""
        if G >= cuda.blockDim.x:
            return flag  # one group per block: already uniform
        if G <= WARP:
            return cuda.all_sync(_lanes(), 1 if flag else 0) != 0
        return cuda.syncthreads_and(1 if flag else 0) != 0

    @cuda.jit(device=True)
    def mul_rn(a, b):
        """``a * b`` rounded to float64 (never fused into an add)."""
        return libdevice.dmul_rn(a, b)

    @cuda.jit(device=True)
    def key_of(x):
        """Order-preserving uint64 image of a float64."""
        bits = uint64(libdevice.double_as_longlong(x))
        if bits & uint64(_TOP):
            return bits ^ uint64(_ALL)
        return bits | uint64(_TOP)

    @cuda.jit(device=True)
    def value_of(u):
        """The float64 whose :func:`key_of` is ``u``."""
        if u & uint64(_TOP):
            bits = u ^ uint64(_TOP)
        else:
            bits = u ^ uint64(_ALL)
        return libdevice.longlong_as_double(int64(bits))

