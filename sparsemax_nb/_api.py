"""Public functions: thin wrappers over :mod:`sparsemax_nb._dispatch`."""

import operator

import numpy as np

from . import _dispatch as D


def _stream_kw(stream):
    """Forward ``stream`` to a backend only when given (the Dask backend takes none)."""
    return {} if stream is None else {"stream": stream}


def _no_stream(stream):
    if stream is not None:
        raise TypeError(
            "stream= applies to GPU arrays (CuPy, Numba device arrays) only; "
            "these arguments are host arrays"
        )


def sparsemax(
    z: "np.typing.ArrayLike",
    axis: int = -1,
    *,
    out: "np.typing.NDArray[np.floating] | None" = None,
    method: str = "auto",
    stream: object = None,
) -> "np.typing.NDArray[np.floating]":
    """Sparsemax: the Euclidean projection of each row of ``z`` onto the simplex.

    ``p = max(z - tau, 0)`` with ``tau`` such that ``p`` sums to 1 along ``axis``
    (Martins & Astudillo, 2016). Unlike softmax, ``p`` has exact zeros.

    Parameters
    ----------
    z : array_like
        Scores. float32 and float64 are computed in their own dtype (sums in float64);
        float16 is computed and returned as float32; bool and integers as float64.
    axis : int, optional
        The axis along which each distribution lies (default: the last). The other axes
        are batch axes.
    out : numpy.ndarray, optional
        Where to write the result: the shape of ``z`` and the result dtype. It may be ``z``
        itself (in place).
    method : {"auto", "sort", "select"}, optional
        How ``tau`` is found: ``"sort"`` (sort-based, O(K log K)), ``"select"`` (linear-time
        selection, O(K) in the worst case) or ``"auto"`` (the faster for the shape). All
        agree to rounding.
    stream : numba.cuda.Stream or cupy.cuda.Stream, optional
        GPU arrays only: the CUDA stream to queue the work on (default: CuPy's current
        stream for CuPy arrays, the default stream otherwise). ``TypeError`` with host
        arrays.

    Returns
    -------
    p : numpy.ndarray
        Non-negative, summing to 1 along ``axis``. A row holding NaN or ``+inf``, or only
        ``-inf``, gives a row of NaN; ``-inf`` entries of other rows give exact zeros.

    Raises
    ------
    TypeError
        For complex, object or string input, or an ``out`` of the wrong dtype.
    numpy.exceptions.AxisError
        For an ``axis`` out of range or a 0-d input.
    ValueError
        For an unknown ``method`` or an ``out`` of the wrong shape or read-only.

    Examples
    --------
    >>> import sparsemax_nb as sm
    >>> sm.sparsemax([-2.0, 0.0, 0.5])
    array([0.  , 0.25, 0.75])
    """
    backend = D.foreign(z, out)
    if backend is not None:
        return backend.sparsemax(z, axis, out=out, method=method, **_stream_kw(stream))
    _no_stream(stream)
    a, dt = D.as_array(z)
    code = D.method_code(method)
    ax = D.axis_index(axis, a.ndim)
    z2 = D.rows_view(a, ax, dt)
    o = D.Output(out, a.shape, dt, ax, (z2,))
    n, K = z2.shape
    if z2.size:
        D.run("forward", n, z2.size, z2, o.rows, D.pick_method(code, K))
    return o.finish()


