"""Sparsemax and the entmax family as NumPy generalized ufuncs (``numba.guvectorize``).

Each object here is a real :class:`numpy.ufunc` with a core signature, so NumPy's gufunc
machinery applies: broadcasting of the batch (loop) dimensions, ``out=``, ``axes=`` /
``axis=``, ``where`` is not available (gufuncs have none), and dtype resolution over the
loops listed below. That is what ``dask.array`` (``da.apply_gufunc`` or calling the gufunc
on a Dask array) and ``xarray.apply_ufunc(..., input_core_dims=..., dask="parallelized")``
expect.

=============================== ===================== ========================================
gufunc                          signature             outputs
=============================== ===================== ========================================
``sparsemax``                   ``(n)->(n)``          ``p``
``sparsemax_threshold``         ``(n)->(),()``        ``tau``, ``support_size`` (int64)
``sparsemax_jvp``               ``(n),(n)->(n)``      ``J(p) v``
``sparsemax_loss``              ``(n),(n)->()``       loss for a target distribution
``sparsemax_loss_and_grad``     ``(n),(n)->(),(n)``   loss and ``sparsemax(z) - q``
``sparsemax_loss_label``        ``(n),()->()``        loss for a class index (int64)
``sparsemax_loss_label_and_grad`` ``(n),()->(),(n)``  loss and ``sparsemax(z) - e_label``
=============================== ===================== ========================================

The same seven exist for 1.5-entmax (``entmax15*``, same signatures) and for alpha-entmax
(``entmax_bisect*``), whose ``alpha`` is one more core input of signature ``()`` after the
arrays, in the order of the public functions: ``entmax_bisect`` is ``(n),()->(n)``
(``z``, ``alpha``), ``entmax_bisect_jvp`` ``(n),(n),()->(n)`` (``p``, ``v``, ``alpha``),
``entmax_bisect_loss_label`` ``(n),(),()->()`` (``z``, ``label``, ``alpha``), and so on.
``alpha`` is float64 in every loop (a float32 ``alpha`` is widened, as the public functions
do) and broadcasts against the batch dimensions like any operand: a scalar, or one value
per row. It has no default (gufuncs have none; the public functions default to 1.5).

The row arithmetic is that of :mod:`sparsemax_nb.mappings.sparsemax` (and of the entmax
mappings; their row functions ``threshold``, ``write``, ``jvp`` and the row losses are called
here), so results are bitwise equal to the public API called with
``method="select"`` (the method used here; ``"auto"`` currently picks it too), including
the non-finite rules of section 4 of docs/contract.md: a row holding NaN or ``+inf``, or only ``-inf``,
gives NaN; ``-inf`` entries of other rows give exact zeros.

Dtypes: loops exist for float32 and float64 (each computed in its own dtype, sums in
float64). ``sparsemax``, ``sparsemax_threshold`` and ``sparsemax_jvp`` (and their entmax
counterparts) also have loops for bool and the 8/16-bit integers computed in float64, listed first so NumPy's first-safe-cast
loop search follows section 4 of docs/contract.md (bool and integers give float64, float16 gives
float32). The loss gufuncs have the float loops only (so int8/int16 scores would be
computed in float32 there: pass floats). Two float inputs of different precision promote
to float64 (NumPy's rule; the public loss functions instead use ``z``'s dtype).

What a gufunc cannot do: raise per-row errors. So, where the public API raises, these
return NaN for the offending row instead: a target row that is negative or does not sum to
1 (tolerance ``1e-6 * K``), a class index outside ``[0, K)``, an ``alpha`` that is not
finite and > 1 (every output of that row NaN; a threshold's support size 0), as NumPy's
own ufuncs answer a domain error with NaN. There is no ``reduction``:
reduce the per-row loss yourself (``loss.mean()``), and no ``ignore_index``: mask rows.

The gufuncs are built (compiled, or loaded from Numba's on-disk cache) the first time each
attribute is used, so ``import sparsemax_nb.gufuncs`` is cheap.
"""

