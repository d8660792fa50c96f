"""How an array worked along ``axis`` is laid out for the kernels (a leaf: imports NumPy).

The host kernels see a C-contiguous native ``(rows, K)`` array; the batch axes are
everything but ``axis``, in C order. :class:`Output` decides whether a kernel may write
the caller's ``out`` directly or must go through a scratch array.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ._checks import check_out

Shape = tuple[int, ...]


def batch_shape(shape: Sequence[int], ax: int) -> Shape:
    """``shape`` without axis ``ax``."""
    shape = tuple(shape)
    return shape[:ax] + shape[ax + 1:]


def rows_shape(shape: Sequence[int], ax: int) -> tuple[int, int]:
    """``(rows, K)`` for an array of ``shape`` worked along ``ax``."""
    K = shape[ax]
    rows = 1
    for i, s in enumerate(shape):
        if i != ax:
            rows *= s
    return rows, K


def split(shape: Sequence[int], ax: int) -> tuple[int, int, int]:
    """``(outer, K, inner)``: a C-contiguous array seen as three axes, ``axis`` the middle."""
    outer = 1
    for s in shape[:ax]:
        outer *= s
    inner = 1
    for s in shape[ax + 1:]:
        inner *= s
    return outer, shape[ax], inner


def rows_view(a: np.ndarray, ax: int, dtype: np.dtype) -> np.ndarray:
    """``a`` with ``ax`` last, as a C-contiguous native ``(rows, K)`` array of ``dtype``.

    A view when ``a`` is already laid out that way, else one copy.
    """
    if ax != a.ndim - 1:
        a = np.moveaxis(a, ax, -1)
    elif a.ndim == 2 and a.dtype == dtype and a.flags.c_contiguous:
        return a  # already the kernels' layout (the common case of small calls)
    z2 = np.ascontiguousarray(a, dtype=dtype)
    return z2.reshape(rows_shape(a.shape, a.ndim - 1))


class Output:
    """Where a kernel writes a full-shape result, and how it reaches the caller.

    The kernel gets ``self.rows``, a C-contiguous ``(rows, K)`` array. When the caller's
    ``out`` can be written directly (C-contiguous native, ``axis`` last, and no overlap
    with any input other than being that input itself) ``rows`` is a view of it; otherwise
    the kernel writes a scratch array that :meth:`finish` copies into place.
    """

    __slots__ = ("rows", "result", "_dest")

    def __init__(self, out: np.ndarray | None, shape: Shape, dtype: np.dtype, ax: int,
                 inputs: Sequence[np.ndarray], name: str = "out") -> None:
        n_rows_shape = rows_shape(shape, ax)
        self._dest: np.ndarray | None = None
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

    def finish(self) -> np.ndarray:
        if self._dest is not None:
            np.copyto(self._dest, self.rows.reshape(self._dest.shape))
        return self.result


def _same_or_apart(a: np.ndarray, b: np.ndarray) -> bool:
    """True if ``a`` and ``b`` are the same memory laid out the same way, or do not overlap.

    Every kernel reads an element before it writes the same element, so the exact input
    is a safe output; a shifted or reversed overlap is not.
    """
    if not np.may_share_memory(a, b):
        return True
    return bool(
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape
        and a.strides == b.strides
    )