def sparsemax_threshold(
    z: "np.typing.ArrayLike", axis: int = -1, *, method: str = "auto", stream: object = None
) -> "tuple[np.typing.NDArray[np.floating], np.typing.NDArray[np.int64]]":
    """The threshold ``tau`` and the support size ``k`` of sparsemax, per row.

    Parameters
    ----------
    z : array_like
        Scores, as for :func:`sparsemax`.
    axis : int, optional
        The axis along which each distribution lies (default: the last).
    method : {"auto", "sort", "select"}, optional
        As for :func:`sparsemax`.
    stream : numba.cuda.Stream or cupy.cuda.Stream, optional
        GPU arrays only: the CUDA stream to queue the work on (default: CuPy's current
        stream for CuPy arrays, the default stream otherwise). ``TypeError`` with host
        arrays.

    Returns
    -------
    tau : numpy.ndarray
        Shape of ``z`` without ``axis``, in the result dtype of ``z``:
        ``sparsemax(z) = max(z - tau, 0)``.
    support_size : numpy.ndarray of int64
        The number of non-zero entries of each row. A row that gives NaN (see
        :func:`sparsemax`), and every row when ``K = 0``, has ``tau = NaN`` and size 0.

    Examples
    --------
    >>> import sparsemax_nb as sm
    >>> sm.sparsemax_threshold([-2.0, 0.0, 0.5])
    (array(-0.25), array(2))
    """
    backend = D.foreign(z)
    if backend is not None:
        return backend.sparsemax_threshold(z, axis, method=method, **_stream_kw(stream))
    _no_stream(stream)
    a, dt = D.as_array(z)
    code = D.method_code(method)
    ax = D.axis_index(axis, a.ndim)
    z2 = D.rows_view(a, ax, dt)
    n, K = z2.shape
    tau = np.full(n, np.nan, dt)
    k = np.zeros(n, np.int64)
    if z2.size:
        D.run("threshold", n, z2.size, z2, tau, k, D.pick_method(code, K))
    batch = a.shape[:ax] + a.shape[ax + 1 :]
    return tau.reshape(batch), k.reshape(batch)


def sparsemax_jvp(
    p: "np.typing.ArrayLike",
    v: "np.typing.ArrayLike",
    axis: int = -1,
    *,
    out: "np.typing.NDArray[np.floating] | None" = None,
    stream: object = None,
) -> "np.typing.NDArray[np.floating]":
    """Jacobian-vector product of sparsemax at output ``p``: ``J(p) v``.

    ``J = diag(s) - s s^T / k`` with ``s`` the support of ``p`` and ``k = |s|``, so
    ``J v = s * (v - mean of v over the support)``. ``J`` is symmetric: this is also the
    vector-Jacobian product (the backward pass).

    Parameters
    ----------
    p : array_like
        A sparsemax output (only its support, ``p > 0``, is used).
    v : array_like
        The vector, same shape as ``p``. Entries of ``v`` outside the support do not
        affect the result.
    axis : int, optional
        The axis along which each distribution lies (default: the last).
    out : numpy.ndarray, optional
        Where to write the result; may be ``v`` or ``p`` itself.
    stream : numba.cuda.Stream or cupy.cuda.Stream, optional
        GPU arrays only: the CUDA stream to queue the work on (default: CuPy's current
        stream for CuPy arrays, the default stream otherwise). ``TypeError`` with host
        arrays.

    Returns
    -------
    numpy.ndarray
        Same shape as ``v``, in the dtype both inputs promote to (see :func:`sparsemax`).
        A row of ``p`` with a NaN or with no positive entry gives a row of NaN.

    Examples
    --------
    >>> import sparsemax_nb as sm
    >>> sm.sparsemax_jvp([0.0, 0.25, 0.75], [1.0, 2.0, 4.0])
    array([ 0., -1.,  1.])
    """
    backend = D.foreign(p, v, out)
    if backend is not None:
        return backend.sparsemax_jvp(p, v, axis, out=out, **_stream_kw(stream))
    _no_stream(stream)
    pa, dp = D.as_array(p, "p")
    va, dv = D.as_array(v, "v")
    dt = np.promote_types(dp, dv)
    if pa.shape != va.shape:
        raise ValueError(f"p and v must have the same shape; got {pa.shape} and {va.shape}")
    ax = D.axis_index(axis, va.ndim)
    p2 = D.rows_view(pa, ax, dt)
    v2 = D.rows_view(va, ax, dt)
    o = D.Output(out, va.shape, dt, ax, (p2, v2))
    n, K = v2.shape
    if v2.size:
        D.run("jvp", n, v2.size, p2, v2, o.rows)
    return o.finish()


