"""Sparsemax as NumPy generalized ufuncs (``numba.guvectorize``).

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

The row arithmetic is that of :mod:`sparsemax_nb._cpu` (``_row_threshold``, ``_row_write``
and the same loss formulas), so results are bitwise equal to the public API called with
``method="select"`` (the method used here; ``"auto"`` currently picks it too), including
the non-finite rules of SPEC section 4: a row holding NaN or ``+inf``, or only ``-inf``,
gives NaN; ``-inf`` entries of other rows give exact zeros.

Dtypes: loops exist for float32 and float64 (each computed in its own dtype, sums in
float64). ``sparsemax``, ``sparsemax_threshold`` and ``sparsemax_jvp`` also have loops for
bool and the 8/16-bit integers computed in float64, listed first so NumPy's first-safe-cast
loop search follows SPEC section 4 (bool and integers give float64, float16 gives
float32). The loss gufuncs have the float loops only (so int8/int16 scores would be
computed in float32 there: pass floats). Two float inputs of different precision promote
to float64 (NumPy's rule; the public loss functions instead use ``z``'s dtype).

What a gufunc cannot do: raise per-row errors. So, where the public API raises, these
return NaN for the offending row instead: a target row that is negative or does not sum to
1 (tolerance ``1e-6 * K``), a class index outside ``[0, K)``. There is no ``reduction``:
reduce the per-row loss yourself (``loss.mean()``), and no ``ignore_index``: mask rows.

The gufuncs are built (compiled, or loaded from Numba's on-disk cache) the first time each
attribute is used, so ``import sparsemax_nb.gufuncs`` is cheap.
"""

from typing import Any

import numpy as np
from numba import guvectorize, njit, types
from numba.extending import overload

from . import _cpu

__all__ = [
    "sparsemax",
    "sparsemax_threshold",
    "sparsemax_jvp",
    "sparsemax_loss",
    "sparsemax_loss_and_grad",
    "sparsemax_loss_label",
    "sparsemax_loss_label_and_grad",
]

_METHOD = _cpu.SELECT
_JIT: dict[str, Any] = dict(cache=True, nogil=True, error_model="numpy")

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
    """``z`` itself for a float row, else a float64 copy (bool and integer loops)."""
    raise NotImplementedError


@overload(_float_row, jit_options={"nogil": True, "error_model": "numpy"})
def _ol_float_row(z):
    # Chosen at typing time: integer loops share the float64 row kernels instead of
    # compiling the threshold machinery once more per integer dtype.
    if isinstance(z.dtype, types.Float):
        return lambda z: z
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
def _threshold_row(z, method):
    if _has_nan(z):
        return np.nan, np.nan, 0
    buf = np.empty(z.shape[0], np.float64)
    return _cpu._row_threshold(z, buf, method)


@njit(**_JIT)
def _forward(z, p, method):
    m, tau, k = _threshold_row(z, method)
    _cpu._row_write(z, p, m, tau, k)


@njit(**_JIT)
def _threshold(z, tau_out, k_out, method):
    m, tau, k = _threshold_row(z, method)
    tau_out[0] = m + tau
    k_out[0] = k


@njit(**_JIT)
def _jvp(p, v, out):
    # Same arithmetic as the CPU driver ``_jvp_rows``.
    K = p.shape[0]
    s = 0.0
    k = 0
    nan = _has_nan(p)  # see _has_nan: no comparison of a NaN p below
    if nan:
        for j in range(K):
            out[j] = np.nan
        return
    for j in range(K):
        pj = p[j]
        if pj > 0:
            s += np.float64(v[j])
            k += 1
        nan |= pj != pj
    if nan or k == 0:
        for j in range(K):
            out[j] = np.nan
        return
    mean = s / k
    for j in range(K):
        out[j] = np.float64(v[j]) - mean if p[j] > 0 else 0.0


@njit(**_JIT)
def _nan_row(loss, grad, want_grad):
    loss[0] = np.nan
    if want_grad:
        for j in range(grad.shape[0]):
            grad[j] = np.nan


