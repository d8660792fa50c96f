"""The public functions inside a user's ``@numba.njit`` code.

``numba.extending.overload`` registrations for :func:`sparsemax_nb.sparsemax`,
:func:`~sparsemax_nb.sparsemax_threshold`, :func:`~sparsemax_nb.sparsemax_jvp` and
:func:`~sparsemax_nb.sparsemax_loss_and_grad`, and the same four of 1.5-entmax
(:func:`~sparsemax_nb.entmax15` ...) and of alpha-entmax (:func:`~sparsemax_nb.entmax_bisect`
...), all from one factory. Registering costs nothing at import; Numba compiles an
implementation only when a jitted function calls one of them.

alpha-entmax takes ``alpha`` where its public functions do (after the arrays, default
1.5), as one number (float or integer, a variable or a constant): an array of alphas is a
``TypingError`` here (the Python API and the gufuncs take one per row). An alpha that is not
finite and > 1 raises ``ValueError`` at run time with the Python API's rule as message,
before anything is written. Its functions have no ``method``, as in the Python API.

Supported inside ``@njit``: 1-D and 2-D float32/float64 arrays (any layout), worked along
the last axis; ``axis`` omitted, ``-1`` or ``ndim - 1`` (a non-literal ``axis`` is checked
at run time and raises ``ValueError`` otherwise); ``method`` omitted or a string literal
(``"auto"``, ``"sort"``, ``"select"``); ``reduction`` a string literal. The row arithmetic is
that of the CPU kernels, so results equal the NumPy API's (``reduction="sum"``/``"mean"``
add the rows in order, so those two agree to rounding). Differences from the Python API:
a 1-D input gives scalars where the API gives 0-d arrays; errors are raised with fixed
messages (Numba cannot format them), and unsupported arguments fail at compile time with
a ``TypingError``.
"""

import numpy as np
from numba import njit, types
from numba.core.errors import TypingError
from numba.extending import overload

from .. import _checks as D
from .. import api as _api
from .._jit import JIT as _JIT
from ..mappings import entmax15 as E15
from ..mappings import entmax_bisect as EB
from ..mappings import sparsemax as S
from . import gufuncs as G


# --------------------------------------------------------------------------- typing helpers
def _value(arg, default):
    """The compile-time value of an omitted or literal argument (or ``arg`` itself)."""
    if arg is None or isinstance(arg, types.NoneType):
        return None
    if isinstance(arg, types.Omitted):
        return arg.value
    if isinstance(arg, types.Literal):
        return arg.literal_value
    if isinstance(arg, (str, int)):
        return arg
    return default


def _is_none(arg):
    return arg is None or isinstance(arg, types.NoneType) or (
        isinstance(arg, types.Omitted) and arg.value is None
    )


def _check_array(x, name, fn):
    if not (
        isinstance(x, types.Array)
        and x.ndim in (1, 2)
        and isinstance(x.dtype, types.Float)
        and x.dtype.bitwidth in (32, 64)
    ):
        raise TypingError(
            f"sparsemax_nb.{fn} inside @njit takes a 1-D or 2-D float32/float64 array for "
            f"{name}; got {x}"
        )


def _method(method, fn):
    if _is_none(method):
        return D.pick_method(-1, 0)
    if isinstance(method, types.Omitted):
        method = method.value
    if isinstance(method, types.StringLiteral):
        method = method.literal_value
    if not isinstance(method, str):
        raise TypingError(
            f"sparsemax_nb.{fn} inside @njit: method must be a string literal "
            f"('auto', 'sort' or 'select'); got {method}"
        )
    try:
        code = D.METHODS[method]
    except KeyError:
        raise TypingError(
            f"sparsemax_nb.{fn}: method must be one of 'auto', 'sort', 'select'; got {method!r}"
        ) from None
    # "auto": the rule of the NumPy API (currently "select" for every row length).
    return D.pick_method(code, 0)


def _axis(axis, ndim, fn):
    """Compile-time check of ``axis``; returns True when a run-time check is needed."""
    if isinstance(axis, types.Omitted):
        axis = axis.value
    if isinstance(axis, types.IntegerLiteral):
        axis = axis.literal_value
    if isinstance(axis, int):
        if axis not in (-1, ndim - 1):
            raise TypingError(
                f"sparsemax_nb.{fn} inside @njit works along the last axis only "
                f"(axis=-1 or {ndim - 1}); got axis={axis}"
            )
        return False
    if isinstance(axis, types.Integer):
        return True
    raise TypingError(f"sparsemax_nb.{fn}: axis must be an integer; got {axis}")


