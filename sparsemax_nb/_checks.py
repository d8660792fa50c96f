"""Argument rules and every error message of the package (a leaf: imports only NumPy).

The public functions (:mod:`sparsemax_nb.api`) apply the rules that need no data (dtype,
axis, method, reduction, ``ignore_index``, shapes) once, before any backend runs. The
rules that need the data (class indices in range, target rows that are distributions,
0/1 labels) run in each backend, on its own kind of array, and take their messages from
the ``*_error`` functions here, so a rule reads the same whatever the backend.

The rules themselves are stated for users in ``docs/contract.md``.
"""

from __future__ import annotations

import operator
from typing import Any, Sequence

import numpy as np
from numpy.exceptions import AxisError

try:
    from numpy.lib.array_utils import normalize_axis_index
except ImportError:  # NumPy < 2
    from numpy.core.multiarray import normalize_axis_index  # type: ignore[no-redef]

# Method codes passed to the kernels.
AUTO = -1
SORT = 0
SELECT = 1
METHODS = {"auto": AUTO, "sort": SORT, "select": SELECT}
REDUCTIONS = ("none", "sum", "mean")

Shape = tuple[int, ...]


# --------------------------------------------------------------------------- no data needed
_COMPUTE_DTYPE: dict[Any, np.dtype] = {}


def compute_dtype(dt: np.dtype, name: str = "z") -> np.dtype:
    """The dtype a kernel computes and returns in, for an input of dtype ``dt``.

    float32 and float64 stay; float16 computes in float32; bool and integers in float64.
    Every other kind (complex, object, strings, datetimes) and ``longdouble`` (whose extra
    precision would be dropped silently) is a ``TypeError`` naming the dtype.
    """
    hit = _COMPUTE_DTYPE.get(dt)
    if hit is not None:
        return hit
    dt = np.dtype(dt)
    if dt.kind == "f" and dt.itemsize in (2, 4, 8):
        _COMPUTE_DTYPE[dt] = np.dtype(np.float32 if dt.itemsize <= 4 else np.float64)
        return _COMPUTE_DTYPE[dt]
    if dt.kind in "biu":
        _COMPUTE_DTYPE[dt] = np.dtype(np.float64)
        return _COMPUTE_DTYPE[dt]
    if dt.kind == "f":
        if dt.itemsize <= 4:
            return np.dtype(np.float32)
        if dt.itemsize == 8:
            return np.dtype(np.float64)
        raise TypeError(
            f"sparsemax_nb: {name} has dtype {dt}; its extra precision would be lost: "
            "convert it to float64 first (z.astype(numpy.float64))"
        )
    if dt.kind in "biu":
        return np.dtype(np.float64)
    raise TypeError(
        f"sparsemax_nb: {name} has dtype {dt}; expected a real floating, integer or bool array"
    )


def host_array(x: Any, name: str = "z") -> np.ndarray:
    """``numpy.asarray(x)``, refusing inputs whose meaning ``asarray`` would lose.

    A ``numpy.ma`` masked array would lose its mask and a ``scipy.sparse`` matrix becomes
    a 0-d object array: both are refused with a message that says what to pass instead.
    """
    if type(x) is np.ndarray:
        return x
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"sparsemax_nb: {name} is a numpy.ma masked array, whose mask would be ignored; "
            f"pass {name}.filled(-numpy.inf) to give masked entries probability 0"
        )
    mod = type(x).__module__
    if mod.startswith("scipy.sparse"):
        raise TypeError(
            f"sparsemax_nb: {name} is a scipy.sparse {type(x).__name__}; pass a dense array "
            f"({name}.toarray()): an absent entry is a score of 0, not a masked one"
        )
    return np.asarray(x)


def axis_index(axis: Any, ndim: int) -> int:
    """``axis`` as a non-negative index into ``ndim`` axes."""
    if type(axis) is int and -ndim <= axis < ndim:
        return axis % ndim
    if ndim == 0:
        raise AxisError("sparsemax_nb works along an axis; a 0-d input has none")
    if isinstance(axis, (bool, np.bool_)) or axis is None:
        raise TypeError(f"axis must be an integer; got {_show(axis)}")
    try:
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an integer; got {_show(axis)}") from None
    return int(normalize_axis_index(ax, ndim))


