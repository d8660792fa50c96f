"""Sparsemax with a temperature: ``sparsemax(z / T)`` for ``T > 0``.

A small mapping built on :mod:`.sparsemax`, which also shows what a new mapping needs: this
module and one line in :data:`sparsemax_nb.mappings.REGISTRY`. The parameter ``theta`` is
the temperature ``T`` (one value, or one per row).

With ``x = z / T``: ``p = max(x - tau, 0)``; the Jacobian with respect to ``z`` is
``(diag(s) - s s^T / k) / T``; the loss is the sparsemax loss at ``x``, whose gradient with
respect to ``z`` is ``(p - q) / T``. ``tau`` is reported in the coordinates of ``x``.
"""

import numpy as np
from numba import njit

from . import sparsemax as _sm
from ._rows import JIT, no_small_rows  # noqa: F401  (no_small_rows: the interface's hook)

NAME = "sparsemax_temperature"
THETA_NAME = "temperature"
# buf[:K] is the sparsemax threshold's scratch, buf[K:] holds the scaled row.
SCRATCH = 2
SMALL_K = 0
small_rows = no_small_rows
BIG_ROWS = False


def check_theta(T):
    """The temperature as a float64 array; every value finite and > 0."""
    if T is None:
        raise TypeError("temperature is required (a number > 0, or one per row)")
    t = np.asarray(T, dtype=np.float64)
    if not np.all(np.isfinite(t) & (t > 0)):
        raise ValueError("temperature must be finite and > 0")
    return t


@njit(**JIT)
def _scaled(z, buf, T):
    K = z.shape[0]
    x = buf[K : 2 * K]
    for i in range(K):
        x[i] = np.float64(z[i]) / T
    return x


@njit(**JIT)
def threshold(z, buf, method, theta):
    x = _scaled(z, buf, theta)
    return _sm.threshold(x, buf[: z.shape[0]], method, 0.0)


@njit(**JIT)
def tau_of(m, tau, theta):
    return m + tau


@njit(**JIT)
def write(z, p, m, tau, k, theta):
    if k == 0:
        for i in range(z.shape[0]):
            p[i] = np.nan
        return
    for i in range(z.shape[0]):
        p[i] = max((np.float64(z[i]) / theta - m) - tau, 0.0)


@njit(**JIT)
def jvp(p, v, out, theta):
    _sm.jvp(p, v, out, theta)
    for j in range(out.shape[0]):
        out[j] = out[j] / theta


@njit(**JIT)
def loss_label(z, label, m, tau, k, theta, scale, grad, want_grad):
    x = _scaled(z, np.empty(2 * z.shape[0], np.float64), theta)
    return _sm.loss_label(x, label, m, tau, k, 0.0, scale / theta, grad, want_grad)


@njit(**JIT)
def loss_dist(z, q, m, tau, k, theta, scale, grad, want_grad):
    x = _scaled(z, np.empty(2 * z.shape[0], np.float64), theta)
    return _sm.loss_dist(x, q, m, tau, k, 0.0, scale / theta, grad, want_grad)
