"""airspeed velocity benchmarks of the entmax family (CPU): 1.5-entmax and alpha-entmax.

The bench command's case, ``(16384, 1024)`` float32 at full size (``(1024, 1024)`` here, as
the sparsemax ``batch`` family), plus the references the ratios are taken against:
``numpy.copyto`` (the memory floor) and NumPy's softmax. Every ``setup`` makes one call
first, so the timings never include compilation.

``SPARSEMAX_NB_ASV_TINY=1`` (read at import) shrinks every size, for the test suite;
``SPARSEMAX_NB_ASV_FULL=1`` adds float64 and alpha = 2 (see ``bench_cpu``).
"""

import os

import numpy as np

import sparsemax_nb as sm

TINY = os.environ.get("SPARSEMAX_NB_ASV_TINY", "") not in ("", "0")
FULL = os.environ.get("SPARSEMAX_NB_ASV_FULL", "") not in ("", "0")  # as bench_cpu
SHAPE = (16, 64) if TINY else (1024, 1024)
DTYPES = ["float32", "float64"] if (FULL or TINY) else ["float32"]
ALPHAS = [1.3, 1.5, 2.0] if (FULL or TINY) else [1.3, 1.5]


def _inputs(dtype, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(SHAPE).astype(dtype)
    labels = rng.integers(0, SHAPE[-1], size=SHAPE[:-1])
    return z, labels


class Entmax15:
    """``entmax15`` (both methods), its threshold, Jacobian and fused loss."""

    params = [["sort", "select"], DTYPES]
    param_names = ["method", "dtype"]

    def setup(self, method, dtype):
        self.z, self.labels = _inputs(dtype)
        self.out = np.empty_like(self.z)
        self.p = sm.entmax15(self.z, out=self.out, method=method)  # compile outside timing
        self.p = self.p.copy()
        self.v = np.ones_like(self.z)
        sm.entmax15_threshold(self.z, method=method)
        sm.entmax15_jvp(self.p, self.v, out=self.out)
        sm.entmax15_loss_and_grad(self.z, self.labels, method=method)

    def time_forward(self, method, dtype):
        sm.entmax15(self.z, out=self.out, method=method)

    def time_threshold(self, method, dtype):
        sm.entmax15_threshold(self.z, method=method)

    def time_jvp(self, method, dtype):
        sm.entmax15_jvp(self.p, self.v, out=self.out)

    def time_loss_and_grad(self, method, dtype):
        sm.entmax15_loss_and_grad(self.z, self.labels, method=method)


class EntmaxBisect:
    """``entmax_bisect`` at a few alphas, its Jacobian and fused loss."""

    params = [ALPHAS, DTYPES]
    param_names = ["alpha", "dtype"]

    def setup(self, alpha, dtype):
        self.z, self.labels = _inputs(dtype)
        self.out = np.empty_like(self.z)
        self.p = sm.entmax_bisect(self.z, alpha).copy()
        self.v = np.ones_like(self.z)
        sm.entmax_bisect(self.z, alpha, out=self.out)
        sm.entmax_bisect_jvp(self.p, self.v, alpha, out=self.out)
        sm.entmax_bisect_loss_and_grad(self.z, self.labels, alpha)
        sm.entmax_bisect_alpha_vjp(self.p, self.v, alpha)

    def time_forward(self, alpha, dtype):
        sm.entmax_bisect(self.z, alpha, out=self.out)

    def time_jvp(self, alpha, dtype):
        sm.entmax_bisect_jvp(self.p, self.v, alpha, out=self.out)

    def time_alpha_vjp(self, alpha, dtype):
        sm.entmax_bisect_alpha_vjp(self.p, self.v, alpha)

    def time_loss_and_grad(self, alpha, dtype):
        sm.entmax_bisect_loss_and_grad(self.z, self.labels, alpha)


class References:
    """The floors the bench's ratios use, on the same inputs."""

    params = [DTYPES]
    param_names = ["dtype"]

    def setup(self, dtype):
        self.z, _ = _inputs(dtype)
        self.out = np.empty_like(self.z)

    def time_copyto(self, dtype):
        np.copyto(self.out, self.z)

    def time_numpy_softmax(self, dtype):
        e = np.exp(self.z - self.z.max(axis=-1, keepdims=True))
        e /= e.sum(axis=-1, keepdims=True)