@njit(**_JIT)
def _loss_dist(z, q, loss, grad, want_grad, scale, method):
    """As the CPU driver ``_loss_dist_rows``, plus the target check of the API."""
    K = z.shape[0]
    # A gufunc cannot raise: an invalid target row gives NaN (the API raises ValueError).
    qs = 0.0
    bad = _has_nan(q)
    if bad:
        _nan_row(loss, grad, want_grad)
        return
    for j in range(K):
        qj = np.float64(q[j])
        bad |= qj < 0
        qs += qj
    if bad or not abs(qs - 1.0) <= 1e-6 * K:
        _nan_row(loss, grad, want_grad)
        return
    m, tau, k = _threshold_row(z, method)
    if k == 0:
        _nan_row(loss, grad, want_grad)
        return
    # L = 1/2 ||p - q||^2 + sum_{j not in S} q_j (tau - z_j): both terms >= 0, no
    # cancellation near L = 0, and q_j = 0 terms are skipped so -inf never meets 0 * inf.
    acc = 0.0
    off = 0.0
    masked = False
    for j in range(K):
        d = np.float64(z[j]) - m
        pj = max(d - tau, 0.0)
        qj = np.float64(q[j])
        g = pj - qj
        acc += g * g
        # The CPU driver adds qj * (tau - d), infinite for a masked (-inf) entry. Compiled
        # branch-free, that product is also evaluated for qj == 0, and 0 * inf raises the
        # "invalid" flag NumPy reports as a warning; so infinite gaps are counted apart.
        # Same value: finite terms are added in the same order, and any masked entry with
        # target mass makes the loss +inf.
        gap = tau - d if d > -np.inf else 0.0
        if qj != 0.0 and not d > tau:
            off += qj * gap
            masked |= d == -np.inf
        if want_grad:
            grad[j] = g * scale
    loss[0] = np.inf if masked else 0.5 * acc + off


@njit(**_JIT)
def _loss_label(z, label, loss, grad, want_grad, scale, method):
    """As the CPU driver ``_loss_labels_rows`` (no ignore_index)."""
    K = z.shape[0]
    if label < 0 or label >= K:
        _nan_row(loss, grad, want_grad)
        return
    m, tau, k = _threshold_row(z, method)
    if k == 0:
        _nan_row(loss, grad, want_grad)
        return
    # Read before the loop: grad may be z itself (in place).
    dy = np.float64(z[label]) - m
    acc = 0.0
    for j in range(K):
        pj = max((np.float64(z[j]) - m) - tau, 0.0)
        g = pj - 1.0 if j == label else pj
        acc += g * g
        if want_grad:
            grad[j] = g * scale
    acc *= 0.5
    if not dy > tau:
        acc += tau - dy
    loss[0] = acc


# --------------------------------------------------------------------------- gufunc bodies
def _g_sparsemax(z, p):
    _forward(_float_row(z), p, _METHOD)


def _g_threshold(z, tau, k):
    _threshold(_float_row(z), tau, k, _METHOD)


def _g_jvp(p, v, out):
    _jvp(_float_row(p), _float_row(v), out)


def _g_loss(z, q, loss):
    _loss_dist(_float_row(z), _float_row(q), loss, loss, False, 1.0, _METHOD)


def _g_loss_and_grad(z, q, loss, grad):
    _loss_dist(_float_row(z), _float_row(q), loss, grad, True, 1.0, _METHOD)


def _g_loss_label(z, label, loss):
    _loss_label(_float_row(z), label, loss, loss, False, 1.0, _METHOD)


def _g_loss_label_and_grad(z, label, loss, grad):
    _loss_label(_float_row(z), label, loss, grad, True, 1.0, _METHOD)


_SPECS = {
    "sparsemax": (
        _g_sparsemax,
        "(n)->(n)",
        lambda t, r: f"void({t}[:], {r}[:])",
    ),
    "sparsemax_threshold": (
        _g_threshold,
        "(n)->(),()",
        lambda t, r: f"void({t}[:], {r}[:], i8[:])",
    ),
    "sparsemax_jvp": (
        _g_jvp,
        "(n),(n)->(n)",
        lambda t, r: f"void({t}[:], {t}[:], {r}[:])",
    ),
    "sparsemax_loss": (
        _g_loss,
        "(n),(n)->()",
        lambda t, r: f"void({t}[:], {t}[:], {r}[:])",
    ),
    "sparsemax_loss_and_grad": (
        _g_loss_and_grad,
        "(n),(n)->(),(n)",
        lambda t, r: f"void({t}[:], {t}[:], {r}[:], {r}[:])",
    ),
    "sparsemax_loss_label": (
        _g_loss_label,
        "(n),()->()",
        lambda t, r: f"void({t}[:], i8, {r}[:])",
    ),
    "sparsemax_loss_label_and_grad": (
        _g_loss_label_and_grad,
        "(n),()->(),(n)",
        lambda t, r: f"void({t}[:], i8, {r}[:], {r}[:])",
    ),
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

_built: dict[str, Any] = {}


def _build(name):
    fn, sig, make = _SPECS[name]
    ints = not name.startswith("sparsemax_loss")
    fn.__name__ = name
    fn.__qualname__ = name
    fn.__doc__ = _DOCS[name]
    return guvectorize(_loops(make, ints), sig, nopython=True, cache=True)(fn)


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