from typing import Any

import numpy as np
from numba import guvectorize, njit, types
from numba.extending import overload

from .. import _checks as C
from .._jit import CACHE, JIT as _JIT
from ..mappings import entmax15 as E15
from ..mappings import entmax_bisect as EB
from ..mappings import sparsemax as S

__all__ = [
    "sparsemax",
    "sparsemax_threshold",
    "sparsemax_jvp",
    "sparsemax_loss",
    "sparsemax_loss_and_grad",
    "sparsemax_loss_label",
    "sparsemax_loss_label_and_grad",
    "entmax15",
    "entmax15_threshold",
    "entmax15_jvp",
    "entmax15_loss",
    "entmax15_loss_and_grad",
    "entmax15_loss_label",
    "entmax15_loss_label_and_grad",
    "entmax_bisect",
    "entmax_bisect_threshold",
    "entmax_bisect_jvp",
    "entmax_bisect_loss",
    "entmax_bisect_loss_and_grad",
    "entmax_bisect_loss_label",
    "entmax_bisect_loss_label_and_grad",
]

_METHOD = C.SELECT

# Input types, in the order NumPy searches them (first loop every input casts to safely).
_INT_IN = ("b1", "i1", "u1", "i2", "u2")
_FLOAT = ("f4", "f8")


def _loops(make, ints=True):
    """Loop signatures: ``make(in_type, result_type)`` for each input type.

    Every loop is one more compilation on first use, so the loss gufuncs (whose scores
    are floats in practice) have float loops only.
    """
    return [make(t, "f8") for t in (_INT_IN if ints else ())] + [make(t, t) for t in _FLOAT]


# --------------------------------------------------------------------------- row helpers
def _float_row(z):  # pragma: no cover - only its Numba overload runs
    """``z`` as a C-contiguous float row: itself when it is one, else a (float64) copy."""
    raise NotImplementedError


@overload(_float_row, jit_options={"nogil": True, "error_model": "numpy"})
def _ol_float_row(z):
    # Chosen at typing time: integer loops share the float64 row kernels instead of
    # compiling the threshold machinery once more per integer dtype.
    # Float rows are typed C-contiguous (a view when they are, else a copy): the CPU row
    # kernels add with reassociation, so their lane order depends on the layout they are
    # compiled for, and the public API always hands them C-contiguous rows.
    if isinstance(z.dtype, types.Float):
        return lambda z: np.ascontiguousarray(z)
    return lambda z: z.astype(np.float64)


@njit(**_JIT)
def _has_nan(z):
    """True if the row holds a NaN, tested with quiet comparisons only.

    NumPy turns the floating-point status flags a ufunc loop leaves into RuntimeWarnings;
    the ordered (signalling) comparisons of the row kernels raise the "invalid" flag on a
    NaN, so NaN rows are answered here, before those kernels see them (same result: k = 0).
    """
    nan = False
    for i in range(z.shape[0]):
        x = z[i]
        nan |= x != x
    return nan


@njit(**_JIT)
def _c_out(x):
    """A C-contiguous view of output row ``x``, or a scratch copy (see _write_back)."""
    return np.ascontiguousarray(x)


@njit(**_JIT)
def _write_back(x, xc):
    if not x.flags.c_contiguous:
        x[:] = xc


@njit(**_JIT)
def _nan_row(loss, grad, want_grad):
    loss[0] = np.nan
    if want_grad:
        for j in range(grad.shape[0]):
            grad[j] = np.nan


@njit(**_JIT)
def _unmasked(z, m):
    """A copy of ``z`` with each ``-inf`` replaced by a finite score far below the support.

    The CPU loss kernel evaluates ``q_j * (tau - d_j)`` branch-free and keeps it only where
    ``q_j != 0``; for a masked entry with ``q_j = 0`` that is ``0 * inf``, which raises the
    "invalid" flag NumPy reports as a warning. Any ``d_j <= -1`` gives the same ``p_j = 0``,
    gradient and selected terms (``tau >= -1``), so the kernel's sums are unchanged (the
    replacement has ``d_j <= -2``, off the support of 1.5-entmax as well). The
    caller restores the one difference: target mass on a masked entry makes the loss +inf.
    """
    out = np.empty_like(z)
    rep = m - 2.0 - 0.5 * abs(m)
    for j in range(z.shape[0]):
        x = z[j]
        out[j] = rep if x == -np.inf else x
    return out


