"""The Dask backend: lazy operations, one call of the inner backend per block.

:func:`sparsemax_nb.backends.pick` sends any call with a Dask array argument here. The
operations have the names and arguments of the other backends' and return lazy
``dask.array.Array`` objects (a 0-d one for ``reduction="sum"/"mean"``). Each block is
computed by the backend of the block's own type (:mod:`.cpu` for NumPy blocks, :mod:`.cuda`
for CuPy blocks), with the arguments already checked by :mod:`sparsemax_nb.api`.

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
Shapes, dtypes, ``axis``, ``method`` and ``reduction`` are checked when the call is made
(by the public functions). Checks that need the data (class indices in range, target rows that are distributions,
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

from .. import _checks as C
from . import kind as _kind_of

MAX_ROW_BYTES_KEY = "sparsemax_nb.max-row-bytes"
THREADS_KEY = "sparsemax_nb.threads-per-block"
DEFAULT_MAX_ROW_BYTES = "256MiB"
STREAMS = False


# --------------------------------------------------------------------------- helpers
def asarray(x: Any, name: str = "z") -> da.Array:
    """The Dask array of an argument (host data becomes one chunk)."""
    return x if isinstance(x, da.Array) else da.asarray(x)


def refuse_out(out: Any) -> None:
    if out is not None:
        raise TypeError(
            "out= is not supported with Dask arrays: the result is lazy; write it with "
            "dask.array.store or .compute()"
        )


def stream_error() -> TypeError:
    return TypeError(
        "stream= applies to GPU arrays only; the blocks of a CuPy-backed Dask array run "
        "on CuPy's current stream"
    )


def refuse_stream(stream: Any) -> None:
    if stream is not None:
        raise stream_error()


def _max_row_bytes() -> int:
    v = dask.config.get(MAX_ROW_BYTES_KEY, DEFAULT_MAX_ROW_BYTES)
    return parse_bytes(v) if isinstance(v, str) else int(v)


def _one_chunk(x: da.Array, ax: int, dt: np.dtype) -> da.Array:
    """``x`` with axis ``ax`` in a single chunk (checked against the row-size limit)."""
    K = x.shape[ax]
    if K != K:  # NaN: unknown chunk sizes along the row itself
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
    if any(c != c for cs in x.chunks for c in cs):
        # Unknown chunk sizes elsewhere: "auto" cannot split those axes; keep their chunks.
        return x.rechunk({ax: -1})
    return x.rechunk({i: (-1 if i == ax else "auto") for i in range(x.ndim)})


def _inner(block: Any) -> Any:
    import importlib

    return importlib.import_module(_kind_of(block) or "sparsemax_nb.backends.cpu")


class _Call:
    """Picklable block function: the inner backend's ``op(mapping, *blocks, **kw)`` with
    Numba's thread count set for the block."""

    def __init__(self, op: str, mapping: Optional[str], **kw: Any) -> None:
        self.op = op
        self.mapping = mapping
        self.kw = kw
        self.threads = dask.config.get(THREADS_KEY, 1)

    def __call__(self, *blocks: Any) -> Any:
        fn = getattr(_inner(blocks[0]), self.op)
        args = blocks if self.mapping is None else (self.mapping, *blocks)
        if self.threads is None:
            return fn(*args, **self.kw)
        before = numba.get_num_threads()
        limit = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
        numba.set_num_threads(min(int(self.threads), limit))
        try:
            return fn(*args, **self.kw)
        finally:
            numba.set_num_threads(before)


def _offset(block_info: Any, drop: Optional[int] = None) -> Optional[tuple[int, ...]]:
    loc = block_info[0]["array-location"]
    if drop is not None:
        loc = loc[:drop] + loc[drop + 1 :]
    if any(lo != lo for lo, _ in loc):
        return None  # unknown chunk sizes: the position is the one within the block
    return tuple(int(lo) for lo, _ in loc)


def _check_labels_block(t: Any, K: int, ignore: Optional[int], block_info: Any = None) -> Any:
    C.check_labels(np.asarray(t), t.shape, K, ignore, _offset(block_info))
    return t


def _check_dist_block(t: Any, ax: int, block_info: Any = None) -> Any:
    C.check_distributions(np.asarray(t), ax, _offset(block_info, drop=ax))
    return t


def _check_01_block(y: Any, block_info: Any = None) -> Any:
    C.check_01(np.asarray(y), _offset(block_info))
    return y


def _check_nonempty_block(y: Any, ax: int, block_info: Any = None) -> Any:
    C.check_nonempty((np.asarray(y) != 0).sum(axis=ax), _offset(block_info, drop=ax))
    return y


def _checked(x: da.Array, fn: Any, *args: Any) -> da.Array:
    return x.map_blocks(fn, *args, dtype=x.dtype, meta=x._meta)


