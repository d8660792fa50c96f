"""GPU backend, host side: the operations for arrays exposing ``__cuda_array_interface__``.

:func:`sparsemax_nb.backends.pick` sends CuPy arrays, Numba device arrays and Numba
simulator arrays here, with the arguments checked by :mod:`sparsemax_nb.api`. Each
operation checks ``out`` and the target's data (class indices, target rows) on the device
before writing anything, lays the data out as a ``(outer, K, inner)`` view (no transpose,
see :mod:`sparsemax_nb.backends.cuda_kernels`) and launches
one kernel per call (plus one small checking kernel for targets and one reduction kernel for
``reduction="sum"``/``"mean"``). The result is a CuPy array when an input is one, else a
Numba device array. ``stream=`` (a Numba stream, a CuPy stream, or None) orders the work;
with None, CuPy inputs run on CuPy's current stream and Numba inputs on the default stream.
With an explicit ``stream=``, the work first waits (an event, not a host sync) for the
streams that produced the inputs: CuPy's current stream for CuPy arrays, the array's own
stream for Numba arrays. CuPy results are allocated on ``stream``; reading them on another
stream needs the caller's own synchronisation, as with any CuPy stream.

``method`` is checked by the API but not used here: the device threshold (Michelot's fixed point with a
bisection safeguard, finished by the exact support formula) is the same for all methods.

The entmax mappings (``entmax15``, ``entmax_bisect``) run the kernels of
:mod:`sparsemax_nb.backends.cuda_entmax` (one bracketed Newton search for every alpha, with
the launch configuration of the general kernels below); alpha goes to the device as one
value or one value per row. The other mappings raise ``NotImplementedError``.

Kernel choice (see :mod:`sparsemax_nb.backends.cuda_kernels`): float32 (and float16) rows of 65 to
``32 * block size`` entries take the register-resident kernels (a warp per row up to 1024
entries); other rows the general ones; calls with at most ``max_rows`` rows of at least
``min_k`` entries (:func:`set_long_rows`) the long-row kernels (two launches, no host
round trip, scratch cached per device, stream and size class).
"""

import math
import threading

import numpy as np

from .. import _checks as D

__all__ = [
    "NoCudaDeviceError",
    "set_block_size",
    "set_long_rows",
]


class NoCudaDeviceError(RuntimeError):
    """Raised for a GPU call on a machine where no CUDA device was found."""


_TPB = [256]


def set_block_size(tpb):
    """Set the threads per block of every kernel (a power of two, 1 to 256); return the old one.

    For tests (small blocks make rows longer than a block cheap under the simulator) and
    tuning; the default is 256.
    """
    from . import cuda_kernels as _cuda

    tpb = int(tpb)
    if tpb < 1 or tpb > _cuda.MAX_TPB or tpb & (tpb - 1):
        raise ValueError(f"block size must be a power of two in [1, {_cuda.MAX_TPB}]; got {tpb}")
    old = _TPB[0]
    _TPB[0] = tpb
    return old


def _cuda():
    """``numba.cuda`` once a device (or the simulator) is known to be there."""
    try:
        from numba import cuda
    except ImportError as e:  # pragma: no cover - numba-cuda missing
        raise NoCudaDeviceError(
            "sparsemax_nb: no CUDA device was found (numba.cuda is not importable: "
            f"{e}); install the 'cuda' extra (numba-cuda) on a machine with a GPU"
        ) from e
    if not cuda.is_available():
        raise NoCudaDeviceError(
            "sparsemax_nb: no CUDA device was found; GPU arrays need an NVIDIA GPU with a "
            "working driver (or NUMBA_ENABLE_CUDASIM=1 for Numba's simulator)"
        )
    return cuda


def _sim():
    from numba import config

    return bool(getattr(config, "ENABLE_CUDASIM", 0))


def _is_device(x):
    return hasattr(x, "__cuda_array_interface__") or type(x).__name__ == "FakeCUDAArray"