@njit(**_JIT)
def _axis_runtime(axis, ndim):
    if axis != -1 and axis != ndim - 1:
        raise ValueError("sparsemax_nb inside @njit works along the last axis only")


@njit(**_JIT)
def _noop_axis(axis, ndim):
    pass


# --------------------------------------------------------------------------- loss rows
@njit(**_JIT)
def _check_dist_row(q):
    K = q.shape[0]
    s = 0.0
    for j in range(K):
        x = np.float64(q[j])
        if not x >= 0:
            raise ValueError("sparsemax_nb: a target row has a negative (or NaN) entry")
        s += x
    if not abs(s - 1.0) <= 1e-6 * K:
        raise ValueError("sparsemax_nb: a target row does not sum to 1")


# --------------------------------------------------------------------------- alpha
def _theta_rule(mp):
    """The rule of ``mp.check_theta`` as its own message states it, without the value
    (Numba raises constant messages only): the rule is written once, in the mapping."""
    try:
        mp.check_theta(np.nan)
    except ValueError as e:
        return str(e).partition(", got")[0]
    raise AssertionError(f"{mp.NAME}.check_theta accepted NaN")  # pragma: no cover


_ALPHA_ERROR = f"sparsemax_nb.entmax_bisect: {_theta_rule(EB)}"


@njit(**_JIT)
def _alpha(alpha):
    """``alpha`` as a float64, or ValueError (the rule of the Python API)."""
    a = np.float64(alpha)
    if not G._alpha_ok(a):
        raise ValueError(_ALPHA_ERROR)
    return a


def _check_alpha(alpha, fn):
    # An omitted alpha arrives as its default (a float) or as types.Omitted.
    if isinstance(alpha, bool) or _is_none(alpha) or not isinstance(
        alpha, (float, int, types.Omitted, types.Float, types.Integer)
    ):
        raise TypingError(
            f"sparsemax_nb.{fn} inside @njit takes one number for alpha (an array of "
            f"alphas works with the Python API and the gufuncs); got {alpha}"
        )