def _blockwise(fn: "_Block", z: da.Array, ax: int, others: list[tuple[Any, str]],
               out: str, dt: Any) -> da.Array:
    """``fn`` over aligned blocks: ``z`` (core axis ``ax`` in one chunk) and ``others``, each
    ``(array, "rows" | "batch")``. ``out``: ``"rows"`` (z's shape), ``"rows+1"`` (one more
    entry along ``ax``), ``"batch"`` or ``"batch+2"`` (a new last axis of 2).

    ``blockwise`` rather than ``apply_gufunc``: it pairs blocks by position, so arrays whose
    chunk sizes are unknown (NaN, after boolean indexing) work as long as they line up.
    """
    letters = "abcdefghijklmnopqrstuvwxyz"[: z.ndim]
    core = letters[ax]
    bi = letters.replace(core, "")
    args: list[Any] = [z, letters]
    for a, kind in others:
        args += [a, letters if kind == "rows" else bi]
    kw: dict[str, Any] = {}
    if out == "rows":
        ind = letters
    elif out == "rows+1":
        ind = letters
        kw["adjust_chunks"] = {core: int(z.shape[ax]) + 1}
    elif out == "batch":
        ind = bi
    else:
        ind = bi + "Z"
        kw["new_axes"] = {"Z": 2}
    meta = meta_from_array(z, len(ind), dtype=dt)
    return da.blockwise(fn, ind, *args, dtype=dt, concatenate=True, meta=meta, **kw)


def _theta_arg(theta: np.ndarray, z: da.Array, ax: int) -> list[tuple[Any, str]]:
    """``theta`` as a blockwise argument: none for one value, else a batch-shaped array."""
    if np.size(theta) == 1:
        return []
    batch_chunks = z.chunks[:ax] + z.chunks[ax + 1 :]
    return [(da.asarray(theta).rechunk(batch_chunks), "batch")]


class _Block:
    """The block function of one operation: blocks keep their axes (``ax`` is the core)."""

    def __init__(self, op: str, mapping: str, ax: int, **kw: Any) -> None:
        self.theta_given = np.size(kw["theta"]) > 1
        self.call = _Call(op, mapping)
        self.op = op
        self.ax = ax
        self.kw = kw

    def __call__(self, *blocks: Any) -> Any:
        kw = dict(self.kw)
        ax = self.ax
        if self.theta_given:
            kw["theta"] = blocks[-1]
            blocks = blocks[:-1]
        if self.op == "forward":
            return self.call(blocks[0], ax, None, kw["code"], kw["theta"], kw["dt"])
        if self.op == "jvp":
            return self.call(blocks[0], blocks[1], ax, None, kw["theta"], kw["dt"])
        if self.op == "theta_vjp":
            return self.call(blocks[0], blocks[1], ax, kw["theta"], kw["dt"])
        if self.op == "threshold":
            tau, k = self.call(blocks[0], ax, kw["code"], kw["theta"], kw["dt"])
            xp = _array_module(tau)
            return xp.stack([tau.astype(xp.float64), k.astype(xp.float64)], axis=-1)
        per_row, grad = self.call(blocks[0], blocks[1], kw["kind"], ax, "none",
                                  kw["ignore_index"], kw["code"], kw["theta"], kw["dt"],
                                  kw["want_grad"], None, None, True)
        if not kw["want_grad"]:
            return per_row
        xp = _array_module(grad)
        return xp.concatenate([grad, xp.expand_dims(per_row, ax)], axis=ax)


def _array_module(x: Any) -> Any:
    return x.__array_namespace__() if hasattr(x, "__array_namespace__") else np


def _take(x: da.Array, ax: int, index: Any) -> da.Array:
    return x[(slice(None),) * ax + (index,)]


# --------------------------------------------------------------------------- operations
def forward(mapping: str, z: da.Array, ax: int, out: Any, code: int, theta: np.ndarray,
            dt: np.dtype, stream: Any = None) -> da.Array:
    refuse_stream(stream)
    refuse_out(out)
    z = _one_chunk(z, ax, dt)
    fn = _Block("forward", mapping, ax, code=code, theta=theta, dt=dt)
    return _blockwise(fn, z, ax, _theta_arg(theta, z, ax), "rows", dt)


def threshold(mapping: str, z: da.Array, ax: int, code: int, theta: np.ndarray,
              dt: np.dtype, stream: Any = None) -> tuple[da.Array, da.Array]:
    refuse_stream(stream)
    z = _one_chunk(z, ax, dt)
    fn = _Block("threshold", mapping, ax, code=code, theta=theta, dt=dt)
    # tau and k travel together as float64 (exact for both: tau is float32 or float64,
    # k < 2^53) and are split lazily.
    both = _blockwise(fn, z, ax, _theta_arg(theta, z, ax), "batch+2", np.float64)
    return both[..., 0].astype(dt), both[..., 1].astype(np.int64)


