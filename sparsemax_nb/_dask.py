"""The public functions for Dask arrays: lazy, one NumPy-API call per block.

:func:`sparsemax_nb._dispatch.foreign` sends any call with a Dask array argument here. Every
function has the signature of its twin in :mod:`sparsemax_nb._api` and returns a lazy
``dask.array.Array`` (a 0-d one for ``reduction="sum"/"mean"``). Each block is computed by
the public NumPy API itself, so a CuPy-backed Dask array runs on the GPU with no change here.

Layout
------
A row must lie in one block: when ``axis`` spans several chunks it is rechunked to one
chunk, letting Dask pick the other axes' chunks (``"auto"``, from its ``array.chunk-size``
setting) so a block stays about the usual size. A row larger than the Dask config value
``sparsemax_nb.max-row-bytes`` (default ``"256MiB"``) is refused with a ``ValueError``: it
could not be processed in a bounded-memory block anyway.

Threads
-------
Dask already runs blocks in parallel, so each block call runs Numba's serial build: the
block function sets ``numba.set_num_threads(1)`` (a thread-local setting, restored
afterwards) unless the Dask config value ``sparsemax_nb.threads-per-block`` says otherwise
(``None`` leaves Numba's setting alone). It is read when the graph is built.

Errors
------
Shapes, dtypes, ``axis``, ``method`` and ``reduction`` are checked when the call is made.
Checks that need the data (class indices in range, target rows that are distributions,
labels that are 0/1) run lazily, when the result is computed, and name the global batch
position of a bad row (one bad row, not necessarily the first).
"""

from typing import Any, Optional

import numba
import numpy as np

import dask
import dask.array as da
from dask.array.utils import meta_from_array
from dask.utils import parse_bytes

from . import _api
from . import _dispatch as D

MAX_ROW_BYTES_KEY = "sparsemax_nb.max-row-bytes"
THREADS_KEY = "sparsemax_nb.threads-per-block"
DEFAULT_MAX_ROW_BYTES = "256MiB"


# --------------------------------------------------------------------------- helpers
def _as_dask(x):
    return x if isinstance(x, da.Array) else da.asarray(x)


def _no_out(out):
    if out is not None:
        raise TypeError(
            "out= is not supported with Dask arrays: the result is lazy; write it with "
            "dask.array.store or .compute()"
        )


def _no_stream(stream):
    if stream is not None:
        raise TypeError(
            "stream= applies to GPU arrays only; the blocks of a CuPy-backed Dask array run "
            "on CuPy's current stream"
        )


def _max_row_bytes():
    v = dask.config.get(MAX_ROW_BYTES_KEY, DEFAULT_MAX_ROW_BYTES)
    return parse_bytes(v) if isinstance(v, str) else int(v)


def _one_chunk(x, ax, dt):
    """``x`` with axis ``ax`` in a single chunk (checked against the row-size limit)."""
    K = x.shape[ax]
    if K != K:  # NaN: unknown chunk sizes
        raise ValueError(
            f"sparsemax_nb: the length of axis {ax} is unknown; call compute_chunk_sizes() first"
        )
    row = int(K) * max(dt.itemsize, x.dtype.itemsize)
    limit = _max_row_bytes()
    if row > limit:
        raise ValueError(
            f"sparsemax_nb: one row along axis {ax} holds {K} values ({row / 2**20:.1f} MiB), "
            f"more than one Dask chunk may hold ({limit / 2**20:.1f} MiB); raise it with "
            f"dask.config.set({{{MAX_ROW_BYTES_KEY!r}: ...}}) if the workers have the memory"
        )
    if x.numblocks[ax] == 1:
        return x
    return x.rechunk({i: (-1 if i == ax else "auto") for i in range(x.ndim)})


class _Call:
    """Picklable block function: ``_api.<name>(*blocks, **kw)`` with Numba threads set."""

    def __init__(self, name, **kw):
        self.name = name
        self.kw = kw
        self.threads = dask.config.get(THREADS_KEY, 1)

    def __call__(self, *blocks):
        fn = getattr(_api, self.name)
        if self.threads is None:
            return fn(*blocks, **self.kw)
        before = numba.get_num_threads()
        numba.set_num_threads(min(int(self.threads), numba.config.NUMBA_NUM_THREADS))
        try:
            return fn(*blocks, **self.kw)
        finally:
            numba.set_num_threads(before)


def _where(block_info, idx, drop=None):
    """Global position of ``idx`` in the block of argument 0 (without axis ``drop``)."""
    loc = block_info[0]["array-location"]
    if drop is not None:
        loc = loc[:drop] + loc[drop + 1 :]
    return tuple(int(lo + i) for (lo, _), i in zip(loc, idx))


def _check_labels_block(t, K, ignore, block_info=None):
    bad = (t < 0) | (t >= K)
    if ignore is not None:
        bad &= t != ignore
    if bool(bad.any()):
        i = np.unravel_index(int(np.flatnonzero(bad)[0]), t.shape)
        allowed = f"0 <= index < {K}"
        if ignore is not None:
            allowed += f" or ignore_index={ignore}"
        raise ValueError(
            f"target holds class index {t[i]} at batch position {_where(block_info, i)}; "
            f"expected {allowed}"
        )
    return t