def _kernels(mp):
    """The row kernels of the gufuncs for mapping module ``mp`` (its row functions called
    with the rules of this module), each taking the row's parameter ``theta`` last (0.0
    for mappings without one). ``mp`` is their only closure variable besides the constant
    ``unmask``, as in the CPU backend's drivers: a module pickles by reference, so Numba's
    disk cache keys each mapping apart and finds it again. (A jitted function in a closure
    pickles with a fresh identity in every process, which would defeat the cache: hence
    the threshold step is written out in each kernel rather than shared.)"""
    # The -inf replacement of _unmasked is off the support only for a fixed scale of the
    # scores; with a parameter (alpha near 1 shrinks (alpha - 1) z) it could enter it. The
    # entmax row losses are branchy and never form 0 * inf, so they need no replacement.
    unmask = getattr(mp, "THETA_NAME", None) is None

    @njit(**_JIT)
    def forward(z, p, method, theta):
        if _has_nan(z):
            m, tau, k = np.nan, np.nan, 0
        else:
            m, tau, k = mp.threshold(z, np.empty(mp.SCRATCH * z.shape[0]), method, theta)
        pc = _c_out(p)
        mp.write(z, pc, m, tau, k, theta)
        _write_back(p, pc)

    @njit(**_JIT)
    def threshold(z, tau_out, k_out, method, theta):
        if _has_nan(z):
            m, tau, k = np.nan, np.nan, 0
        else:
            m, tau, k = mp.threshold(z, np.empty(mp.SCRATCH * z.shape[0]), method, theta)
        tau_out[0] = mp.tau_of(m, tau, theta)
        k_out[0] = k

    @njit(**_JIT)
    def jvp(p, v, out, theta):
        """The row function ``jvp``, NaN rows of ``p`` answered first (see _has_nan)."""
        if _has_nan(p):
            for j in range(p.shape[0]):
                out[j] = np.nan
            return
        oc = _c_out(out)
        mp.jvp(p, v, oc, theta)
        _write_back(out, oc)

    @njit(**_JIT)
    def loss_dist(z, q, loss, grad, want_grad, scale, method, theta):
        """As the CPU driver ``_loss_dist_rows`` (same row kernel), plus the API's target
        check."""
        K = z.shape[0]
        # A gufunc cannot raise: an invalid target row gives NaN (the API raises ValueError).
        if _has_nan(q):
            _nan_row(loss, grad, want_grad)
            return
        qs = 0.0
        bad = False
        for j in range(K):
            qj = np.float64(q[j])
            bad |= qj < 0
            qs += qj
        if bad or not abs(qs - 1.0) <= 1e-6 * K:
            _nan_row(loss, grad, want_grad)
            return
        if _has_nan(z):
            _nan_row(loss, grad, want_grad)
            return
        m, tau, k = mp.threshold(z, np.empty(mp.SCRATCH * K), method, theta)
        if k == 0:
            _nan_row(loss, grad, want_grad)
            return
        masked = False
        mass_on_masked = False
        for j in range(K):
            x = z[j] == -np.inf
            masked |= x
            mass_on_masked |= x and q[j] != 0
        gc = _c_out(grad)
        if unmask and masked:
            zz = _unmasked(z, m)
            acc = mp.loss_dist(zz, q, m, tau, k, theta, scale, gc, want_grad)
        else:
            acc = mp.loss_dist(z, q, m, tau, k, theta, scale, gc, want_grad)
        if want_grad:
            _write_back(grad, gc)
        loss[0] = np.inf if mass_on_masked else acc

    @njit(**_JIT)
    def loss_label(z, label, loss, grad, want_grad, scale, method, theta):
        """As the CPU driver ``_loss_labels_rows`` (same row kernel; no ignore_index)."""
        K = z.shape[0]
        if label < 0 or label >= K:
            _nan_row(loss, grad, want_grad)
            return
        if _has_nan(z):
            _nan_row(loss, grad, want_grad)
            return
        m, tau, k = mp.threshold(z, np.empty(mp.SCRATCH * K), method, theta)
        if k == 0:
            _nan_row(loss, grad, want_grad)
            return
        gc = _c_out(grad)
        acc = mp.loss_label(z, label, m, tau, k, theta, scale, gc, want_grad)
        if want_grad:
            _write_back(grad, gc)
        loss[0] = acc

    return forward, threshold, jvp, loss_dist, loss_label