def _is_cupy(x):
    return type(x).__module__.split(".")[0] == "cupy"


class _Ctx:
    """The CUDA module, the stream, and whether results are CuPy arrays."""

    def __init__(self, inputs, stream):
        self.cuda = _cuda()
        for name, x in inputs:
            if x is not None and not _is_device(x):
                raise TypeError(
                    f"sparsemax_nb: {name} is a host object ({type(x).__name__}) while another "
                    "argument is a GPU array; pass all arrays on the device (numba.cuda."
                    "to_device, cupy.asarray) or all on the host"
                )
        self.cupy = any(_is_cupy(x) for _, x in inputs if x is not None)
        self.stream = self._stream(stream)
        if stream is not None:
            self._order_after([x for _, x in inputs if x is not None])

    def _producers(self, arrays):
        """The streams that may still be writing ``arrays``: CuPy's current stream for CuPy
        arrays, the stream a Numba device array was made on (the default stream if none)."""
        cuda = self.cuda
        found = {}
        for x in arrays:
            if _is_cupy(x):
                import cupy

                ptr = cupy.cuda.get_current_stream().ptr
                st = cuda.external_stream(ptr) if ptr else cuda.default_stream()
            else:
                st = getattr(x, "stream", 0) or cuda.default_stream()
            found.setdefault(_stream_key(st), st)
        return list(found.values())

    def _order_after(self, arrays):
        """Make ``self.stream`` wait for the streams that produced the inputs (and ``out``).

        Only with an explicit ``stream=``: by default the work already runs on the producer's
        stream. An event recorded there and waited on here orders the kernels after pending
        writes without blocking the host (a non-blocking CuPy stream is not ordered after
        the legacy default stream otherwise).
        """
        mine = _stream_key(self.stream)
        for st in self._producers(arrays):
            if _stream_key(st) != mine:
                # (the simulator's events take no arguments)
                ev = self.cuda.event() if _sim() else self.cuda.event(timing=False)
                ev.record(stream=st)
                ev.wait(stream=self.stream)

    def _stream(self, stream):
        cuda = self.cuda
        if stream is None:
            if self.cupy:
                import cupy

                ptr = cupy.cuda.get_current_stream().ptr
                return cuda.external_stream(ptr) if ptr else cuda.default_stream()
            return cuda.default_stream()
        if _is_cupy(stream):
            return cuda.external_stream(stream.ptr) if stream.ptr else cuda.default_stream()
        if isinstance(stream, int):
            return cuda.external_stream(stream) if stream else cuda.default_stream()
        return stream

    def view(self, x, name):
        """A C-contiguous Numba view of device array ``x`` (copied if ``x`` is strided)."""
        cuda = self.cuda
        if type(x).__name__ == "FakeCUDAArray" or hasattr(x, "copy_to_host"):
            a = x
        else:
            # No host-blocking sync on the producer's stream: the work is queued on
            # ``self.stream`` (CuPy's current stream unless the caller chose another).
            a = cuda.as_cuda_array(x, sync=False)
        if not a.is_c_contiguous():
            if self.cupy and _is_cupy(x):
                import cupy

                a = cuda.as_cuda_array(cupy.ascontiguousarray(x), sync=False)
            else:
                # Numba device arrays have no device-side ascontiguousarray: one round trip.
                a = cuda.to_device(np.ascontiguousarray(a.copy_to_host()), stream=self.stream)
        return a

    def empty(self, shape, dtype):
        """``(user_array, numba_view)`` of a new C-contiguous device array."""
        if self.cupy:
            import cupy

            # CuPy's pool hands out memory per stream: allocate on the stream that writes it,
            # so the pool never gives it to another stream while the kernels still run.
            ptr = _stream_key(self.stream)
            with cupy.cuda.ExternalStream(ptr) if ptr else cupy.cuda.Stream.null:
                u = cupy.empty(shape, dtype)
            return u, self.cuda.as_cuda_array(u, sync=False)
        a = self.cuda.device_array(shape, dtype, stream=self.stream)
        return a, a

    def to_host(self, a):
        """A small device-to-host copy, complete on return (validation read-backs)."""
        h = a.copy_to_host(stream=self.stream)
        self.stream.synchronize()  # a copy on a stream may return before it lands
        return h

    def full1(self, value, dtype):
        return self.cuda.to_device(np.array([value], dtype), stream=self.stream)