def _check_dist_block(t, ax, K, block_info=None):
    neg = (t < 0).any(axis=ax)
    sums = t.sum(axis=ax, dtype=np.float64)
    bad_sum = ~(abs(sums - 1.0) <= 1e-6 * K)
    for bad, what in ((neg, "has a negative entry"), (bad_sum, None)):
        if bool(bad.any()):
            i = np.unravel_index(int(np.flatnonzero(bad)[0]), bad.shape)
            where = _where(block_info, i, drop=ax)
            if what is None:
                what = f"sums to {float(sums[i])!r}, not 1 (tolerance {1e-6 * K:g})"
            raise ValueError(f"target row at batch position {where} {what}")
    return t


def _check_01_block(y, block_info=None):
    if y.dtype.kind != "b":
        off = ~((y == 0) | (y == 1))
        if bool(off.any()):
            i = np.unravel_index(int(np.flatnonzero(off)[0]), y.shape)
            raise ValueError(f"labels must be 0 or 1; y{_where(block_info, i)} = {y[i]!r}")
    return y


def _check_nonempty_block(y, ax, block_info=None):
    empty = ~(y != 0).any(axis=ax)
    if bool(empty.any()):
        i = np.unravel_index(int(np.flatnonzero(empty)[0]), empty.shape)
        raise ValueError(
            f"label row at batch position {_where(block_info, i, drop=ax)} has no label"
        )
    return y


def _checked(x, fn, *args):
    return x.map_blocks(fn, *args, dtype=x.dtype, meta=x._meta)


# --------------------------------------------------------------------------- public functions
def sparsemax(
    z: Any, axis: int = -1, *, out: None = None, method: str = "auto", stream: None = None
) -> da.Array:
    """Lazy :func:`sparsemax_nb.sparsemax` of a Dask array (one NumPy-API call per block)."""
    _no_stream(stream)
    _no_out(out)
    z = _as_dask(z)
    dt = D.compute_dtype(z.dtype)
    D.method_code(method)
    ax = D.axis_index(axis, z.ndim)
    z = _one_chunk(z, ax, dt)
    return z.map_blocks(
        _Call("sparsemax", axis=ax, method=method),
        dtype=dt,
        meta=meta_from_array(z, z.ndim, dtype=dt),
    )


def sparsemax_threshold(
    z: Any, axis: int = -1, *, method: str = "auto", stream: None = None
) -> tuple[da.Array, da.Array]:
    """Lazy :func:`sparsemax_nb.sparsemax_threshold`: ``(tau, support_size)`` Dask arrays."""
    _no_stream(stream)
    z = _as_dask(z)
    dt = D.compute_dtype(z.dtype)
    D.method_code(method)
    ax = D.axis_index(axis, z.ndim)
    z = _one_chunk(z, ax, dt)
    return da.apply_gufunc(
        _Call("sparsemax_threshold", axis=-1, method=method),
        "(n)->(),()",
        z,
        axes=[(ax,), (), ()],
        output_dtypes=(dt, np.int64),
    )


def sparsemax_jvp(
    p: Any, v: Any, axis: int = -1, *, out: None = None, stream: None = None
) -> da.Array:
    """Lazy :func:`sparsemax_nb.sparsemax_jvp`."""
    _no_stream(stream)
    _no_out(out)
    p = _as_dask(p)
    v = _as_dask(v)
    dt = np.promote_types(D.compute_dtype(p.dtype, "p"), D.compute_dtype(v.dtype, "v"))
    if p.shape != v.shape:
        raise ValueError(f"p and v must have the same shape; got {p.shape} and {v.shape}")
    ax = D.axis_index(axis, v.ndim)
    p = _one_chunk(p, ax, dt)
    v = v.rechunk(p.chunks)
    return da.apply_gufunc(
        _Call("sparsemax_jvp", axis=-1),
        "(n),(n)->(n)",
        p,
        v,
        axes=[(ax,), (ax,), (ax,)],
        output_dtypes=dt,
    )