_forward, _threshold, _jvp, _loss_dist, _loss_label = _kernels(S)
_e15_forward, _e15_threshold, _e15_jvp, _e15_loss_dist, _e15_loss_label = _kernels(E15)
_eb_forward, _eb_threshold, _eb_jvp, _eb_loss_dist, _eb_loss_label = _kernels(EB)


@njit(**_JIT)
def _alpha_ok(alpha):
    """``alpha`` finite and > 1: the rule of :func:`sparsemax_nb.mappings.entmax_bisect.
    check_theta`, for compiled callers (the gufuncs, the ``@njit`` overloads).

    The quiet ``==`` answers NaN first, so no ordered comparison sees one (see _has_nan).
    """
    return alpha == alpha and alpha > 1.0 and alpha < np.inf


@njit(**_JIT)
def _nan_fill(x):
    for j in range(x.shape[0]):
        x[j] = np.nan


# --------------------------------------------------------------------------- gufunc bodies
# One set per mapping, each body a call of a module-level kernel (see _kernels on closures).
def _g_sparsemax(z, p):
    _forward(_float_row(z), p, _METHOD, 0.0)


def _g_threshold(z, tau, k):
    _threshold(_float_row(z), tau, k, _METHOD, 0.0)


def _g_jvp(p, v, out):
    _jvp(_float_row(p), _float_row(v), out, 0.0)


def _g_loss(z, q, loss):
    _loss_dist(_float_row(z), _float_row(q), loss, loss, False, 1.0, _METHOD, 0.0)


def _g_loss_and_grad(z, q, loss, grad):
    _loss_dist(_float_row(z), _float_row(q), loss, grad, True, 1.0, _METHOD, 0.0)


def _g_loss_label(z, label, loss):
    _loss_label(_float_row(z), label, loss, loss, False, 1.0, _METHOD, 0.0)


def _g_loss_label_and_grad(z, label, loss, grad):
    _loss_label(_float_row(z), label, loss, grad, True, 1.0, _METHOD, 0.0)


def _g_e15(z, p):
    _e15_forward(_float_row(z), p, _METHOD, 0.0)


def _g_e15_threshold(z, tau, k):
    _e15_threshold(_float_row(z), tau, k, _METHOD, 0.0)


def _g_e15_jvp(p, v, out):
    _e15_jvp(_float_row(p), _float_row(v), out, 0.0)


def _g_e15_loss(z, q, loss):
    _e15_loss_dist(_float_row(z), _float_row(q), loss, loss, False, 1.0, _METHOD, 0.0)


def _g_e15_loss_and_grad(z, q, loss, grad):
    _e15_loss_dist(_float_row(z), _float_row(q), loss, grad, True, 1.0, _METHOD, 0.0)


def _g_e15_loss_label(z, label, loss):
    _e15_loss_label(_float_row(z), label, loss, loss, False, 1.0, _METHOD, 0.0)


def _g_e15_loss_label_and_grad(z, label, loss, grad):
    _e15_loss_label(_float_row(z), label, loss, grad, True, 1.0, _METHOD, 0.0)