# --------------------------------------------------------------------------- the loss
def _loss(z, target, axis, reduction, ignore_index, method, want_grad, out):
    a, dt = D.as_array(z)
    code = D.method_code(method)
    if reduction not in D.REDUCTIONS:
        raise ValueError(f"reduction must be one of 'none', 'sum', 'mean'; got {reduction!r}")
    ax = D.axis_index(axis, a.ndim)
    batch = a.shape[:ax] + a.shape[ax + 1 :]
    K = a.shape[ax]
    t = np.asarray(target)
    if t.dtype.kind in "iu":
        labels, ignore, n_valid = _check_labels(t, batch, K, ignore_index)
        kind = "loss_labels"
    elif t.dtype.kind == "f":
        if ignore_index is not None:
            raise ValueError("ignore_index applies to class-index targets, not distributions")
        if t.shape != a.shape:
            raise ValueError(
                f"a float target holds one distribution per row: shape {a.shape} expected, "
                f"got {t.shape}"
            )
        _check_distributions(t, ax, batch)
        kind = "loss_dist"
        n_valid = int(np.prod(batch, dtype=np.int64))
    else:
        raise TypeError(
            f"target has dtype {t.dtype}; expected integer class indices or float "
            "distributions (use labels_to_proportions for 0/1 label arrays)"
        )
    z2 = D.rows_view(a, ax, dt)
    n = z2.shape[0]
    scale = 1.0
    if reduction == "mean":
        scale = 1.0 / n_valid if n_valid else 0.0
    if want_grad:
        o = D.Output(out, a.shape, dt, ax, (z2,), "out")
        grad_rows = o.rows
    else:
        grad_rows = np.empty((0, 0), dt)
    loss = np.empty(n, dt)
    m = D.pick_method(code, K)
    if n:
        if kind == "loss_labels":
            D.run(kind, n, z2.size, z2, labels, ignore, scale, loss, grad_rows, want_grad, m)
        else:
            q2 = D.rows_view(t, ax, dt)
            D.run(kind, n, z2.size, z2, q2, scale, loss, grad_rows, want_grad, m)
    if reduction == "none":
        loss_out = loss.reshape(batch)
    else:
        total = np.sum(loss, dtype=np.float64)
        if reduction == "mean":
            total = total / n_valid if n_valid else np.nan
        loss_out = dt.type(total)
    grad = o.finish() if want_grad else None
    return loss_out, grad


def _check_labels(t, batch, K, ignore_index):
    if t.shape != batch:
        raise ValueError(
            f"class-index target must have the batch shape {batch}, got {t.shape} "
            "(for 0/1 label arrays of z's shape, use labels_to_proportions)"
        )
    if ignore_index is not None:
        ignore_index = operator.index(ignore_index)
    bad = (t < 0) | (t >= K)
    if ignore_index is not None:
        bad &= t != ignore_index
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        where = np.unravel_index(i, batch) if batch else ()
        allowed = f"0 <= index < {K}"
        if ignore_index is not None:
            allowed += f" or ignore_index={ignore_index}"
        raise ValueError(
            f"target holds class index {t.ravel()[i]} at batch position {tuple(map(int, where))}; "
            f"expected {allowed}"
        )
    labels = np.ascontiguousarray(t, dtype=np.int64).reshape(-1)
    if ignore_index is None:
        # Labels are >= 0 here, so -1 never matches.
        return labels, np.int64(-1), labels.size
    return labels, np.int64(ignore_index), int(np.count_nonzero(labels != ignore_index))


def _check_distributions(t, ax, batch):
    K = t.shape[ax]
    neg = (t < 0).any(axis=ax)
    if neg.any():
        where = np.unravel_index(int(np.flatnonzero(neg.ravel())[0]), batch) if batch else ()
        raise ValueError(
            f"target row at batch position {tuple(map(int, where))} has a negative entry"
        )
    sums = np.sum(t, axis=ax, dtype=np.float64)
    bad = ~(np.abs(sums - 1.0) <= 1e-6 * K)
    if bad.any():
        i = int(np.flatnonzero(np.ravel(bad))[0])
        where = np.unravel_index(i, batch) if batch else ()
        raise ValueError(
            f"target row at batch position {tuple(map(int, where))} sums to "
            f"{np.ravel(sums)[i]!r}, not 1 (tolerance {1e-6 * K:g})"
        )


