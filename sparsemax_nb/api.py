"""The public functions: each checks its arguments once (:mod:`sparsemax_nb._checks`),
asks the table of backends for the one its arrays belong to
(:func:`sparsemax_nb.backends.pick`) and calls that backend's operation.

The operations are shared by every mapping (:mod:`sparsemax_nb.mappings`): the private
``_forward``, ``_threshold``, ``_jvp``, ``_loss`` and ``_proportions`` below take the
mapping's name and parameter, so a family of public functions is a set of thin wrappers.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from . import _checks as C
from . import backends, mappings
from ._layout import batch_shape


# --------------------------------------------------------------------------- operations
def _backend(stream: Any, *xs: Any) -> ModuleType:
    be = backends.pick(*xs)
    if stream is not None and not be.STREAMS:
        raise be.stream_error()
    return be


_NO_THETA = np.zeros(1)  # the parameter of mappings without one (read, never written)


_THETA_CHECKS: dict[str, Any] = {}


def _theta(mapping: str, theta: Any, batch: tuple[int, ...]) -> np.ndarray:
    """The mapping's parameter: one value as shape ``(1,)``, or an array of the batch shape."""
    check = _THETA_CHECKS.get(mapping, False)
    if check is False:
        mp = mappings.get(mapping)
        check = _THETA_CHECKS[mapping] = mp.__dict__.get("check_theta")
    if check is None:
        return _NO_THETA
    mp = mappings.get(mapping)
    t = np.asarray(check(theta), dtype=np.float64)
    if t.size == 1:
        return t.reshape(1)
    try:
        return np.broadcast_to(t, batch)
    except ValueError:
        raise ValueError(
            f"{mp.THETA_NAME} of shape {t.shape} does not broadcast to the batch shape {batch}"
        ) from None


def _ndim(a: Any) -> int:
    return len(a.shape)


def _forward(mapping: str, z: Any, axis: Any, out: Any, method: Any, theta: Any,
             stream: Any) -> Any:
    be = _backend(stream, z, out)
    a = be.asarray(z)
    dt = C.compute_dtype(a.dtype)
    code = C.method_code(method)
    ax = C.axis_index(axis, _ndim(a))
    th = _theta(mapping, theta, batch_shape(a.shape, ax))
    return be.forward(mapping, a, ax, out, code, th, dt, stream)


def _threshold(mapping: str, z: Any, axis: Any, method: Any, theta: Any, stream: Any) -> Any:
    be = _backend(stream, z)
    a = be.asarray(z)
    dt = C.compute_dtype(a.dtype)
    code = C.method_code(method)
    ax = C.axis_index(axis, _ndim(a))
    th = _theta(mapping, theta, batch_shape(a.shape, ax))
    return be.threshold(mapping, a, ax, code, th, dt, stream)


def _jvp(mapping: str, p: Any, v: Any, axis: Any, out: Any, theta: Any, stream: Any) -> Any:
    be = _backend(stream, p, v, out)
    pa = be.asarray(p, "p")
    va = be.asarray(v, "v")
    dt = np.promote_types(C.compute_dtype(pa.dtype, "p"), C.compute_dtype(va.dtype, "v"))
    C.same_shape(pa.shape, va.shape)
    ax = C.axis_index(axis, _ndim(va))
    th = _theta(mapping, theta, batch_shape(va.shape, ax))
    return be.jvp(mapping, pa, va, ax, out, th, dt, stream)


def _theta_vjp(mapping: str, what: str, p: Any, g: Any, axis: Any, theta: Any,
               stream: Any) -> Any:
    be = _backend(stream, p, g)
    op = getattr(be, "theta_vjp", None)
    if op is None:
        raise C.unsupported_op_error(be.__name__.rsplit(".", 1)[-1], what)
    pa = be.asarray(p, "p")
    ga = be.asarray(g, "g")
    dt = np.promote_types(C.compute_dtype(pa.dtype, "p"), C.compute_dtype(ga.dtype, "g"))
    C.same_shape(pa.shape, ga.shape)
    ax = C.axis_index(axis, _ndim(ga))
    th = _theta(mapping, theta, batch_shape(ga.shape, ax))
    return op(mapping, pa, ga, ax, th, dt, stream)