# alpha-entmax: alpha is a core input of signature (), one float64 per row after NumPy's
# broadcasting. An invalid alpha gives a NaN row (a gufunc cannot raise per row).
def _g_eb(z, alpha, p):
    if _alpha_ok(alpha):
        _eb_forward(_float_row(z), p, _METHOD, alpha)
    else:
        _nan_fill(p)


def _g_eb_threshold(z, alpha, tau, k):
    if _alpha_ok(alpha):
        _eb_threshold(_float_row(z), tau, k, _METHOD, alpha)
    else:
        tau[0] = np.nan
        k[0] = 0


def _g_eb_jvp(p, v, alpha, out):
    if _alpha_ok(alpha):
        _eb_jvp(_float_row(p), _float_row(v), out, alpha)
    else:
        _nan_fill(out)


def _g_eb_loss(z, q, alpha, loss):
    if _alpha_ok(alpha):
        _eb_loss_dist(_float_row(z), _float_row(q), loss, loss, False, 1.0, _METHOD, alpha)
    else:
        loss[0] = np.nan


def _g_eb_loss_and_grad(z, q, alpha, loss, grad):
    if _alpha_ok(alpha):
        _eb_loss_dist(_float_row(z), _float_row(q), loss, grad, True, 1.0, _METHOD, alpha)
    else:
        _nan_row(loss, grad, True)


def _g_eb_loss_label(z, label, alpha, loss):
    if _alpha_ok(alpha):
        _eb_loss_label(_float_row(z), label, loss, loss, False, 1.0, _METHOD, alpha)
    else:
        loss[0] = np.nan


def _g_eb_loss_label_and_grad(z, label, alpha, loss, grad):
    if _alpha_ok(alpha):
        _eb_loss_label(_float_row(z), label, loss, grad, True, 1.0, _METHOD, alpha)
    else:
        _nan_row(loss, grad, True)


def _specs(name, bodies):
    """``{gufunc name: (body, signature, loop maker)}`` for one mapping's seven bodies."""
    fwd, thr, jvp, loss, loss_grad, label, label_grad = bodies
    return {
        name: (fwd, "(n)->(n)", lambda t, r: f"void({t}[:], {r}[:])"),
        f"{name}_threshold": (thr, "(n)->(),()", lambda t, r: f"void({t}[:], {r}[:], i8[:])"),
        f"{name}_jvp": (jvp, "(n),(n)->(n)", lambda t, r: f"void({t}[:], {t}[:], {r}[:])"),
        f"{name}_loss": (loss, "(n),(n)->()", lambda t, r: f"void({t}[:], {t}[:], {r}[:])"),
        f"{name}_loss_and_grad": (
            loss_grad, "(n),(n)->(),(n)", lambda t, r: f"void({t}[:], {t}[:], {r}[:], {r}[:])"),
        f"{name}_loss_label": (label, "(n),()->()", lambda t, r: f"void({t}[:], i8, {r}[:])"),
        f"{name}_loss_label_and_grad": (
            label_grad, "(n),()->(),(n)", lambda t, r: f"void({t}[:], i8, {r}[:], {r}[:])"),
    }


def _alpha_specs(name, bodies):
    """As :func:`_specs`, with a float64 core input ``alpha`` of signature ``()`` after the
    arrays (the argument order of the public functions)."""
    fwd, thr, jvp, loss, loss_grad, label, label_grad = bodies
    return {
        name: (fwd, "(n),()->(n)", lambda t, r: f"void({t}[:], f8, {r}[:])"),
        f"{name}_threshold": (
            thr, "(n),()->(),()", lambda t, r: f"void({t}[:], f8, {r}[:], i8[:])"),
        f"{name}_jvp": (
            jvp, "(n),(n),()->(n)", lambda t, r: f"void({t}[:], {t}[:], f8, {r}[:])"),
        f"{name}_loss": (
            loss, "(n),(n),()->()", lambda t, r: f"void({t}[:], {t}[:], f8, {r}[:])"),
        f"{name}_loss_and_grad": (
            loss_grad, "(n),(n),()->(),(n)",
            lambda t, r: f"void({t}[:], {t}[:], f8, {r}[:], {r}[:])"),
        f"{name}_loss_label": (
            label, "(n),(),()->()", lambda t, r: f"void({t}[:], i8, f8, {r}[:])"),
        f"{name}_loss_label_and_grad": (
            label_grad, "(n),(),()->(),(n)",
            lambda t, r: f"void({t}[:], i8, f8, {r}[:], {r}[:])"),
    }