_LOSS_PARAMS = """    z : array_like
        Scores, as for :func:`sparsemax`.
    target : array_like
        Either integer class indices of the batch shape (``z``'s shape without ``axis``),
        or float distributions of ``z``'s shape (non-negative, each summing to 1 within
        ``1e-6 * K``).
    axis : int, optional
        The axis along which each distribution lies (default: the last).
    reduction : {"none", "sum", "mean"}, optional
        ``"none"`` gives one loss per row; ``"sum"`` their sum; ``"mean"`` their sum divided
        by the number of rows not ignored (NaN when every row is ignored).
    ignore_index : int, optional
        With class-index targets: rows whose index equals it have loss 0 and gradient 0,
        and do not count in the mean (like PyTorch's cross-entropy)."""


def sparsemax_loss(
    z: "np.typing.ArrayLike",
    target: "np.typing.ArrayLike",
    axis: int = -1,
    *,
    reduction: str = "none",
    ignore_index: "int | None" = None,
    method: str = "auto",
    stream: object = None,
) -> "np.typing.NDArray[np.floating] | np.floating":
    """The sparsemax loss of Martins & Astudillo (2016), eq. (15).

    ``L(z; q) = -q.z + 1/2 sum_{{j in S}} (z_j^2 - tau^2) + 1/2 ||q||^2``, computed as the
    equal and cancellation-free ``1/2 ||p - q||^2 + sum_{{j not in S}} q_j (tau - z_j)``.
    ``L >= 0``; for one-hot targets it is 0 iff the target's score leads the others by 1.

    Parameters
    ----------
{params}
    method : {{"auto", "sort", "select"}}, optional
        As for :func:`sparsemax`.
    stream : numba.cuda.Stream or cupy.cuda.Stream, optional
        GPU arrays only: the CUDA stream to queue the work on (default: CuPy's current
        stream for CuPy arrays, the default stream otherwise). ``TypeError`` with host
        arrays.

    Returns
    -------
    loss : numpy.ndarray or scalar
        One value per row (batch shape) for ``reduction="none"``, else a scalar of the
        result dtype. NaN rows of ``z`` give NaN; a ``-inf`` (masked) score gives no NaN,
        and an infinite loss only where the target puts mass on it.

    Raises
    ------
    ValueError
        For a class index out of range, a target row that is negative or does not sum to
        1, a target of the wrong shape, or an unknown ``reduction``.

    Examples
    --------
    >>> import sparsemax_nb as sm
    >>> float(sm.sparsemax_loss([-2.5, 1.2, 0.5], 0))
    3.7225
    """
    backend = D.foreign(z, target)
    if backend is not None:
        return backend.sparsemax_loss(
            z, target, axis, reduction=reduction, ignore_index=ignore_index, method=method,
            **_stream_kw(stream),
        )
    _no_stream(stream)
    return _loss(z, target, axis, reduction, ignore_index, method, False, None)[0]


def sparsemax_loss_grad(
    z: "np.typing.ArrayLike",
    target: "np.typing.ArrayLike",
    axis: int = -1,
    *,
    reduction: str = "none",
    ignore_index: "int | None" = None,
    out: "np.typing.NDArray[np.floating] | None" = None,
    method: str = "auto",
    stream: object = None,
) -> "np.typing.NDArray[np.floating]":
    """Gradient of :func:`sparsemax_loss` with respect to ``z``: ``sparsemax(z) - q``.

    Parameters
    ----------
{params}
    out : numpy.ndarray, optional
        Where to write the gradient (``z``'s shape and result dtype); may be ``z`` itself.
    method : {{"auto", "sort", "select"}}, optional
        As for :func:`sparsemax`.
    stream : numba.cuda.Stream or cupy.cuda.Stream, optional
        GPU arrays only: the CUDA stream to queue the work on (default: CuPy's current
        stream for CuPy arrays, the default stream otherwise). ``TypeError`` with host
        arrays.

    Returns
    -------
    numpy.ndarray
        ``z``'s shape: ``sparsemax(z) - q`` per row, 0 for ignored rows, divided by the
        number of rows not ignored for ``reduction="mean"``.

    Examples
    --------
    >>> import sparsemax_nb as sm
    >>> sm.sparsemax_loss_grad([-2.5, 1.2, 0.5], 0)
    array([-1.  ,  0.85,  0.15])
    """
    backend = D.foreign(z, target, out)
    if backend is not None:
        return backend.sparsemax_loss_grad(
            z, target, axis, reduction=reduction, ignore_index=ignore_index, out=out,
            method=method, **_stream_kw(stream),
        )
    _no_stream(stream)
    return _loss(z, target, axis, reduction, ignore_index, method, True, out)[1]