def _loss(mapping: str, z: Any, target: Any, axis: Any, reduction: Any, ignore_index: Any,
          method: Any, theta: Any, want_grad: bool, out: Any, stream: Any) -> tuple[Any, Any]:
    be = _backend(stream, z, target, out)
    a = be.asarray(z)
    dt = C.compute_dtype(a.dtype)
    code = C.method_code(method)
    reduction = C.check_reduction(reduction)
    ignore = C.check_ignore_index(ignore_index)
    ax = C.axis_index(axis, _ndim(a))
    batch = batch_shape(a.shape, ax)
    t = be.asarray(target, "target")
    kind = C.target_kind(t.dtype, a.shape, t.shape, batch, ignore)
    th = _theta(mapping, theta, batch)
    return be.loss(mapping, a, t, kind, ax, reduction, ignore, code, th, dt, want_grad, out,
                   stream)


def _proportions(y: Any, axis: Any, stream: Any) -> Any:
    be = _backend(stream, y)
    a = be.asarray(y, "y")
    dt = C.compute_dtype(a.dtype, "y")
    ax = C.axis_index(axis, _ndim(a))
    return be.proportions(a, ax, dt, stream)


# --------------------------------------------------------------------------- sparsemax
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
    @stream@

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
    return _forward("sparsemax", z, axis, out, method, None, stream)


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
    @stream@

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
    return _threshold("sparsemax", z, axis, method, None, stream)


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
    @stream@

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
    return _jvp("sparsemax", p, v, axis, out, None, stream)


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

    ``L(z; q) = -q.z + 1/2 sum_{j in S} (z_j^2 - tau^2) + 1/2 ||q||^2``, computed as the
    equal and cancellation-free ``1/2 ||p - q||^2 + sum_{j not in S} q_j (tau - z_j)``.
    ``L >= 0``; for one-hot targets it is 0 iff the target's score leads the others by 1.

    Parameters
    ----------
