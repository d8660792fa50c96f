"""1.5-entmax (Peters, Niculae & Martins, ACL 2019): the maths, as ``@njit`` row functions.

``entmax15(z) = [z / 2 - tau]_+^2`` with ``tau`` such that the row sums to 1. In the shifted
coordinates of :mod:`._entmax` (``x = (z - m) / 2``, ``max x = 0``) the threshold ``t`` is
the root in ``[-1, 0)`` of the convex, decreasing, piecewise-quadratic
``f(t) = sum (x_i - t)_+^2 - 1``. On a known support ``S`` of size ``k`` it solves the
quadratic ``k t^2 - 2 A t + B - 1 = 0``; written around a centre ``c`` (``A = sum (x - c)``,
``B = sum (x - c)^2`` over ``S``) its smaller root is

    ``t = c + (B - 1) / (A + sqrt(A^2 - k (B - 1)))``,

free of cancellation when ``c`` is at or below ``t`` and close to it (then ``B ~ 1`` and
``A >= 1``). Both thresholds end with that formula on the identified support:

* ``method="sort"``: the candidates sorted, and the support found by the running sums
  ``P = sum_{j<k} (x_(j) - x_(k))`` and ``W = sum_{j<k} (x_(j) - x_(k))^2``, updated with
  non-negative terms only (``x_(k)`` is in the support iff ``W < 1``).
* ``"select"``/``"auto"``: Newton on ``f`` from ``t = -1``; the candidates above ``t`` are
  compacted each pass and the quadratic's root on them is tried: when it lies at or below
  their minimum they are the support and the root is ``tau``. On a rare row where a few
  passes do not settle, the sorted finish runs on the few candidates left.

The outputs, Jacobian and loss are those of alpha-entmax at alpha = 1.5 (:mod:`._entmax`).
"""

import math

import numpy as np
from numba import njit

from .._checks import SORT
from . import _entmax as E
from ._rows import JIT, no_small_rows, row_max

NAME = "entmax15"
SCRATCH = 1
SMALL_K = 0
BIG_ROWS = False
small_rows = no_small_rows

ALPHA = 1.5
A1 = 0.5  # alpha - 1
# Newton passes before the sorted finish takes over the remaining candidates.
NEWTON_PASSES = 16


@njit(**JIT)
def _sorted_finish(buf, n):
    """``(t, k)`` from the candidates ``buf[:n]`` by sorting (see the module notes)."""
    c = buf[:n]
    c.sort()
    P = 0.0
    W = 0.0
    k = 1
    prev = c[n - 1]
    for j in range(2, n + 1):
        x = c[n - j]
        d = prev - x
        # Moving the centre down by d adds d to each of the j - 1 gaps above it.
        W += d * (2.0 * P + (j - 1) * d)
        P += (j - 1) * d
        prev = x
        if W < 1.0:
            k = j
        else:
            break
    # Centre c = x_(k): A = P and B = W over the top k, as accumulated when j == k.
    P = 0.0
    W = 0.0
    xk = c[n - k]
    for j in range(1, k + 1):
        d = c[n - j] - xk
        P += d
        W += d * d
    return xk + (W - 1.0) / (P + math.sqrt(P * P - k * (W - 1.0))), k


@njit(**JIT)
def _tau_newton(buf, n):
    """``(t, k)`` from the candidates ``buf[:n]`` by Newton (see the module notes)."""
    t = -1.0
    for _ in range(NEWTON_PASSES):
        c = 0
        A = 0.0
        B = 0.0
        xmin = np.inf
        for i in range(n):
            x = buf[i]
            keep = x > t
            d = x - t if keep else 0.0
            A += d
            B += d * d
            xmin = min(xmin, x) if keep else xmin
            # Compaction: t only rises towards tau, so dropped entries stay off the support.
            buf[c] = x
            c += keep
        n = c
        D = A * A - c * (B - 1.0)
        if D >= 0.0:
            tq = t + (B - 1.0) / (A + math.sqrt(D))
            if tq <= xmin:
                return tq, c
        t_new = t + (B - 1.0) / (2.0 * A)
        if not t_new > t:
            break
        t = t_new
    return _sorted_finish(buf, n)


@njit(**JIT)
def _row_threshold(z, buf, method):
    m = row_max(z)
    if m != m:
        return m, np.nan, 0
    n = E.gather(z, m, A1, buf)
    if method == SORT:
        t, k = _sorted_finish(buf, n)
    else:
        t, k = _tau_newton(buf, n)
    return m, t + 1.0, k


# --------------------------------------------------------------------------- the interface
# ``(m, s, k)``: the row max, the threshold carried as s = t + 1 (the offset L = -1 of
# _entmax, x = (z - m) / 2) and the support size (k == 0: a NaN row). theta is unused.


@njit(**JIT)
def threshold(z, buf, method, theta):
    """``(m, s, k)`` for row ``z`` (``buf``: ``K`` float64)."""
    return _row_threshold(z, buf, method)


@njit(**JIT)
def tau_of(m, s, theta):
    """``tau`` with ``entmax15(z) = [z / 2 - tau]_+^2``."""
    return 0.5 * m + (s - 1.0)


@njit(**JIT)
def write(z, p, m, s, k, theta):
    """``p = [z / 2 - tau]_+^2`` (a NaN row when ``k == 0``)."""
    E.write(z, p, m, s, k, A1)


@njit(**JIT)
def jvp(p, v, out, theta):
    """``J v = sqrt(p) * v - (sqrt(p) . v / sum sqrt(p)) sqrt(p)``."""
    E.jvp(p, v, out, ALPHA)


@njit(**JIT)
def loss_label(z, label, m, s, k, theta, scale, grad, want_grad):
    """The Tsallis-1.5 Fenchel-Young loss for class ``label`` (and its gradient)."""
    return E.loss_label(z, label, m, s, k, A1, scale, grad, want_grad)


@njit(**JIT)
def loss_dist(z, q, m, s, k, theta, scale, grad, want_grad):
    """The Tsallis-1.5 Fenchel-Young loss for target distribution ``q`` (and its gradient)."""
    return E.loss_dist(z, q, m, s, k, A1, scale, grad, want_grad)