def method_code(method: Any) -> int:
    """The kernel code of ``method``."""
    try:
        return METHODS[method]
    except (KeyError, TypeError):
        raise ValueError(
            f"method must be one of 'auto', 'sort', 'select'; got {_show(method)}"
        ) from None


def pick_method(code: int, K: int) -> int:
    """``method="auto"``: select at every K (sort/select timings in the README, "API")."""
    if code >= 0:
        return code
    return SELECT


def check_reduction(reduction: Any) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction must be one of 'none', 'sum', 'mean'; got {_show(reduction)}"
        )
    return reduction


def check_ignore_index(ignore_index: Any) -> int | None:
    """``None`` or a Python int; bools and non-integral numbers are refused."""
    if ignore_index is None:
        return None
    if isinstance(ignore_index, (bool, np.bool_)):
        raise TypeError(f"ignore_index must be an integer or None; got {_show(ignore_index)}")
    try:
        return int(operator.index(ignore_index))
    except TypeError:
        raise TypeError(
            f"ignore_index must be an integer or None; got {_show(ignore_index)}"
        ) from None


def same_shape(shape_a: Shape, shape_b: Shape, names: str = "p and v") -> None:
    if not _dims_match(tuple(shape_a), tuple(shape_b)):
        raise ValueError(
            f"{names} must have the same shape; got {tuple(shape_a)} and {tuple(shape_b)}"
        )


def _dims_match(a: Shape, b: Shape) -> bool:
    """Equal shapes, where an unknown (NaN) length, as Dask has, matches any length."""
    if a == b:
        return True
    return len(a) == len(b) and all(x == y or x != x or y != y for x, y in zip(a, b))


def target_kind(t_dtype: np.dtype, z_shape: Shape, t_shape: Shape, batch: Shape,
                ignore_index: int | None) -> str:
    """``"labels"`` or ``"dist"`` for a loss target, after its shape and dtype rules."""
    kind = np.dtype(t_dtype).kind
    if kind in "iu":
        if not _dims_match(tuple(t_shape), tuple(batch)):
            raise ValueError(
                f"class-index target must have the batch shape {tuple(batch)}, got "
                f"{tuple(t_shape)} (for 0/1 label arrays of z's shape, use "
                "labels_to_proportions)"
            )
        return "labels"
    if kind == "f":
        if ignore_index is not None:
            raise ValueError("ignore_index applies to class-index targets, not distributions")
        if not _dims_match(tuple(t_shape), tuple(z_shape)):
            raise ValueError(
                f"a float target holds one distribution per row: shape {tuple(z_shape)} "
                f"expected, got {tuple(t_shape)}"
            )
        return "dist"
    raise TypeError(
        f"target has dtype {np.dtype(t_dtype)}; expected integer class indices or float "
        "distributions (use labels_to_proportions for 0/1 label arrays)"
    )


def check_out_shape_dtype(out_shape: Shape, out_dtype: np.dtype, shape: Shape,
                          dtype: np.dtype, name: str = "out") -> None:
    if tuple(out_shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(out_shape)}; expected {tuple(shape)}")
    if np.dtype(out_dtype) != np.dtype(dtype):
        raise TypeError(f"{name} has dtype {np.dtype(out_dtype)}; expected {np.dtype(dtype)}")


