"""The one layer between the public API and the kernels.

It validates every argument before any output is written, applies the dtype rules of SPEC
section 4, lays the data out as C-contiguous ``(rows, K)`` float arrays, picks the backend
(GPU for ``__cuda_array_interface__`` objects, else CPU) and, on the CPU, the parallel or
the serial build of a driver.

Threads and processes (SPEC section 6)
--------------------------------------
Numba's parallel builds run on a process-wide threading layer. Two of its layers cannot be
shared freely: ``workqueue`` aborts when two threads enter parallel code at once, and GNU
OpenMP aborts in a child forked after the parent ran a parallel region. So:

* one process-wide lock guards the parallel builds; a call that finds it taken runs the
  serial build in its own thread (all builds release the GIL), so threads never wait on
  each other and never enter the threading layer together;
* in a child forked after the threading layer started, every call runs serially;
* small calls run serially: on a busy machine a parallel region waits for every worker.

Nothing here changes Numba's configuration; the thread count is ``numba.get_num_threads()``.
"""

import os
import threading

import numba
import numpy as np
from numpy.exceptions import AxisError

try:
    from numpy.lib.array_utils import normalize_axis_index
except ImportError:  # NumPy < 2
    from numpy.core.multiarray import normalize_axis_index

from . import _cpu

METHODS = {"auto": -1, "sort": _cpu.SORT, "select": _cpu.SELECT}
REDUCTIONS = ("none", "sum", "mean")

# Below this many elements a call runs serially (README, "Threads, processes and compile
# time"; asv_bench/NOTES.md): on a busy machine a parallel region waited ~8 ms.
SERIAL_BELOW = 1 << 18

_lock = threading.Lock()
_parallel_used = False
_serial_only = False


def _after_fork_in_child():
    global _lock, _serial_only
    _lock = threading.Lock()  # the parent's may have been held by another thread
    try:
        started = numba.np.ufunc.parallel._is_initialized
    except AttributeError:  # pragma: no cover - layout of a future Numba
        started = True
    if _parallel_used or started:
        _serial_only = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# Rows at least this long, fewer than the threads, are split between threads themselves
# (forward and threshold): one row of 10^7 then uses every core.
BIG_ROW = 1 << 16


def _big_forward_args(z, p, method):
    n = z.shape[0]
    return z, p, np.empty(n, np.float64), np.empty(n, np.int64), method, True


def _big_threshold_args(z, tau, k, method):
    return z, np.empty((0, 0), z.dtype), tau, k, method, False


_BIG_ARGS = {"forward": _big_forward_args, "threshold": _big_threshold_args}


def run(name, rows, size, *args):
    """Run CPU driver ``name`` on ``rows`` rows of ``size`` elements in all."""
    if name in _BIG_ARGS and size >= SERIAL_BELOW and size // max(rows, 1) >= BIG_ROW:
        threads = numba.get_num_threads()
        if rows < threads:
            done, _ = _parallel_call(lambda: _cpu.get("big", True)(*_BIG_ARGS[name](*args), 4 * threads))
            if done:
                return None
    return run_builds(_cpu.get, name, rows, size, *args)


def run_builds(get, name, rows, size, *args):
    """The thread policy above for any pair of builds: ``get(name, parallel)`` returns a
    compiled function taking ``*args`` and a chunk count."""
    if rows > 1 and size >= SERIAL_BELOW:
        threads = numba.get_num_threads()
        done, result = _parallel_call(lambda: get(name, True)(*args, min(rows, 4 * threads)))
        if done:
            return result
    return get(name, False)(*args, 1)


def _parallel_call(fn):
    """``(True, fn())`` when this thread may run a parallel build now, else ``(False, None)``."""
    global _parallel_used
    if _serial_only or numba.get_num_threads() < 2 or not _lock.acquire(blocking=False):
        return False, None
    try:
        _parallel_used = True
        return True, fn()
    finally:
        _lock.release()


def foreign(*xs):
    """The backend module for arrays that are not host memory, or None for the CPU path.

    Dask arrays go to :mod:`sparsemax_nb._dask`; objects exposing
    ``__cuda_array_interface__`` (CuPy, Numba device arrays) to :mod:`sparsemax_nb._gpu`.
    Each backend module has the public functions with the same signatures.
    """
    for x in xs:
        if x is None or isinstance(x, np.ndarray):
            continue
        if type(x).__module__.startswith("dask."):
            from . import _dask

            return _dask
        # Numba's simulator arrays (NUMBA_ENABLE_CUDASIM=1) have no __cuda_array_interface__.
        if hasattr(x, "__cuda_array_interface__") or type(x).__name__ == "FakeCUDAArray":
            from . import _gpu

            return _gpu
    return None


