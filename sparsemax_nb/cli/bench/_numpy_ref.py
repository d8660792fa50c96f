"""Plain NumPy baselines for the demo and the benchmarks (not used by the kernels).

``numpy_sparsemax`` is the vectorised sort-based closed form that a NumPy user would write;
``numpy_softmax`` is ``exp(z - max) / sum``.
"""

import numpy as np


def numpy_softmax(z, axis=-1):
    """Softmax along ``axis``: ``exp(z - max) / sum``."""
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def numpy_sparsemax(z, axis=-1):
    """Sort-based sparsemax along ``axis`` in NumPy (Martins & Astudillo 2016, Algorithm 1)."""
    z = np.moveaxis(np.asarray(z), axis, -1)
    K = z.shape[-1]
    zs = -np.sort(-z, axis=-1)
    cs = np.cumsum(zs, axis=-1)
    ks = np.arange(1, K + 1, dtype=z.dtype)
    k = np.sum(1 + ks * zs > cs, axis=-1, keepdims=True)
    tau = (np.take_along_axis(cs, k - 1, axis=-1) - 1) / k
    return np.moveaxis(np.maximum(z - tau, 0), -1, axis)
