"""alpha-entmax for any alpha > 1 (Peters, Niculae & Martins, ACL 2019), as ``@njit`` rows.

``p_i = [(alpha - 1) z_i - tau]_+ ^ (1 / (alpha - 1))``, ``tau`` such that the row sums to 1.
The threshold is bracketed, the support found and the root finished by Newton (with
Halley's correction) to convergence (:func:`._entmax.tau_bracket_newton`; long rows start
from a sampled estimate): exact to rounding, not to a bisection tolerance, in a handful of
vectorised passes over the candidates. alpha = 2 gives sparsemax,
alpha = 1.5 gives 1.5-entmax (:mod:`.entmax15`) and alpha -> 1 tends to softmax; the
coordinates of :mod:`._entmax` keep that limit free of overflow and of lost digits.

``theta`` is alpha, per row (the name is the name ``mapping="entmax_bisect"`` ops pass).
"""

import numpy as np
from numba import njit

from . import _entmax as E
from ._entmax_dalpha import alpha_vjp as theta_vjp  # noqa: F401 (the optional hook)
from ._rows import JIT, no_small_rows, row_max

NAME = "entmax_bisect"
THETA_NAME = "alpha"
SCRATCH = 2  # the candidates, and the logs of a pass (_entmax._pass_any)
SMALL_K = 0
BIG_ROWS = False
small_rows = no_small_rows
TOL32 = 2.0**-40


def check_theta(alpha):
    """``alpha`` as a float64 array, each value finite and > 1 (ValueError otherwise)."""
    a = np.asarray(alpha)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"alpha must be real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    bad = ~(np.isfinite(a) & (a > 1.0))
    if bad.any():
        v = float(a[bad].flat[0])
        hint = " (alpha = 1 is softmax)" if v == 1.0 else ""
        raise ValueError(f"alpha must be finite and > 1, got {v!r}{hint}")
    return a


# ``(m, v, k)``: the row max, the threshold v in the coordinates of _entmax (its offset
# L depends on alpha) and the support size (k == 0: a NaN row).


@njit(**JIT)
def threshold(z, buf, method, theta):
    """``(m, v, k)`` for row ``z`` at ``alpha = theta`` (``method`` is unused)."""
    m = row_max(z)
    if m != m:
        return m, np.nan, 0
    a1 = theta - 1.0
    n = E.gather(z, m, a1, buf)
    # float32 rows: the search may stop once v is within 2^-40 (the outputs, float32,
    # do not move); float64 rows: to rounding.
    tol = TOL32 if z.itemsize == 4 else 0.0
    v, k = E.tau_bracket_newton(buf, n, 1.0 / a1, E.offset(a1), tol)
    return m, v, k


@njit(**JIT)
def tau_of(m, v, theta):
    """``tau`` with ``p = [(alpha - 1) z - tau]_+^(1 / (alpha - 1))``."""
    a1 = theta - 1.0
    return a1 * m + (v + E.offset(a1))


@njit(**JIT)
def write(z, p, m, s, k, theta):
    E.write(z, p, m, s, k, theta - 1.0)


@njit(**JIT)
def jvp(p, v, out, theta):
    E.jvp(p, v, out, theta)


@njit(**JIT)
def loss_label(z, label, m, s, k, theta, scale, grad, want_grad):
    return E.loss_label(z, label, m, s, k, theta - 1.0, scale, grad, want_grad)


@njit(**JIT)
def loss_dist(z, q, m, s, k, theta, scale, grad, want_grad):
    return E.loss_dist(z, q, m, s, k, theta - 1.0, scale, grad, want_grad)