# --------------------------------------------------------------------------- validation
def compute_dtype(dt, name="z"):
    """The dtype a kernel computes and returns in, for an input of dtype ``dt``."""
    if dt.kind == "f":
        if dt.itemsize <= 4:
            return np.dtype(np.float32)
        return np.dtype(np.float64)
    if dt.kind in "biu":
        return np.dtype(np.float64)
    raise TypeError(
        f"sparsemax_nb: {name} has dtype {dt}; expected a real floating, integer or bool array"
    )


def as_array(x, name="z"):
    """``numpy.asarray`` and the compute dtype of SPEC section 4."""
    a = np.asarray(x)
    return a, compute_dtype(a.dtype, name)


def axis_index(axis, ndim):
    if ndim == 0:
        raise AxisError("sparsemax_nb works along an axis; a 0-d input has none")
    return normalize_axis_index(axis, ndim)


def method_code(method):
    try:
        return METHODS[method]
    except (KeyError, TypeError):
        raise ValueError(
            f"method must be one of 'auto', 'sort', 'select'; got {method!r}"
        ) from None


def pick_method(code, K):
    """``method="auto"``: select at every K (sort/select timings in README, "API")."""
    if code >= 0:
        return code
    return _cpu.SELECT


def rows_view(a, ax, dtype):
    """``a`` with ``ax`` last, as a C-contiguous native ``(rows, K)`` array of ``dtype``.

    A view when ``a`` is already laid out that way, else one copy.
    """
    if ax != a.ndim - 1:
        a = np.moveaxis(a, ax, -1)
    z2 = np.ascontiguousarray(a, dtype=dtype)
    return z2.reshape(rows_shape(a.shape, a.ndim - 1))


def rows_shape(shape, ax):
    """``(rows, K)`` for an array of ``shape`` worked along ``ax``."""
    K = shape[ax]
    rows = 1
    for i, s in enumerate(shape):
        if i != ax:
            rows *= s
    return rows, K


def check_out(out, shape, dtype, name="out"):
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} has shape {out.shape}; expected {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"{name} has dtype {out.dtype}; expected {dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")


class Output:
    """Where a kernel writes a full-shape result, and how it reaches the caller.

    The kernel gets ``self.rows``, a C-contiguous ``(rows, K)`` array. When the caller's
    ``out`` can be written directly (C-contiguous native, ``axis`` last, and no overlap with
    an input other than being that input itself) ``rows`` is a view of it; otherwise the
    kernel writes a scratch array that :meth:`finish` copies into place.
    """

    __slots__ = ("rows", "result", "_dest")

    def __init__(self, out, shape, dtype, ax, inputs, name="out"):
        n_rows_shape = rows_shape(shape, ax)
        self._dest = None
        if out is None:
            self.result = np.empty(shape, dtype)
            if ax == len(shape) - 1:
                self.rows = self.result.reshape(n_rows_shape)
            else:
                self.rows = np.empty(n_rows_shape, dtype)
                self._dest = np.moveaxis(self.result, ax, -1)
            return
        check_out(out, shape, dtype, name)
        self.result = out
        if ax == len(shape) - 1 and out.flags.c_contiguous and out.dtype.isnative:
            rows = out.reshape(n_rows_shape)
            if all(_same_or_apart(rows, x) for x in inputs):
                self.rows = rows
                return
        self.rows = np.empty(n_rows_shape, dtype)
        self._dest = np.moveaxis(out, ax, -1)

    def finish(self):
        if self._dest is not None:
            np.copyto(self._dest, self.rows.reshape(self._dest.shape))
        return self.result


def _same_or_apart(a, b):
    """True if ``a`` and ``b`` are the same memory laid out the same way, or do not overlap.

    Every kernel reads an element before it writes the same element, so the exact input
    is a safe output; a shifted or reversed overlap is not.
    """
    if not np.may_share_memory(a, b):
        return True
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape
        and a.strides == b.strides
    )