def _split(shape, ax):
    outer = int(np.prod(shape[:ax], dtype=np.int64))
    inner = int(np.prod(shape[ax + 1 :], dtype=np.int64))
    return outer, shape[ax], inner


def _launch_cfg(K, n):
    """``(blocks, threads, G)``: groups of ``G`` threads per row (see :mod:`.cuda_kernels`)."""
    from . import cuda_kernels as _cuda

    tpb = _TPB[0]
    per = -(-K // _cuda.ITEMS)  # threads needed to keep the row in registers
    G = 1
    while G < per and G < tpb:
        G *= 2
    rows_per_block = tpb // G
    return -(-n // rows_per_block), tpb, G


def _reg_cfg(K, n, dt):
    """``(blocks, threads, G)`` of the register-resident float32 kernels, or None when the
    row is not float32, short (the kernels above keep it in registers already) or longer
    than a block's registers (``tpb * ITEMS_REG`` entries)."""
    from . import cuda_kernels as _cuda

    tpb = _TPB[0]
    if np.dtype(dt) != np.float32 or K <= 64 or K > tpb * _cuda.ITEMS_REG:
        return None
    per = -(-K // _cuda.ITEMS_REG)
    G = 1
    while G < per:
        G *= 2
    return -(-n // (tpb // G)), tpb, G


# Long rows: several blocks per row (see sparsemax_nb.backends.cuda_kernels, "long rows") when a call has at
# most ``max_rows`` rows of at least ``min_k`` entries. The candidate buffer holds
# ``max(chunk, K // 16)`` entries per row; rows with more candidates are solved from the row
# itself (exact, slower), never truncated.
_LONG = {"min_k": 1 << 16, "max_rows": 32}


def set_long_rows(min_k=None, max_rows=None):
    """Tune when rows get several cooperating blocks; returns the old settings (a dict).

    For tests (small ``min_k`` under the simulator) and tuning on a real GPU.
    """
    old = dict(_LONG)
    for key, val in (("min_k", min_k), ("max_rows", max_rows)):
        if val is not None:
            _LONG[key] = int(val)
    return old


def _long_rows(n, K):
    return K >= _LONG["min_k"] and n <= _LONG["max_rows"]


_scratch_cache = threading.local()


def _stream_key(st):
    try:
        return int(st)
    except TypeError:  # the simulator's streams
        return id(st)


def _size_class(x):
    """The next power of two >= x: scratch sizes, so nearby sizes share one allocation."""
    return 1 << max(int(x) - 1, 0).bit_length()


def _scratch(ctx, n, cap):
    """Scratch arrays of the long-row path, cached per (device, stream, size class).

    Numba allocates with ``cuMemAlloc`` (no pool): fresh scratch on every call would cost
    more than the kernels for a 10^7 row. Calls on one stream run in order, so reusing
    its scratch is safe; each thread keeps its own cache (at most 4 entries). Returns
    ``(keys, ctr, cand, state)`` with at least ``n`` rows and ``cap`` candidate slots.
    """
    from . import cuda_kernels as _cuda

    cache = getattr(_scratch_cache, "d", None)
    if cache is None:
        cache = _scratch_cache.d = {}
    try:
        dev_id = ctx.cuda.get_current_device().id
    except Exception:  # pragma: no cover - the simulator
        dev_id = 0
    n_c = _size_class(n)
    cap_c = _size_class(cap)
    key = (dev_id, _stream_key(ctx.stream), n_c, cap_c)
    hit = cache.pop(key, None)
    if hit is None:
        cuda = ctx.cuda
        st = ctx.stream
        hit = (
            cuda.device_array((n_c, 2), np.uint64, stream=st),
            cuda.device_array((n_c, _cuda.NCTR), np.int32, stream=st),
            cuda.device_array((n_c, cap_c), np.float64, stream=st),
            cuda.device_array((n_c, _cuda.NSTATE), np.float64, stream=st),
        )
        while len(cache) >= 4:
            cache.pop(next(iter(cache)))
    cache[key] = hit  # most recent last
    return hit


def _zero(ctx, a):
    """Clear device array ``a`` on the call's stream (asynchronous, no host buffer)."""
    if _sim():
        a.copy_to_device(np.zeros(a.shape, a.dtype))
    else:  # pragma: no cover - needs a GPU
        from numba.cuda.cudadrv import driver

        driver.device_memset(a, 0, a.size * a.dtype.itemsize, stream=ctx.stream)


def _lr_grid(n, B):
    """Blocks of a long-row launch: one 1-D grid of ``n * B`` (no 65535 limit on rows)."""
    g = n * B
    if g > 2**31 - 1:
        raise ValueError(f"sparsemax_nb: {n} rows x {B} chunks exceed a CUDA grid")
    return g


def _multiblock_state(ctx, zv, n, K, inner):
    """Run the long-row threshold search (two kernels' worth: the gather, whose last block
    per row solves ``tau``); the per-row state array (see ``_cuda.S_*``) and ``B``."""
    from . import cuda_kernels as _cuda

    st = ctx.stream
    tpb = _TPB[0]
    chunk = tpb * _cuda.ITEMS
    B = -(-K // chunk)
    cap = max(chunk, K // 16)
    keys, ctr, cand, state = _scratch(ctx, n, cap)
    # Cleared at the start of every call: a call interrupted after the gather (an exception
    # or KeyboardInterrupt between launches) cannot leave stale counts for this one.
    _zero(ctx, keys)
    _zero(ctx, ctr)
    _cuda.k_lr_gather[_lr_grid(n, B), tpb, st](zv, inner, B, keys, ctr, cand, state)
    return state, B


def _check_out(ctx, out, shape, dtype, name="out"):
    if not _is_device(out):
        raise TypeError(
            f"sparsemax_nb: {name} must be a GPU array for GPU input, got {type(out).__name__}"
        )
    D.check_out_shape_dtype(tuple(out.shape), np.dtype(out.dtype), shape, dtype, name)
    cai = getattr(out, "__cuda_array_interface__", None)
    if cai is not None and cai["data"][1]:
        raise ValueError(f"{name} is read-only")
    if type(out).__name__ == "FakeCUDAArray" or hasattr(out, "copy_to_host"):
        v = out
    else:
        v = ctx.cuda.as_cuda_array(out, sync=False)
    if not v.is_c_contiguous():
        # Never copy an ``out``: the kernel's writes would not reach the caller.
        raise ValueError(f"{name} must be a C-contiguous GPU array")
    return out, v


def _out_or_new(ctx, out, shape, dtype):
    """The caller's ``out`` (validated) or a new device array: ``(result, device view)``."""
    if out is not None:
        return _check_out(ctx, out, shape, dtype)
    return ctx.empty(shape, dtype)


def _batch(shape, ax):
    return shape[:ax] + shape[ax + 1 :]


# --------------------------------------------------------------------------- operations
# The backend interface of sparsemax_nb.backends: the names and arguments of .cpu and .dask.
# The arguments arrive checked by sparsemax_nb.api; the data rules (class indices, target
# rows, 0/1 labels) run here, on the device, with the messages of sparsemax_nb._checks.
STREAMS = True


def stream_error():  # pragma: no cover - this backend takes streams
    raise AssertionError("the CUDA backend takes stream=")


def asarray(x, name="z"):
    """A device array argument, as given; a host object here mixes host and device data."""
    if not _is_device(x):
        raise TypeError(
            f"sparsemax_nb: {name} is a host object ({type(x).__name__}) while another "
            "argument is a GPU array; pass all arrays on the device (numba.cuda."
            "to_device, cupy.asarray) or all on the host"
        )
    return x


# The mappings with device kernels: sparsemax (cuda_kernels) and the entmax family
# (cuda_entmax, one threshold search for every alpha; 1.5-entmax is alpha = 1.5).
_ENTMAX = ("entmax15", "entmax_bisect")


def _supported(mapping):
    if mapping != "sparsemax" and mapping not in _ENTMAX:
        raise D.unsupported_mapping_error("CUDA", mapping)


def _alpha_dev(ctx, mapping, theta, n):
    """alpha on the device: one value, or one per row (C order of the batch)."""
    if mapping == "entmax15":
        a = np.array([1.5])
    else:
        a = np.ascontiguousarray(theta, dtype=np.float64).reshape(-1)
        if a.shape[0] not in (1, n):
            a = np.broadcast_to(a, (n,)).copy()
    return ctx.cuda.to_device(a, stream=ctx.stream)


def forward(mapping, z, ax, out, code, theta, dt, stream=None):
    """``p`` for device array ``z`` (``code``: the method is one exact search here)."""
    from . import cuda_kernels as _cuda

    _supported(mapping)
    ctx = _Ctx([("z", z), ("out", out)], stream)
    shape = tuple(z.shape)
    res, res_v = _out_or_new(ctx, out, shape, dt)
    outer, K, inner = _split(shape, ax)
    n = outer * inner
    if n and K:
        zv = ctx.view(z, "z").reshape(outer, K, inner)
        pv = res_v.reshape(outer, K, inner)
        if mapping in _ENTMAX:
            from . import cuda_entmax as _ent

            th = _alpha_dev(ctx, mapping, theta, n)
            blocks, tpb, G = _launch_cfg(K, n)
            _ent.k_ent_forward[blocks, tpb, ctx.stream](zv, pv, th, n, inner, G)
        elif _long_rows(n, K):
            state, B = _multiblock_state(ctx, zv, n, K, inner)
            _cuda.k_lr_write[_lr_grid(n, B), _TPB[0], ctx.stream](zv, pv, inner, B, state)
        elif _reg_cfg(K, n, dt) is not None:
            blocks, tpb, G = _reg_cfg(K, n, dt)
            _cuda.k_forward_reg[blocks, tpb, ctx.stream](
                zv.reshape(-1), pv.reshape(-1), n, K, inner, G
            )
        else:
            blocks, tpb, G = _launch_cfg(K, n)
            _cuda.k_forward[blocks, tpb, ctx.stream](zv, pv, n, inner, G)
    return res


def threshold(mapping, z, ax, code, theta, dt, stream=None):
    """``(tau, support_size)`` of the batch shape, on the device."""
    from . import cuda_kernels as _cuda

    _supported(mapping)
    ctx = _Ctx([("z", z)], stream)
    shape = tuple(z.shape)
    outer, K, inner = _split(shape, ax)
    n = outer * inner
    batch = _batch(shape, ax)
    tau, tau_v = ctx.empty((n,), dt)
    k, k_v = ctx.empty((n,), np.int64)
    if n:
        if K:
            zv = ctx.view(z, "z").reshape(outer, K, inner)
            if mapping in _ENTMAX:
                from . import cuda_entmax as _ent

                th = _alpha_dev(ctx, mapping, theta, n)
                blocks, tpb, G = _launch_cfg(K, n)
                _ent.k_ent_threshold[blocks, tpb, ctx.stream](zv, tau_v, k_v, th, n, inner, G)
            elif _long_rows(n, K):
                state, _ = _multiblock_state(ctx, zv, n, K, inner)
                _cuda.k_lr_tau[-(-n // 32), 32, ctx.stream](state, tau_v, k_v)
            elif _reg_cfg(K, n, dt) is not None:
                blocks, tpb, G = _reg_cfg(K, n, dt)
                _cuda.k_threshold_reg[blocks, tpb, ctx.stream](
                    zv.reshape(-1), tau_v, k_v, n, K, inner, G
                )
            else:
                blocks, tpb, G = _launch_cfg(K, n)
                _cuda.k_threshold[blocks, tpb, ctx.stream](zv, tau_v, k_v, n, inner, G)
        else:
            _fill(ctx, tau_v, math.nan)
            _fill(ctx, k_v, 0)
    return tau.reshape(batch), k.reshape(batch)


def _fill(ctx, a, value):
    """Fill a 1-D device array (K = 0 thresholds)."""
    ctx.cuda.to_device(np.full(a.shape, value, a.dtype), stream=ctx.stream, to=a)


def jvp(mapping, p, v, ax, out, theta, dt, stream=None):
    """``J(p) v`` on the device."""
    from . import cuda_kernels as _cuda

    _supported(mapping)
    ctx = _Ctx([("p", p), ("v", v), ("out", out)], stream)
    shape = tuple(v.shape)
    res, res_v = _out_or_new(ctx, out, shape, dt)
    outer, K, inner = _split(shape, ax)
    n = outer * inner
    if n and K:
        pv = ctx.view(p, "p").reshape(outer, K, inner)
        vv = ctx.view(v, "v").reshape(outer, K, inner)
        blocks, tpb, G = _launch_cfg(K, n)
        ov = res_v.reshape(outer, K, inner)
        if mapping in _ENTMAX:
            from . import cuda_entmax as _ent

            th = _alpha_dev(ctx, mapping, theta, n)
            _ent.k_ent_jvp[blocks, tpb, ctx.stream](pv, vv, ov, th, n, inner, G)
        else:
            _cuda.k_jvp[blocks, tpb, ctx.stream](pv, vv, ov, n, inner, G)
    return res


def _where(i, batch):
    return D.position(i, batch)


def loss(mapping, z, target, kind, ax, reduction, ignore_index, code, theta, dt, want_grad,
         out, stream=None, checked=False):
    """``(loss, grad)`` on the device; targets are checked on the device first, with one
    small read-back, so that bad input is reported before anything is written."""
    from . import cuda_kernels as _cuda

    _supported(mapping)
    ctx = _Ctx([("z", z), ("target", target), ("out", out)], stream)
    shape = tuple(z.shape)
    batch = _batch(shape, ax)
    outer, K, inner = _split(shape, ax)
    n = outer * inner
    n_valid = n
    if kind == "labels":
        y = ctx.view(target, "target").reshape(n)
        if n and not checked:
            # The sentinel for "no ignore_index" is a value no int64 label holds.
            ign = ignore_index if ignore_index is not None else np.iinfo(np.int64).min
            first = ctx.full1(n, np.int64)
            cnt = ctx.full1(0, np.int64)
            blocks = -(-n // 128)
            _cuda.k_check_labels[blocks, 128, ctx.stream](y, K, ign, first, cnt)
            i = int(ctx.to_host(first)[0])
            n_valid = int(ctx.to_host(cnt)[0])
            if i < n:
                value = int(ctx.to_host(y[i : i + 1])[0])
                raise D.bad_label_error(value, _where(i, batch), K, ignore_index)
    else:
        q = ctx.view(target, "target").reshape(outer, K, inner)
        if n and not checked:
            first = ctx.cuda.to_device(np.array([n, n], np.int64), stream=ctx.stream)
            sums = ctx.cuda.device_array(n, np.float64, stream=ctx.stream)
            blocks = -(-n // 128)
            _cuda.k_check_dist[blocks, 128, ctx.stream](q, n, inner, first, sums)
            i_neg, i_sum = (int(x) for x in ctx.to_host(first))
            if i_neg < n:
                raise D.negative_target_error(_where(i_neg, batch))
            if i_sum < n:
                s = float(ctx.to_host(sums[i_sum : i_sum + 1])[0])
                raise D.target_sum_error(_where(i_sum, batch), s, K)
    if want_grad:
        grad, grad_v = _out_or_new(ctx, out, shape, dt)
        g3 = grad_v.reshape(outer, K, inner)
    else:
        grad = None
        _, g3 = ctx.empty((1, 1, 1), dt)
    scale = 1.0
    if reduction == "mean":
        scale = 1.0 / n_valid if n_valid else 0.0
    per_row, loss_v = ctx.empty((n,), dt)
    if n:
        if K == 0:
            # An empty row has no threshold: NaN loss, empty gradient (as on the CPU).
            _fill(ctx, loss_v, math.nan)
        else:
            zv = ctx.view(z, "z").reshape(outer, K, inner)
            blocks, tpb, G = _launch_cfg(K, n)
            if mapping in _ENTMAX:
                from . import cuda_entmax as _ent

                th = _alpha_dev(ctx, mapping, theta, n)
                if kind == "labels":
                    ign = ignore_index if ignore_index is not None else -1
                    _ent.k_ent_loss_labels[blocks, tpb, ctx.stream](
                        zv, y, ign, scale, loss_v, g3, want_grad, th, n, inner, G
                    )
                else:
                    _ent.k_ent_loss_dist[blocks, tpb, ctx.stream](
                        zv, q, scale, loss_v, g3, want_grad, th, n, inner, G
                    )
            elif kind == "labels":
                ign = ignore_index if ignore_index is not None else -1
                _cuda.k_loss_labels[blocks, tpb, ctx.stream](
                    zv, y, ign, scale, loss_v, g3, want_grad, n, inner, G
                )
            else:
                _cuda.k_loss_dist[blocks, tpb, ctx.stream](
                    zv, q, scale, loss_v, g3, want_grad, n, inner, G
                )
    if reduction == "none":
        loss_out = per_row.reshape(batch)
    else:
        # A 0-d device array: the sum (or mean) stays on the device.
        div = 1.0
        if reduction == "mean":
            div = float(n_valid) if n_valid else math.nan
        res, res_v = ctx.empty((1,), dt)
        _cuda.k_sum[1, _TPB[0], ctx.stream](loss_v, div, res_v)
        loss_out = res.reshape(())
    return loss_out, grad


def proportions(y, ax, dt, stream=None, checked=False):
    """``q = y / sum(y)`` on the device, after the 0/1 and non-empty rules."""
    from . import cuda_kernels as _cuda

    ctx = _Ctx([("y", y)], stream)
    shape = tuple(y.shape)
    batch = _batch(shape, ax)
    outer, K, inner = _split(shape, ax)
    n = outer * inner
    res, res_v = ctx.empty(shape, dt)
    if n == 0:
        return res
    yv = ctx.view(y, "y").reshape(outer, K, inner)
    first_val = ctx.full1(n, np.int64)
    first_empty = ctx.full1(n, np.int64)
    blocks = -(-n // 128)
    _cuda.k_check_01[blocks, 128, ctx.stream](yv, n, inner, first_val, first_empty)
    i = int(ctx.to_host(first_val)[0])
    if i < n and not checked:
        o, ii = divmod(i, inner)
        row = ctx.to_host(yv[o, :, ii])
        j = int(np.flatnonzero(~((row == 0) | (row == 1)))[0])
        idx = list(_where(i, batch))
        idx.insert(ax, j)
        raise D.not_01_error(tuple(idx), row[j])
    i = int(ctx.to_host(first_empty)[0])
    if i < n and not checked:
        raise D.empty_label_row_error(_where(i, batch))
    if K:
        _cuda.k_proportions[blocks, 128, ctx.stream](yv, res_v.reshape(outer, K, inner), n, inner)
    return res