def check_out(out: Any, shape: Shape, dtype: np.dtype, name: str = "out") -> None:
    """A host ``out=``: an ndarray of the result's shape and dtype, writeable."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    check_out_shape_dtype(out.shape, out.dtype, shape, dtype, name)
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")


def no_stream_error() -> TypeError:
    return TypeError(
        "stream= applies to GPU arrays (CuPy, Numba device arrays) only; "
        "these arguments are host arrays"
    )


def mixed_arrays_error(kinds: Sequence[str]) -> TypeError:
    return TypeError(
        "sparsemax_nb: the arguments mix array kinds (" + ", ".join(kinds) + "); pass "
        "arrays of one kind (move them with cupy.asarray / numba.cuda.to_device / .get())"
    )


def unsupported_mapping_error(backend: str, mapping: str) -> NotImplementedError:
    return NotImplementedError(f"the {backend} backend has no kernels for {mapping} yet")


def unsupported_op_error(backend: str, what: str) -> NotImplementedError:
    return NotImplementedError(
        f"the {backend} backend has no {what}; call it with NumPy (host) arrays"
    )


# --------------------------------------------------------------------------- data rules
def position(flat_index: int, batch: Shape) -> tuple[int, ...]:
    """The batch position of row ``flat_index`` of a C-ordered batch."""
    return tuple(int(i) for i in np.unravel_index(int(flat_index), batch)) if batch else ()


def bad_label_error(value: Any, where: tuple[int, ...], K: int,
                    ignore_index: int | None) -> ValueError:
    allowed = f"0 <= index < {K}"
    if ignore_index is not None:
        allowed += f" or ignore_index={ignore_index}"
    return ValueError(
        f"target holds class index {_show(value)} at batch position {tuple(where)}; "
        f"expected {allowed}"
    )


def negative_target_error(where: tuple[int, ...]) -> ValueError:
    return ValueError(f"target row at batch position {tuple(where)} has a negative entry")


def target_sum_error(where: tuple[int, ...], total: Any, K: int) -> ValueError:
    return ValueError(
        f"target row at batch position {tuple(where)} sums to {_show(total)}, not 1 "
        f"(tolerance {dist_tolerance(K):g})"
    )


def dist_tolerance(K: int) -> float:
    """How far from 1 a target row may sum."""
    return 1e-6 * K


def not_01_error(where: tuple[int, ...], value: Any) -> ValueError:
    return ValueError(f"labels must be 0 or 1; y{tuple(where)} = {_show(value)}")


def empty_label_row_error(where: tuple[int, ...]) -> ValueError:
    return ValueError(f"label row at batch position {tuple(where)} has no label")


# NumPy host versions of the data rules (the CPU backend, and Dask blocks on the host).
def check_labels(t: np.ndarray, batch: Shape, K: int, ignore_index: int | None,
                 offset: Sequence[int] | None = None) -> None:
    bad = (t < 0) | (t >= K)
    if ignore_index is not None:
        bad &= t != ignore_index
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise bad_label_error(t.ravel()[i], _shift(position(i, t.shape), offset), K,
                              ignore_index)


def check_distributions(t: np.ndarray, ax: int, offset: Sequence[int] | None = None) -> None:
    K = t.shape[ax]
    batch = t.shape[:ax] + t.shape[ax + 1:]
    neg = (t < 0).any(axis=ax)
    if neg.any():
        i = int(np.flatnonzero(neg.ravel())[0])
        raise negative_target_error(_shift(position(i, batch), offset))
    sums = np.sum(t, axis=ax, dtype=np.float64)
    bad = ~(np.abs(sums - 1.0) <= dist_tolerance(K))
    if bad.any():
        i = int(np.flatnonzero(np.ravel(bad))[0])
        raise target_sum_error(_shift(position(i, batch), offset), np.ravel(sums)[i], K)


def check_01(y: np.ndarray, offset: Sequence[int] | None = None) -> None:
    if y.dtype.kind == "b":
        return
    off = ~((y == 0) | (y == 1))
    if off.any():
        i = position(int(np.flatnonzero(off.ravel())[0]), y.shape)
        raise not_01_error(_shift(i, offset), y[i])


def check_nonempty(sums: np.ndarray, offset: Sequence[int] | None = None) -> None:
    """``sums``: the label count of each row, of the batch shape."""
    empty = sums == 0
    if empty.any():
        i = int(np.flatnonzero(np.ravel(empty))[0])
        raise empty_label_row_error(_shift(position(i, sums.shape), offset))


# --------------------------------------------------------------------------- helpers
def _shift(where: tuple[int, ...], offset: Sequence[int] | None) -> tuple[int, ...]:
    if offset is None:
        return where
    return tuple(int(a + b) for a, b in zip(where, offset))


def _show(x: Any) -> str:
    """``repr`` without NumPy 2's scalar wrappers (``2.0``, not ``np.float64(2.0)``)."""
    if isinstance(x, np.generic):
        x = x.item()
    return repr(x)