# --------------------------------------------------------------------------- registrations
def _register(mp, name, row_jvp, row_loss_dist, row_loss_label):
    """Register the overloads of ``name``, ``name_threshold``, ``name_jvp`` and
    ``name_loss_and_grad`` (the public functions of mapping module ``mp``), with the row
    kernels of :mod:`.gufuncs` for the jvp and the losses. The helpers jitted here have
    ``mp`` as their only closure variable (see gufuncs._kernels).

    A mapping with a parameter (``mp.THETA_NAME``, alpha-entmax's ``alpha``) takes it as
    the argument after the arrays, as its public functions do; the others pass 0.0. Each
    ``_build_*`` below types one call and returns a jitted ``run`` that takes the
    parameter last, which the registered signatures then call."""
    alpha = getattr(mp, "THETA_NAME", None) is not None

    @njit(**_JIT)
    def _forward_rows(z, p, code, theta):
        n, K = z.shape
        buf = np.empty(mp.SCRATCH * K, np.float64)
        for r in range(n):
            # C-contiguous rows, as the public API passes them (the kernels' sums use
            # reassociation, so the compiled lane order depends on the layout).
            zr = np.ascontiguousarray(z[r])
            m, tau, k = mp.threshold(zr, buf, code, theta)
            mp.write(zr, p[r], m, tau, k, theta)


    @njit(**_JIT)
    def _threshold_rows(z, tau_out, k_out, code, theta):
        n, K = z.shape
        buf = np.empty(mp.SCRATCH * K, np.float64)
        for r in range(n):
            m, tau, k = mp.threshold(np.ascontiguousarray(z[r]), buf, code, theta)
            tau_out[r] = mp.tau_of(m, tau, theta)
            k_out[r] = k


    @njit(**_JIT)
    def _jvp_rows(p, v, out, theta):
        # As the gufuncs' jvp kernel, written out: a jitted function in this closure would
        # defeat Numba's disk cache (see gufuncs._kernels).
        for r in range(p.shape[0]):
            pr = np.ascontiguousarray(p[r])
            if G._has_nan(pr):
                out[r] = np.nan
                continue
            oc = G._c_out(out[r])
            mp.jvp(pr, np.ascontiguousarray(v[r]), oc, theta)
            G._write_back(out[r], oc)


    # --------------------------------------------------------------------------- forward
    def _build_forward(fn, z, axis, out, method):
        _check_array(z, "z", fn)
        code = _method(method, fn)
        check_axis = _axis_runtime if _axis(axis, z.ndim, fn) else _noop_axis
        ndim = z.ndim
        if not _is_none(out):
            if not (isinstance(out, types.Array) and out.ndim == ndim and out.dtype == z.dtype):
                raise TypingError(f"sparsemax_nb.{fn}: out must be a {ndim}-D {z.dtype} array")
            if out.mutable is False:
                raise TypingError(f"sparsemax_nb.{fn}: out is read-only")

            wrong_shape = f"sparsemax_nb.{fn}: out has the wrong shape"

            def get_out(z, out):
                if out.shape != z.shape:
                    raise ValueError(wrong_shape)
                return out
        else:

            def get_out(z, out):
                return np.empty_like(z)

        get_out = njit(get_out)

        if ndim == 1:
            # One row; row views of any layout work directly with the row kernels.
            def run(z, axis, out, theta):
                check_axis(axis, 1)
                p = get_out(z, out)
                buf = np.empty(mp.SCRATCH * z.shape[0], np.float64)
                zc = np.ascontiguousarray(z)
                m, tau, k = mp.threshold(zc, buf, code, theta)
                mp.write(zc, p, m, tau, k, theta)
                return p
        else:

            def run(z, axis, out, theta):
                check_axis(axis, 2)
                p = get_out(z, out)
                _forward_rows(z, p, code, theta)
                return p

        return njit(run)


    # --------------------------------------------------------------------------- threshold
    def _build_threshold(fn, z, axis, method):
        _check_array(z, "z", fn)
        code = _method(method, fn)
        check_axis = _axis_runtime if _axis(axis, z.ndim, fn) else _noop_axis
        dt = np.dtype(str(z.dtype))
        if z.ndim == 1:
            cast = njit(lambda x: np.float32(x)) if dt == np.float32 else njit(lambda x: x)

            def run(z, axis, theta):
                check_axis(axis, 1)
                buf = np.empty(mp.SCRATCH * z.shape[0], np.float64)
                m, tau, k = mp.threshold(np.ascontiguousarray(z), buf, code, theta)
                return cast(mp.tau_of(m, tau, theta)), np.int64(k)
        else:

            def run(z, axis, theta):
                check_axis(axis, 2)
                tau = np.full(z.shape[0], np.nan, dt)
                k = np.zeros(z.shape[0], np.int64)
                _threshold_rows(z, tau, k, code, theta)
                return tau, k

        return njit(run)


    # --------------------------------------------------------------------------- jvp
    def _build_jvp(fn, p, v, axis, out):
        _check_array(p, "p", fn)
        _check_array(v, "v", fn)
        if p.ndim != v.ndim:
            raise TypingError(f"sparsemax_nb.{fn}: p and v must have the same shape")
        check_axis = _axis_runtime if _axis(axis, v.ndim, fn) else _noop_axis
        dt = np.promote_types(np.dtype(str(p.dtype)), np.dtype(str(v.dtype)))
        ndim = v.ndim
        if not _is_none(out):
            if not (isinstance(out, types.Array) and out.ndim == ndim
                    and np.dtype(str(out.dtype)) == dt):
                raise TypingError(f"sparsemax_nb.{fn}: out must be a {ndim}-D {dt} array")

            def get_out(v, out):
                return out
        else:

            def get_out(v, out):
                return np.empty(v.shape, dt)

        get_out = njit(get_out)
        not_same = f"sparsemax_nb.{fn}: p and v must have the same shape"
        wrong_shape = f"sparsemax_nb.{fn}: out has the wrong shape"

        def run(p, v, axis, out, theta):
            check_axis(axis, ndim)
            if p.shape != v.shape:
                raise ValueError(not_same)
            o = get_out(v, out)
            if o.shape != v.shape:
                raise ValueError(wrong_shape)
            if ndim == 1:
                row_jvp(np.ascontiguousarray(p), np.ascontiguousarray(v), o, theta)
            else:
                _jvp_rows(p, v, o, theta)
            return o

        return njit(run)


    # --------------------------------------------------------------------------- loss
    def _build_loss_and_grad(fn, z, target, axis, reduction, ignore_index, method):
        _check_array(z, "z", fn)
        code = _method(method, fn)
        check_axis = _axis_runtime if _axis(axis, z.ndim, fn) else _noop_axis
        red = _value(reduction, None)
        if red not in D.REDUCTIONS:
            raise TypingError(
                f"sparsemax_nb.{fn}: reduction must be a string literal "
                f"'none', 'sum' or 'mean'; got {reduction}"
            )
        ndim = z.ndim
        dt = np.dtype(str(z.dtype))
        cast = njit(lambda x: np.float32(x)) if dt == np.float32 else njit(lambda x: np.float64(x))
        # Class indices: an integer (1-D z) or a 1-D integer array (2-D z).
        if ndim == 1:
            labels = isinstance(target, types.Integer)
            dist = isinstance(target, types.Array) and target.ndim == 1
        else:
            labels = (isinstance(target, types.Array) and target.ndim == 1
                      and isinstance(target.dtype, types.Integer))
            dist = isinstance(target, types.Array) and target.ndim == 2
        if dist and not isinstance(target.dtype, types.Float):
            raise TypingError(
                f"sparsemax_nb.{fn}: a target of z's shape must be float "
                "distributions (use labels_to_proportions for 0/1 labels)"
            )
        if not (labels or dist):
            raise TypingError(
                f"sparsemax_nb.{fn}: target must be class indices (an integer "
                f"per row) or one float distribution per row; got {target}"
            )
        ignore_none = _is_none(ignore_index)
        if not ignore_none and not (labels and isinstance(ignore_index, types.Integer)):
            raise TypingError(
                f"sparsemax_nb.{fn}: ignore_index must be None or an integer, "
                "and applies to class-index targets only"
            )

        # One row: the loss into a 1-element array, the scaled gradient into g_r.
        if labels:

            def row(z_r, y, loss1, g_r, scale, ignore, use_ignore, theta):
                if use_ignore and y == ignore:
                    loss1[0] = 0.0
                    g_r[:] = 0.0
                    return
                row_loss_label(np.ascontiguousarray(z_r), y, loss1, g_r, True, scale, code,
                               theta)

            def check_row(z_r, y, ignore, use_ignore):
                if use_ignore and y == ignore:
                    return 0
                if y < 0 or y >= z_r.shape[0]:
                    raise ValueError("sparsemax_nb: a target class index is out of range")
                return 1
        else:

            def row(z_r, q_r, loss1, g_r, scale, ignore, use_ignore, theta):
                row_loss_dist(
                    np.ascontiguousarray(z_r), np.ascontiguousarray(q_r), loss1, g_r, True,
                    scale, code, theta
                )

            def check_row(z_r, q_r, ignore, use_ignore):
                if q_r.shape[0] != z_r.shape[0]:
                    raise ValueError("sparsemax_nb: a float target must have z's shape")
                _check_dist_row(q_r)
                return 1

        row = njit(row)
        check_row = njit(check_row)

        if ndim == 1:

            def rows(z, target, ignore_index, theta):
                use_ignore = ignore_index is not None
                ignore = ignore_index if ignore_index is not None else -1
                n_valid = check_row(z, target, ignore, use_ignore)
                scale = 1.0
                if red == "mean":
                    scale = 1.0 / n_valid if n_valid else 0.0
                loss = np.empty(1, dt)
                grad = np.empty(z.shape, dt)
                row(z, target, loss, grad, scale, ignore, use_ignore, theta)
                return loss, grad, n_valid
        else:

            def rows(z, target, ignore_index, theta):
                use_ignore = ignore_index is not None
                ignore = ignore_index if ignore_index is not None else -1
                n = z.shape[0]
                if target.shape[0] != n:
                    raise ValueError("sparsemax_nb: target must have one entry (or row) per row of z")
                # Every row is checked before any work, as the NumPy API does.
                n_valid = 0
                for r in range(n):
                    n_valid += check_row(z[r], target[r], ignore, use_ignore)
                scale = 1.0
                if red == "mean":
                    scale = 1.0 / n_valid if n_valid else 0.0
                loss = np.empty(n, dt)
                grad = np.empty(z.shape, dt)
                one = np.empty(1, dt)
                for r in range(n):
                    row(z[r], target[r], one, grad[r], scale, ignore, use_ignore, theta)
                    loss[r] = one[0]
                return loss, grad, n_valid

        rows = njit(rows)

        if red == "none":
            if ndim == 1:

                def run(z, target, axis, ignore_index, theta):
                    check_axis(axis, 1)
                    loss, grad, _ = rows(z, target, ignore_index, theta)
                    return loss[0], grad
            else:

                def run(z, target, axis, ignore_index, theta):
                    check_axis(axis, 2)
                    loss, grad, _ = rows(z, target, ignore_index, theta)
                    return loss, grad

            return njit(run)

        mean = red == "mean"

        def run(z, target, axis, ignore_index, theta):
            check_axis(axis, ndim)
            loss, grad, n_valid = rows(z, target, ignore_index, theta)
            total = 0.0
            for r in range(loss.shape[0]):
                total += np.float64(loss[r])
            if mean:
                total = total / n_valid if n_valid else np.nan
            return cast(total), grad

        return njit(run)


    # --------------------------------------------------------------------------- signatures
    api_fn = getattr(_api, name)
    api_threshold = getattr(_api, name + "_threshold")
    api_jvp = getattr(_api, name + "_jvp")
    api_loss_and_grad = getattr(_api, name + "_loss_and_grad")

    if not alpha:

        @overload(api_fn, prefer_literal=True)
        def _ol_forward(z, axis=-1, out=None, method="auto"):
            run = _build_forward(name, z, axis, out, method)

            def impl(z, axis=-1, out=None, method="auto"):
                return run(z, axis, out, 0.0)

            return impl

        @overload(api_threshold, prefer_literal=True)
        def _ol_threshold(z, axis=-1, method="auto"):
            run = _build_threshold(name + "_threshold", z, axis, method)

            def impl(z, axis=-1, method="auto"):
                return run(z, axis, 0.0)

            return impl

        @overload(api_jvp, prefer_literal=True)
        def _ol_jvp(p, v, axis=-1, out=None):
            run = _build_jvp(name + "_jvp", p, v, axis, out)

            def impl(p, v, axis=-1, out=None):
                return run(p, v, axis, out, 0.0)

            return impl

        @overload(api_loss_and_grad, prefer_literal=True)
        def _ol_loss_and_grad(
            z, target, axis=-1, reduction="none", ignore_index=None, method="auto"
        ):
            run = _build_loss_and_grad(name + "_loss_and_grad", z, target, axis, reduction,
                                       ignore_index, method)

            def impl(z, target, axis=-1, reduction="none", ignore_index=None, method="auto"):
                return run(z, target, axis, ignore_index, 0.0)

            return impl

        return

    # With alpha (a number; checked at run time, as the Python API checks it). No method:
    # the public functions of alpha-entmax have none.
    @overload(api_fn, prefer_literal=True)
    def _ol_forward_alpha(z, alpha=1.5, axis=-1, out=None):
        _check_alpha(alpha, name)
        run = _build_forward(name, z, axis, out, None)

        def impl(z, alpha=1.5, axis=-1, out=None):
            return run(z, axis, out, _alpha(alpha))

        return impl

    @overload(api_threshold, prefer_literal=True)
    def _ol_threshold_alpha(z, alpha=1.5, axis=-1):
        _check_alpha(alpha, name + "_threshold")
        run = _build_threshold(name + "_threshold", z, axis, None)

        def impl(z, alpha=1.5, axis=-1):
            return run(z, axis, _alpha(alpha))

        return impl

    @overload(api_jvp, prefer_literal=True)
    def _ol_jvp_alpha(p, v, alpha=1.5, axis=-1, out=None):
        _check_alpha(alpha, name + "_jvp")
        run = _build_jvp(name + "_jvp", p, v, axis, out)

        def impl(p, v, alpha=1.5, axis=-1, out=None):
            return run(p, v, axis, out, _alpha(alpha))

        return impl

    @overload(api_loss_and_grad, prefer_literal=True)
    def _ol_loss_and_grad_alpha(
        z, target, alpha=1.5, axis=-1, reduction="none", ignore_index=None
    ):
        fn = name + "_loss_and_grad"
        _check_alpha(alpha, fn)
        run = _build_loss_and_grad(fn, z, target, axis, reduction, ignore_index, None)

        def impl(z, target, alpha=1.5, axis=-1, reduction="none", ignore_index=None):
            return run(z, target, axis, ignore_index, _alpha(alpha))

        return impl


_register(S, "sparsemax", G._jvp, G._loss_dist, G._loss_label)
_register(E15, "entmax15", G._e15_jvp, G._e15_loss_dist, G._e15_loss_label)
_register(EB, "entmax_bisect", G._eb_jvp, G._eb_loss_dist, G._eb_loss_label)