@loss_params@
    method : {"auto", "sort", "select"}, optional
        As for :func:`sparsemax`.
    @stream@

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
    return _loss("sparsemax", z, target, axis, reduction, ignore_index, method, None, False,
                 None, stream)[0]


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
@loss_params@
    out : numpy.ndarray, optional
        Where to write the gradient (``z``'s shape and result dtype); may be ``z`` itself.
    method : {"auto", "sort", "select"}, optional
        As for :func:`sparsemax`.
    @stream@

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
    return _loss("sparsemax", z, target, axis, reduction, ignore_index, method, None, True,
                 out, stream)[1]


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
@loss_params@
    method : {"auto", "sort", "select"}, optional
        As for :func:`sparsemax`.
    @stream@

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
    return _loss("sparsemax", z, target, axis, reduction, ignore_index, method, None, True,
                 None, stream)




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
    @stream@

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
    return _proportions(y, axis, stream)


_STREAM_PARAM = """stream : numba.cuda.Stream or cupy.cuda.Stream, optional
        GPU arrays only: the CUDA stream to queue the work on (default: CuPy's current
        stream for CuPy arrays, the default stream otherwise). ``TypeError`` with host
        arrays."""


def _document(*fns: Any) -> None:
    """Fill the shared parameter paragraphs into the docstrings (written once, here)."""
    for f in fns:
        doc = f.__doc__ or ""
        doc = doc.replace("@stream@", _STREAM_PARAM).replace("@loss_params@", _LOSS_PARAMS)
        f.__doc__ = doc


_document(sparsemax, sparsemax_threshold, sparsemax_jvp, sparsemax_loss, sparsemax_loss_grad,
          sparsemax_loss_and_grad, labels_to_proportions)


# --------------------------------------------------------------------------- entmax
# The entmax family (Peters, Niculae & Martins, ACL 2019): the same operations with the
# mappings "entmax15" and "entmax_bisect" (alpha is the latter's per-row parameter).
_STREAM_DOC = """    stream : numba.cuda.Stream or cupy.cuda.Stream, optional
        GPU arrays only (the CUDA backend has no entmax kernels yet and raises
        ``NotImplementedError``); ``TypeError`` with host arrays."""
_ALPHA_DOC = """    alpha : float or array_like, optional
        ``alpha > 1``, finite: one value, or one per row (an array that broadcasts to the
        batch shape, ``z``'s shape without ``axis``). alpha = 2 is sparsemax, alpha = 1.5
        is :func:`entmax15`, alpha -> 1 tends to softmax."""
_ENTMAX_LOSS_PARAMS = _LOSS_PARAMS.replace(":func:`sparsemax`", "the mapping")


def entmax15(
    z: "np.typing.ArrayLike",
    axis: int = -1,
    *,
    out: "np.typing.NDArray[np.floating] | None" = None,
    method: str = "auto",
    stream: object = None,
) -> "np.typing.NDArray[np.floating]":
    """1.5-entmax: ``p = [z / 2 - tau]_+^2``, with ``tau`` such that ``p`` sums to 1.

    The alpha = 1.5 member of the entmax family (Peters, Niculae & Martins, 2019): smoother
    than sparsemax, and still with exact zeros. ``tau`` is exact to rounding: found on the
    support and finished by the closed-form root of the quadratic there.

    Parameters
    ----------
    z : array_like
        Scores; dtypes as for :func:`sparsemax` (float32 computed with float64 sums).
    axis : int, optional
        The axis along which each distribution lies (default: the last).
    out : numpy.ndarray, optional
        Where to write the result: the shape of ``z`` and the result dtype; may be ``z``.
    method : {{"auto", "sort", "select"}}, optional
        ``"sort"``: sort the candidates, O(K log K); ``"select"``: Newton passes with the
        closed-form finish, linear time on every row measured; ``"auto"``: ``"select"``.
        All agree to rounding.
{stream}

    Returns
    -------
    p : numpy.ndarray
        Non-negative, summing to 1 along ``axis``; the non-finite rules of
        :func:`sparsemax` (NaN rows for NaN, ``+inf`` or all ``-inf``; ``-inf`` gives 0).

    Raises
    ------
    TypeError, numpy.exceptions.AxisError, ValueError
        As :func:`sparsemax`.

    Examples
    --------
    >>> import sparsemax_nb as sm
    >>> sm.entmax15([-2.0, 0.0, 0.5]).round(4)
    array([0.   , 0.326, 0.674])
    """
    return _forward("entmax15", z, axis, out, method, None, stream)


def entmax15_threshold(
    z: "np.typing.ArrayLike", axis: int = -1, *, method: str = "auto", stream: object = None
) -> "tuple[np.typing.NDArray[np.floating], np.typing.NDArray[np.int64]]":
    """The threshold ``tau`` and the support size of 1.5-entmax, per row.

    Parameters
    ----------
    z : array_like
        Scores, as for :func:`entmax15`.
    axis : int, optional
        The axis along which each distribution lies (default: the last).
    method : {{"auto", "sort", "select"}}, optional
        As for :func:`entmax15`.
{stream}

    Returns
    -------
    tau : numpy.ndarray
        The batch shape, result dtype: ``entmax15(z) = [z / 2 - tau]_+^2``.
    support_size : numpy.ndarray of int64
        The number of non-zero entries per row; a NaN row has ``tau = NaN`` and size 0.
    """
    return _threshold("entmax15", z, axis, method, None, stream)


def entmax15_jvp(
    p: "np.typing.ArrayLike",
    v: "np.typing.ArrayLike",
    axis: int = -1,
    *,
    out: "np.typing.NDArray[np.floating] | None" = None,
    stream: object = None,
) -> "np.typing.NDArray[np.floating]":
    """Jacobian-vector product of 1.5-entmax at output ``p``: ``J(p) v``.

    With ``s = sqrt(p)`` (zero off the support), ``J v = s * v - (s . v / sum s) s``. ``J``
    is symmetric, so this is also the backward pass.

    Parameters
    ----------
    p : array_like
        A 1.5-entmax output.
    v : array_like
        The vector, same shape as ``p``.
    axis : int, optional
        The axis along which each distribution lies (default: the last).
    out : numpy.ndarray, optional
        Where to write the result; may be ``v`` or ``p``.
{stream}

    Returns
    -------
    numpy.ndarray
        As :func:`sparsemax_jvp`: NaN rows where ``p`` has a NaN or no positive entry.
    """
    return _jvp("entmax15", p, v, axis, out, None, stream)


def entmax15_loss(
    z: "np.typing.ArrayLike",
    target: "np.typing.ArrayLike",
    axis: int = -1,
    *,
    reduction: str = "none",
    ignore_index: "int | None" = None,
    method: str = "auto",
    stream: object = None,
) -> "np.typing.NDArray[np.floating] | np.floating":
    """The 1.5-entmax Fenchel-Young loss (Blondel, Martins & Niculae, 2020).

    ``L(z; q) = Omega*(z) - z . q + Omega(q)`` with the Tsallis
    ``Omega(p) = (sum p^1.5 - 1) / 0.75``; ``L >= 0``, ``L = 0`` iff ``entmax15(z) = q``.
    Evaluated as a sum of non-negative terms (no cancellation between entries).

    Parameters
    ----------
{params}
    method : {{"auto", "sort", "select"}}, optional
        As for :func:`entmax15`.
{stream}

    Returns
    -------
    loss : numpy.ndarray or scalar
        As :func:`sparsemax_loss` (``-inf`` scores give no NaN; infinite loss only where
        the target puts mass on one).
    """
    return _loss("entmax15", z, target, axis, reduction, ignore_index, method, None, False,
                 None, stream)[0]


def entmax15_loss_grad(
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
    """Gradient of :func:`entmax15_loss` with respect to ``z``: ``entmax15(z) - q``.

    Parameters
    ----------
{params}
    out : numpy.ndarray, optional
        Where to write the gradient; may be ``z``.
    method : {{"auto", "sort", "select"}}, optional
        As for :func:`entmax15`.
{stream}

    Returns
    -------
    numpy.ndarray
        As :func:`sparsemax_loss_grad`.
    """
    return _loss("entmax15", z, target, axis, reduction, ignore_index, method, None, True,
                 out, stream)[1]


def entmax15_loss_and_grad(
    z: "np.typing.ArrayLike",
    target: "np.typing.ArrayLike",
    axis: int = -1,
    *,
    reduction: str = "none",
    ignore_index: "int | None" = None,
    method: str = "auto",
    stream: object = None,
) -> "tuple[np.typing.NDArray[np.floating] | np.floating, np.typing.NDArray[np.floating]]":
    """:func:`entmax15_loss` and its gradient from one pass over ``z``.

    Parameters
    ----------
{params}
    method : {{"auto", "sort", "select"}}, optional
        As for :func:`entmax15`.
{stream}

    Returns
    -------
    loss, grad
        As :func:`entmax15_loss` and :func:`entmax15_loss_grad`.
    """
    return _loss("entmax15", z, target, axis, reduction, ignore_index, method, None, True,
                 None, stream)


def entmax_bisect(
    z: "np.typing.ArrayLike",
    alpha: "float | np.typing.ArrayLike" = 1.5,
    axis: int = -1,
    *,
    out: "np.typing.NDArray[np.floating] | None" = None,
    stream: object = None,
) -> "np.typing.NDArray[np.floating]":
    """alpha-entmax: ``p = [(alpha - 1) z - tau]_+^(1 / (alpha - 1))``, summing to 1.

    ``tau`` is bracketed, the support identified and ``tau`` finished by Newton's method
    on the support, run to convergence: exact to rounding, not to a bisection tolerance
    (the name follows the ``entmax`` package's). alpha = 2 gives :func:`sparsemax` and
    alpha = 1.5 :func:`entmax15`, both to rounding; as alpha -> 1 the result tends to
    softmax, without overflow.

    Parameters
    ----------
    z : array_like
        Scores; dtypes as for :func:`sparsemax`.
{alpha}
    axis : int, optional
        The axis along which each distribution lies (default: the last).
    out : numpy.ndarray, optional
        Where to write the result; may be ``z``.
{stream}

    Returns
    -------
    p : numpy.ndarray
        As :func:`entmax15`. For alpha near 1, entries far below the maximum may
        underflow to 0 while still counted in the support.

    Raises
    ------
    ValueError
        For an alpha that is not finite or not > 1, or that does not broadcast to the
        batch shape; otherwise as :func:`sparsemax`.

    Examples
    --------
    >>> import sparsemax_nb as sm
    >>> sm.entmax_bisect([-2.0, 0.0, 0.5], alpha=2.0)
    array([0.  , 0.25, 0.75])
    """
    return _forward("entmax_bisect", z, axis, out, "auto", alpha, stream)


def entmax_bisect_threshold(
    z: "np.typing.ArrayLike",
    alpha: "float | np.typing.ArrayLike" = 1.5,
    axis: int = -1,
    *,
    stream: object = None,
) -> "tuple[np.typing.NDArray[np.floating], np.typing.NDArray[np.int64]]":
    """The threshold ``tau`` and the support size of alpha-entmax, per row.

    Parameters
    ----------
    z : array_like
        Scores, as for :func:`entmax_bisect`.
{alpha}
    axis : int, optional
        The axis along which each distribution lies (default: the last).
{stream}

    Returns
    -------
    tau : numpy.ndarray
        ``entmax_bisect(z, alpha) = [(alpha - 1) z - tau]_+^(1 / (alpha - 1))``.
    support_size : numpy.ndarray of int64
        The entries with ``(alpha - 1) z > tau``; a NaN row has ``tau = NaN`` and size 0.
    """
    return _threshold("entmax_bisect", z, axis, "auto", alpha, stream)


def entmax_bisect_jvp(
    p: "np.typing.ArrayLike",
    v: "np.typing.ArrayLike",
    alpha: "float | np.typing.ArrayLike" = 1.5,
    axis: int = -1,
    *,
    out: "np.typing.NDArray[np.floating] | None" = None,
    stream: object = None,
) -> "np.typing.NDArray[np.floating]":
    """Jacobian-vector product of alpha-entmax at output ``p``: ``J(p) v``.

    With ``s = p^(2 - alpha)`` (zero off the support), ``J v = s * v - (s . v / sum s) s``;
    symmetric, so also the backward pass.

    Parameters
    ----------
    p : array_like
        An alpha-entmax output (for the same alpha).
    v : array_like
        The vector, same shape as ``p``.
{alpha}
    axis : int, optional
        The axis along which each distribution lies (default: the last).
    out : numpy.ndarray, optional
        Where to write the result; may be ``v`` or ``p``.
{stream}

    Returns
    -------
    numpy.ndarray
        As :func:`sparsemax_jvp`.
    """
    return _jvp("entmax_bisect", p, v, axis, out, alpha, stream)


def entmax_bisect_alpha_vjp(
    p: "np.typing.ArrayLike",
    g: "np.typing.ArrayLike",
    alpha: "float | np.typing.ArrayLike" = 1.5,
    axis: int = -1,
    *,
    stream: object = None,
) -> "np.typing.NDArray[np.floating]":
    """The gradient with respect to ``alpha``: ``sum_i g_i dp_i/dalpha`` for each row.

    ``p = entmax_bisect(z, alpha)`` depends on ``alpha`` through the exponent and the
    threshold; with ``s = p^(2 - alpha)`` and ``a = alpha - 1``,
    ``dp/dalpha = ((p - s / sum s) / a + s (sum p log p) / sum s - p log p) / a`` (zero off
    the support). It is evaluated in a form without the division by ``a^2``, so it stays
    accurate as alpha tends to 1. For a scalar ``alpha`` shared by all rows, its gradient
    is the sum of the result.

    Parameters
    ----------
    p : array_like
        An alpha-entmax output (for the same alpha).
    g : array_like
        The cotangent (the gradient of the objective with respect to ``p``), same shape.
{alpha}
    axis : int, optional
        The axis along which each distribution lies (default: the last).
{stream}

    Returns
    -------
    numpy.ndarray
        One value per row, of the batch shape; NaN for a row of ``p`` holding NaN.

    Raises
    ------
    NotImplementedError
        For device arrays: the CUDA backend has no kernel for it.
    """
    return _theta_vjp("entmax_bisect", "alpha gradient of entmax_bisect", p, g, axis, alpha,
                      stream)


def entmax_bisect_loss(
    z: "np.typing.ArrayLike",
    target: "np.typing.ArrayLike",
    alpha: "float | np.typing.ArrayLike" = 1.5,
    axis: int = -1,
    *,
    reduction: str = "none",
    ignore_index: "int | None" = None,
    stream: object = None,
) -> "np.typing.NDArray[np.floating] | np.floating":
    """The alpha-entmax Fenchel-Young loss with the Tsallis entropy.

    ``L(z; q) = Omega*(z) - z . q + Omega(q)``, ``Omega(p) = (sum p^alpha - 1) /
    (alpha (alpha - 1))``; ``L >= 0``, ``L = 0`` iff ``entmax_bisect(z, alpha) = q``.
    alpha = 2 is :func:`sparsemax_loss`.

    Parameters
    ----------
{params}
{alpha}
{stream}

    Returns
    -------
    loss : numpy.ndarray or scalar
        As :func:`entmax15_loss`.
    """
    return _loss("entmax_bisect", z, target, axis, reduction, ignore_index, "auto", alpha,
                 False, None, stream)[0]


def entmax_bisect_loss_grad(
    z: "np.typing.ArrayLike",
    target: "np.typing.ArrayLike",
    alpha: "float | np.typing.ArrayLike" = 1.5,
    axis: int = -1,
    *,
    reduction: str = "none",
    ignore_index: "int | None" = None,
    out: "np.typing.NDArray[np.floating] | None" = None,
    stream: object = None,
) -> "np.typing.NDArray[np.floating]":
    """Gradient of :func:`entmax_bisect_loss` with respect to ``z``: ``p - q``.

    Parameters
    ----------
{params}
{alpha}
    out : numpy.ndarray, optional
        Where to write the gradient; may be ``z``.
{stream}

    Returns
    -------
    numpy.ndarray
        As :func:`sparsemax_loss_grad`.
    """
    return _loss("entmax_bisect", z, target, axis, reduction, ignore_index, "auto", alpha,
                 True, out, stream)[1]


def entmax_bisect_loss_and_grad(
    z: "np.typing.ArrayLike",
    target: "np.typing.ArrayLike",
    alpha: "float | np.typing.ArrayLike" = 1.5,
    axis: int = -1,
    *,
    reduction: str = "none",
    ignore_index: "int | None" = None,
    stream: object = None,
) -> "tuple[np.typing.NDArray[np.floating] | np.floating, np.typing.NDArray[np.floating]]":
    """:func:`entmax_bisect_loss` and its gradient from one pass over ``z``.

    Parameters
    ----------
{params}
{alpha}
{stream}

    Returns
    -------
    loss, grad
        As :func:`entmax_bisect_loss` and :func:`entmax_bisect_loss_grad`.
    """
    return _loss("entmax_bisect", z, target, axis, reduction, ignore_index, "auto", alpha,
                 True, None, stream)


def _fill_entmax_docs() -> None:
    fns: tuple[Any, ...] = (
        entmax15, entmax15_threshold, entmax15_jvp, entmax15_loss, entmax15_loss_grad,
        entmax15_loss_and_grad, entmax_bisect, entmax_bisect_threshold, entmax_bisect_jvp,
        entmax_bisect_loss, entmax_bisect_loss_grad, entmax_bisect_loss_and_grad,
        entmax_bisect_alpha_vjp)
    for f in fns:
        f.__doc__ = f.__doc__.format(params=_ENTMAX_LOSS_PARAMS, alpha=_ALPHA_DOC,
                                     stream=_STREAM_DOC)


_fill_entmax_docs()