def _loss(z, target, axis, reduction, ignore_index, method, want_loss, want_grad):
    z = _as_dask(z)
    dt = D.compute_dtype(z.dtype)
    D.method_code(method)
    if reduction not in D.REDUCTIONS:
        raise ValueError(f"reduction must be one of 'none', 'sum', 'mean'; got {reduction!r}")
    ax = D.axis_index(axis, z.ndim)
    batch = z.shape[:ax] + z.shape[ax + 1 :]
    K = z.shape[ax]
    t = _as_dask(target)
    z = _one_chunk(z, ax, dt)
    if t.dtype.kind in "iu":
        if t.shape != batch:
            raise ValueError(
                f"class-index target must have the batch shape {batch}, got {t.shape} "
                "(for 0/1 label arrays of z's shape, use labels_to_proportions)"
            )
        if ignore_index is not None:
            ignore_index = int(np.asarray(ignore_index).item())
        t = t.rechunk(z.chunks[:ax] + z.chunks[ax + 1 :])  # blocks aligned with z's rows
        t = _checked(t, _check_labels_block, K, ignore_index)
        t_core = ()
        if ignore_index is None:
            n_valid = int(np.prod(batch, dtype=np.int64))
        else:
            n_valid = (t != ignore_index).sum()
    elif t.dtype.kind == "f":
        if ignore_index is not None:
            raise ValueError("ignore_index applies to class-index targets, not distributions")
        if t.shape != z.shape:
            raise ValueError(
                f"a float target holds one distribution per row: shape {z.shape} expected, "
                f"got {t.shape}"
            )
        t = _checked(t.rechunk(z.chunks), _check_dist_block, ax, K)
        t_core = (ax,)
        n_valid = int(np.prod(batch, dtype=np.int64))
    else:
        raise TypeError(
            f"target has dtype {t.dtype}; expected integer class indices or float "
            "distributions (use labels_to_proportions for 0/1 label arrays)"
        )
    t_sig = "(n)" if t_core else "()"
    kw = dict(axis=-1, reduction="none", ignore_index=ignore_index, method=method)
    if want_grad:
        loss, grad = da.apply_gufunc(
            _Call("sparsemax_loss_and_grad", **kw),
            f"(n),{t_sig}->(),(n)",
            z,
            t,
            axes=[(ax,), t_core, (), (ax,)],
            output_dtypes=(dt, dt),
        )
    else:
        loss = da.apply_gufunc(
            _Call("sparsemax_loss", **kw),
            f"(n),{t_sig}->()",
            z,
            t,
            axes=[(ax,), t_core, ()],
            output_dtypes=dt,
        )
        grad = None
    if reduction == "none":
        return loss, grad
    # Sums in float64 (as the NumPy API), per block and then across blocks.
    total = loss.sum(dtype=np.float64)
    if reduction == "sum":
        return total.astype(dt), grad
    if isinstance(n_valid, int):
        mean = total / n_valid if n_valid else da.full((), np.nan)
        scale = 1.0 / n_valid if n_valid else 0.0
    else:  # lazily counted rows not ignored; no rows left gives NaN (and a zero gradient)
        mean = da.where(n_valid > 0, total / da.maximum(n_valid, 1), np.nan)
        scale = da.where(n_valid > 0, 1.0 / da.maximum(n_valid, 1), 0.0)
    if grad is not None:
        # float64 product, one rounding to dt (float32 results may differ from the NumPy
        # API by one unit in the last place: that one scales before its single rounding).
        grad = (grad.astype(np.float64) * scale).astype(dt)
    return mean.astype(dt), grad


def sparsemax_loss(
    z: Any,
    target: Any,
    axis: int = -1,
    *,
    reduction: str = "none",
    ignore_index: Optional[int] = None,
    method: str = "auto",
    stream: None = None,
) -> da.Array:
    """Lazy :func:`sparsemax_nb.sparsemax_loss`; ``"sum"``/``"mean"`` give a 0-d Dask array."""
    _no_stream(stream)
    return _loss(z, target, axis, reduction, ignore_index, method, True, False)[0]


def sparsemax_loss_grad(
    z: Any,
    target: Any,
    axis: int = -1,
    *,
    reduction: str = "none",
    ignore_index: Optional[int] = None,
    out: None = None,
    method: str = "auto",
    stream: None = None,
) -> da.Array:
    """Lazy :func:`sparsemax_nb.sparsemax_loss_grad`."""
    _no_stream(stream)
    _no_out(out)
    return _loss(z, target, axis, reduction, ignore_index, method, False, True)[1]


def sparsemax_loss_and_grad(
    z: Any,
    target: Any,
    axis: int = -1,
    *,
    reduction: str = "none",
    ignore_index: Optional[int] = None,
    method: str = "auto",
    stream: None = None,
) -> tuple[da.Array, da.Array]:
    """Lazy :func:`sparsemax_nb.sparsemax_loss_and_grad`: ``(loss, grad)``."""
    _no_stream(stream)
    return _loss(z, target, axis, reduction, ignore_index, method, True, True)


def labels_to_proportions(y: Any, axis: int = -1, *, stream: None = None) -> da.Array:
    """Lazy :func:`sparsemax_nb.labels_to_proportions`."""
    _no_stream(stream)
    y = _as_dask(y)
    dt = D.compute_dtype(y.dtype, "y")
    ax = D.axis_index(axis, y.ndim)
    y = _one_chunk(y, ax, dt)
    y = _checked(_checked(y, _check_01_block), _check_nonempty_block, ax)
    return y.map_blocks(
        _Call("labels_to_proportions", axis=ax),
        dtype=dt,
        meta=meta_from_array(y, y.ndim, dtype=dt),
    )