def jvp(mapping: str, p: da.Array, v: da.Array, ax: int, out: Any, theta: np.ndarray,
        dt: np.dtype, stream: Any = None) -> da.Array:
    refuse_stream(stream)
    refuse_out(out)
    p = _one_chunk(p, ax, dt)
    v = _one_chunk(v, ax, dt)
    fn = _Block("jvp", mapping, ax, theta=theta, dt=dt)
    return _blockwise(fn, p, ax, [(v, "rows")] + _theta_arg(theta, p, ax), "rows", dt)


def theta_vjp(mapping: str, p: da.Array, g: da.Array, ax: int, theta: np.ndarray,
              dt: np.dtype, stream: Any = None) -> da.Array:
    refuse_stream(stream)
    p = _one_chunk(p, ax, dt)
    g = _one_chunk(g, ax, dt)
    fn = _Block("theta_vjp", mapping, ax, theta=theta, dt=dt)
    return _blockwise(fn, p, ax, [(g, "rows")] + _theta_arg(theta, p, ax), "batch", dt)


def loss(mapping: str, z: da.Array, target: Any, kind: str, ax: int, reduction: str,
         ignore_index: Optional[int], code: int, theta: np.ndarray, dt: np.dtype,
         want_grad: bool, out: Any, stream: Any = None, checked: bool = False) -> tuple[Any, Any]:
    refuse_stream(stream)
    refuse_out(out)
    batch = z.shape[:ax] + z.shape[ax + 1 :]
    K = z.shape[ax]
    t = asarray(target)
    z = _one_chunk(z, ax, dt)
    known = all(b == b for b in batch)
    if kind == "labels":
        if known:  # blocks aligned with z's rows (unknown sizes must already line up)
            t = t.rechunk(z.chunks[:ax] + z.chunks[ax + 1 :])
        t = _checked(t, _check_labels_block, K, ignore_index)
        t_kind = "batch"
    else:
        t = _one_chunk(t, ax, t.dtype) if not known else t.rechunk(z.chunks)
        t = _checked(t, _check_dist_block, ax)
        t_kind = "rows"
    if kind == "labels" and ignore_index is not None:
        n_valid: Any = (t != ignore_index).sum()
    elif known:
        n_valid = int(np.prod(batch, dtype=np.int64))
    else:  # unknown chunk sizes: count the rows lazily
        n_valid = _count_rows(z, ax)
    fn = _Block("loss", mapping, ax, kind=kind, ignore_index=ignore_index, code=code,
                theta=theta, dt=dt, want_grad=want_grad)
    others = [(t, t_kind)] + _theta_arg(theta, z, ax)
    if want_grad:
        both = _blockwise(fn, z, ax, others, "rows+1", dt)
        grad: Any = _take(both, ax, slice(0, int(K)))
        per_row = _take(both, ax, int(K))
    else:
        per_row = _blockwise(fn, z, ax, others, "batch", dt)
        grad = None
    if reduction == "none":
        return per_row, grad
    # Sums in float64 (as the host backend), per block and then across blocks.
    total = per_row.sum(dtype=np.float64)
    if reduction == "sum":
        return total.astype(dt), grad
    if isinstance(n_valid, int):
        mean = total / n_valid if n_valid else da.full((), np.nan)
        scale: Any = 1.0 / n_valid if n_valid else 0.0
    else:  # lazily counted rows; no rows left gives NaN (and a zero gradient)
        mean = da.where(n_valid > 0, total / da.maximum(n_valid, 1), np.nan)
        scale = da.where(n_valid > 0, 1.0 / da.maximum(n_valid, 1), 0.0)
    if grad is not None:
        # float64 product, one rounding to dt (float32 results may differ from the NumPy
        # API by one unit in the last place: that one scales before its single rounding).
        grad = (grad.astype(np.float64) * scale).astype(dt)
    return mean.astype(dt), grad


def _count_rows(z: da.Array, ax: int) -> da.Array:
    return da.ones_like(_take(z, ax, 0), dtype=np.int64).sum()


def proportions(y: da.Array, ax: int, dt: np.dtype, stream: Any = None,
                checked: bool = False) -> da.Array:
    refuse_stream(stream)
    y = _one_chunk(y, ax, dt)
    y = _checked(_checked(y, _check_01_block), _check_nonempty_block, ax)
    return da.map_blocks(
        _Call("proportions", None, ax=ax, dt=dt, checked=True),
        y,
        dtype=dt,
        meta=meta_from_array(y, y.ndim, dtype=dt),
    )