def sparsemax_loss_and_grad(
    z: "np.typing.ArrayLike",
    target: "np.typing.ArrayLike",
    axis: int = -1,
    *,
    reduction: str = "none",
    ignore_index: "int | None" = None,
    method: str = "auto",
    stream: object = None,
) -> "tuple[np.typing.NDArray[np.floating] | np.floating, np.typing.NDArray[np.floating]]":
    """The loss and its gradient from one pass over ``z`` (sparsemax runs once).

    Parameters
    ----------
{params}
    method : {{"auto", "sort", "select"}}, optional
        As for :func:`sparsemax`.
    stream : numba.cuda.Stream or cupy.cuda.Stream, optional
        GPU arrays only: the CUDA stream to queue the work on (default: CuPy's current
        stream for CuPy arrays, the default stream otherwise). ``TypeError`` with host
        arrays.

    Returns
    -------
    loss : numpy.ndarray or scalar
        As :func:`sparsemax_loss`.
    grad : numpy.ndarray
        As :func:`sparsemax_loss_grad`.

    Examples
    --------
    >>> import sparsemax_nb as sm
    >>> loss, grad = sm.sparsemax_loss_and_grad([[-2.5, 1.2, 0.5]], [0], reduction="mean")
    >>> float(loss), grad
    (3.7225, array([[-1.  ,  0.85,  0.15]]))
    """
    backend = D.foreign(z, target)
    if backend is not None:
        return backend.sparsemax_loss_and_grad(
            z, target, axis, reduction=reduction, ignore_index=ignore_index, method=method,
            **_stream_kw(stream),
        )
    _no_stream(stream)
    return _loss(z, target, axis, reduction, ignore_index, method, True, None)


for _f in (sparsemax_loss, sparsemax_loss_grad, sparsemax_loss_and_grad):
    _f.__doc__ = _f.__doc__.format(params=_LOSS_PARAMS)
del _f


def labels_to_proportions(
    y: "np.typing.ArrayLike", axis: int = -1, *, stream: object = None
) -> "np.typing.NDArray[np.floating]":
    """Multi-label targets as distributions: ``q = y / sum(y)`` along ``axis``.

    Parameters
    ----------
    y : array_like
        0/1 label indicators (bool, integer or float).
    axis : int, optional
        The label axis (default: the last).
    stream : numba.cuda.Stream or cupy.cuda.Stream, optional
        GPU arrays only: the CUDA stream to queue the work on (default: CuPy's current
        stream for CuPy arrays, the default stream otherwise). ``TypeError`` with host
        arrays.

    Returns
    -------
    numpy.ndarray
        ``y``'s shape; float32 for float16 and float32 input, float64 otherwise.

    Raises
    ------
    ValueError
        If an entry is not 0 or 1, or a row has no label (naming the row).

    Examples
    --------
    >>> import sparsemax_nb as sm
    >>> sm.labels_to_proportions([[1, 0, 1, 0]])
    array([[0.5, 0. , 0.5, 0. ]])
    """
    backend = D.foreign(y)
    if backend is not None:
        return backend.labels_to_proportions(y, axis, **_stream_kw(stream))
    _no_stream(stream)
    a, dt = D.as_array(y, "y")
    ax = D.axis_index(axis, a.ndim)
    batch = a.shape[:ax] + a.shape[ax + 1 :]
    if a.dtype.kind != "b":
        off = ~((a == 0) | (a == 1))
        if off.any():
            i = np.unravel_index(int(np.flatnonzero(off.ravel())[0]), a.shape)
            raise ValueError(
                f"labels must be 0 or 1; y{tuple(map(int, i))} = {a[i]!r}"
            )
    s = np.sum(a, axis=ax, keepdims=True, dtype=np.float64)
    empty = s == 0
    if empty.any():
        i = int(np.flatnonzero(empty.ravel())[0])
        where = np.unravel_index(i, batch) if batch else ()
        raise ValueError(f"label row at batch position {tuple(map(int, where))} has no label")
    return (a / s).astype(dt, copy=False)