_SPECS = {
    **_specs("sparsemax", (_g_sparsemax, _g_threshold, _g_jvp, _g_loss, _g_loss_and_grad,
                           _g_loss_label, _g_loss_label_and_grad)),
    **_specs("entmax15", (_g_e15, _g_e15_threshold, _g_e15_jvp, _g_e15_loss,
                          _g_e15_loss_and_grad, _g_e15_loss_label, _g_e15_loss_label_and_grad)),
    **_alpha_specs("entmax_bisect", (_g_eb, _g_eb_threshold, _g_eb_jvp, _g_eb_loss,
                                     _g_eb_loss_and_grad, _g_eb_loss_label,
                                     _g_eb_loss_label_and_grad)),
}

_DOCS = {
    "sparsemax": """Sparsemax along the core dimension: ``p = max(z - tau, 0)``, summing to 1.

Signature ``(n)->(n)``. See :func:`sparsemax_nb.sparsemax` for the maths and the
non-finite rules; this gufunc gives the same bits as ``method="select"``.""",
    "sparsemax_threshold": """``(tau, support_size)`` along the core dimension.

Signature ``(n)->(),()``; ``support_size`` is int64, ``tau`` has the result dtype. A NaN row
(and ``n = 0``) gives ``tau = NaN`` and size 0, as :func:`sparsemax_nb.sparsemax_threshold`.""",
    "sparsemax_jvp": """Jacobian-vector product ``J(p) v = s * (v - mean_S v)`` (also the vjp).

Signature ``(n),(n)->(n)``; as :func:`sparsemax_nb.sparsemax_jvp`.""",
    "sparsemax_loss": """Sparsemax loss for a target distribution per row.

Signature ``(n),(n)->()``. A NaN row of ``z``, or a target row that is negative or does not
sum to 1 within ``1e-6 * n``, gives NaN (the public function raises instead).""",
    "sparsemax_loss_and_grad": """Sparsemax loss and its gradient ``sparsemax(z) - q``.

Signature ``(n),(n)->(),(n)``; invalid rows as :data:`sparsemax_loss` (NaN loss and
gradient).""",
    "sparsemax_loss_label": """Sparsemax loss for a class index per row (``q = e_label``).

Signature ``(n),()->()``, the index int64 (smaller integers cast safely). An index outside
``[0, n)`` gives NaN (the public function raises instead).""",
    "sparsemax_loss_label_and_grad": """Loss and gradient for a class index per row.

Signature ``(n),()->(),(n)``; invalid rows as :data:`sparsemax_loss_label`.""",
}
# 1.5-entmax: the same gufuncs, the same rules, the maths of sparsemax_nb.entmax15*.
_DOCS.update({
    "entmax15": """1.5-entmax along the core dimension: ``p = [z / 2 - tau]_+^2``, summing to 1.

Signature ``(n)->(n)``; the same bits as :func:`sparsemax_nb.entmax15` with
``method="select"``.""",
    "entmax15_threshold": """``(tau, support_size)`` of 1.5-entmax along the core dimension.

Signature ``(n)->(),()``; as :func:`sparsemax_nb.entmax15_threshold`.""",
    "entmax15_jvp": """Jacobian-vector product of 1.5-entmax (also the vjp).

Signature ``(n),(n)->(n)``; as :func:`sparsemax_nb.entmax15_jvp`.""",
    "entmax15_loss": """1.5-entmax Fenchel-Young loss for a target distribution per row.

Signature ``(n),(n)->()``; invalid rows give NaN, as :data:`sparsemax_loss`.""",
    "entmax15_loss_and_grad": """1.5-entmax loss and its gradient ``entmax15(z) - q``.

Signature ``(n),(n)->(),(n)``; invalid rows as :data:`entmax15_loss`.""",
    "entmax15_loss_label": """1.5-entmax loss for a class index per row.

Signature ``(n),()->()``; an index outside ``[0, n)`` gives NaN.""",
    "entmax15_loss_label_and_grad": """1.5-entmax loss and gradient for a class index per row.

Signature ``(n),()->(),(n)``; invalid rows as :data:`entmax15_loss_label`.""",
})
# alpha-entmax: alpha a core input of signature () (no default: gufuncs have none).
_DOCS.update({
    "entmax_bisect": """alpha-entmax along the core dimension: ``p = [(alpha - 1) z - tau]_+^(1 / (alpha - 1))``.

Signature ``(n),()->(n)``: ``alpha`` (float64) broadcasts against the batch dimensions
like any operand, one value per row. The same bits as :func:`sparsemax_nb.entmax_bisect`.
An ``alpha`` that is not finite and > 1 gives a NaN row (the public function raises).""",
    "entmax_bisect_threshold": """``(tau, support_size)`` of alpha-entmax along the core dimension.

Signature ``(n),()->(),()``; as :func:`sparsemax_nb.entmax_bisect_threshold`. An invalid
``alpha`` gives ``tau = NaN`` and size 0.""",
    "entmax_bisect_jvp": """Jacobian-vector product of alpha-entmax at output ``p`` (also the vjp).

Signature ``(n),(n),()->(n)`` (``p``, ``v``, ``alpha``); as
:func:`sparsemax_nb.entmax_bisect_jvp`. An invalid ``alpha`` gives a NaN row.""",
    "entmax_bisect_loss": """alpha-entmax Fenchel-Young loss for a target distribution per row.

Signature ``(n),(n),()->()`` (``z``, ``q``, ``alpha``); invalid target rows give NaN, as
:data:`sparsemax_loss`, and so does an ``alpha`` that is not finite and > 1.""",
    "entmax_bisect_loss_and_grad": """alpha-entmax loss and its gradient ``entmax_bisect(z, alpha) - q``.

Signature ``(n),(n),()->(),(n)``; invalid rows as :data:`entmax_bisect_loss` (NaN loss and
gradient).""",
    "entmax_bisect_loss_label": """alpha-entmax loss for a class index per row.

Signature ``(n),(),()->()`` (``z``, ``label``, ``alpha``); an index outside ``[0, n)`` or
an invalid ``alpha`` gives NaN.""",
    "entmax_bisect_loss_label_and_grad": """alpha-entmax loss and gradient for a class index per row.

Signature ``(n),(),()->(),(n)``; invalid rows as :data:`entmax_bisect_loss_label`.""",
})

_built: dict[str, Any] = {}


def _build(name):
    fn, sig, make = _SPECS[name]
    ints = "_loss" not in name
    fn.__name__ = name
    fn.__qualname__ = name
    fn.__doc__ = _DOCS[name]
    return guvectorize(_loops(make, ints), sig, nopython=True, cache=CACHE)(fn)


def __getattr__(name: str) -> np.ufunc:
    """Build each gufunc on first use (compile, or load from Numba's disk cache)."""
    if name in _SPECS:
        w = _built.get(name)
        if w is None:
            # Keep Numba's wrapper referenced: it owns the compiled loops of the ufunc.
            w = _built[name] = _build(name)
        # The plain numpy.ufunc: it pickles by name (``sparsemax_nb.gufuncs.<name>``), so
        # Dask workers rebuild it from the disk cache, and Dask's ``__array_ufunc__``
        # recognises it as a gufunc.
        g = w.ufunc
        globals()[name] = g
        return g
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_SPECS))
