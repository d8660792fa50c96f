"""airspeed velocity benchmarks of the CUDA kernels of sparsemax_nb.

Where no CUDA device is found (or Numba's simulator is on) the module defines no benchmark,
so asv skips it silently; at the test suite's tiny sizes the class stays and its ``setup``
raises ``NotImplementedError`` (asv's skip), so that path is exercised too. Each ``time_*`` synchronises the device, so it times the
kernels and not just the launch. ``time_copy`` is the memory floor on the GPU: a
device-to-device copy of the same array (one read, one write), and ``track_ratio_to_copy``
records the forward pass as a fraction of it (1.0 = copy speed). ``GpuEntmaxKernels`` times
the entmax kernels (1.5-entmax, alpha = 1.3, one alpha per row).

``SPARSEMAX_NB_ASV_TINY=1`` (read at import) shrinks every size.
"""

import os

import numpy as np

TINY = os.environ.get("SPARSEMAX_NB_ASV_TINY", "") not in ("", "0")

SHAPES = {
    "batch": (256, 1024) if TINY else (65536, 1024),
    "huge_row": (1, 2**14) if TINY else (1, 10**7),
    # U(0, 1): every entry within 1 of the max, the long-row path's dense-chunk filter.
    "huge_row_uniform": (1, 2**14) if TINY else (1, 10**7),
    "tiny_rows": (4096, 8) if TINY else (2**20, 8),
}


def _cuda():
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        raise NotImplementedError("the CUDA simulator is on: no GPU timings")
    try:
        from numba import cuda
    except ImportError:
        raise NotImplementedError("numba-cuda is not installed") from None
    if not cuda.is_available():
        raise NotImplementedError("no CUDA device")
    return cuda


class GpuKernels:
    params = (list(SHAPES), ["float32", "float64"])
    param_names = ["family", "dtype"]
    timeout = 300

    def setup(self, family, dtype):
        self.cuda = cuda = _cuda()
        import sparsemax_nb as sm

        self.sm = sm
        rows, K = SHAPES[family]
        rng = np.random.default_rng(0)
        if family.endswith("_uniform"):
            zh = rng.random((rows, K)).astype(dtype)
        else:
            zh = rng.standard_normal((rows, K)).astype(dtype)
        self.z = cuda.to_device(zh)
        self.out = cuda.device_array_like(self.z)
        self.p = sm.sparsemax(self.z)
        self.v = cuda.to_device(rng.standard_normal((rows, K)).astype(dtype))
        self.y = cuda.to_device(rng.integers(0, K, rows))
        # Compile every kernel outside the timings.
        sm.sparsemax_threshold(self.z)
        sm.sparsemax_jvp(self.p, self.v, out=self.out)
        sm.sparsemax_loss_and_grad(self.z, self.y)
        cuda.synchronize()

    def time_sparsemax(self, family, dtype):
        self.sm.sparsemax(self.z, out=self.out)
        self.cuda.synchronize()

    def time_threshold(self, family, dtype):
        self.sm.sparsemax_threshold(self.z)
        self.cuda.synchronize()

    def time_jvp(self, family, dtype):
        self.sm.sparsemax_jvp(self.p, self.v, out=self.out)
        self.cuda.synchronize()

    def time_loss_and_grad(self, family, dtype):
        self.sm.sparsemax_loss_and_grad(self.z, self.y)
        self.cuda.synchronize()

    def time_copy(self, family, dtype):
        self.out.copy_to_device(self.z)
        self.cuda.synchronize()

    def track_ratio_to_copy(self, family, dtype):
        """Device copy time / sparsemax time (CUDA events, median of 10)."""
        cuda = self.cuda

        def med(fn):
            ts = []
            for _ in range(10):
                e0, e1 = cuda.event(), cuda.event()
                e0.record()
                fn()
                e1.record()
                e1.synchronize()
                ts.append(cuda.event_elapsed_time(e0, e1))
            return float(np.median(ts))

        t_copy = med(lambda: self.out.copy_to_device(self.z))
        t_fwd = med(lambda: self.sm.sparsemax(self.z, out=self.out))
        return t_copy / t_fwd

    track_ratio_to_copy.unit = "ratio"


# The entmax kernels (one Newton threshold search for every alpha): 1.5-entmax, one alpha
# for every row, and one alpha per row.
ENTMAX_SHAPES = {
    "batch": (256, 1024) if TINY else (65536, 1024),
    "tiny_rows": (4096, 8) if TINY else (2**20, 8),
    "wide_rows": (16, 2**14) if TINY else (256, 2**16),
}


class GpuEntmaxKernels:
    params = (list(ENTMAX_SHAPES), ["float32", "float64"], ["entmax15", "1.3", "per_row"])
    param_names = ["family", "dtype", "alpha"]
    timeout = 300

    def setup(self, family, dtype, alpha):
        self.cuda = cuda = _cuda()
        import sparsemax_nb as sm

        rows, K = ENTMAX_SHAPES[family]
        rng = np.random.default_rng(0)
        self.z = cuda.to_device(rng.standard_normal((rows, K)).astype(dtype))
        self.out = cuda.device_array_like(self.z)
        self.y = cuda.to_device(rng.integers(0, K, rows))
        self.v = cuda.to_device(rng.standard_normal((rows, K)).astype(dtype))
        if alpha == "entmax15":
            self.fwd = lambda z, **kw: sm.entmax15(z, **kw)
            self.jvp = lambda p, v, **kw: sm.entmax15_jvp(p, v, **kw)
            self.loss = lambda z, y: sm.entmax15_loss_and_grad(z, y)
        else:
            a = 1.3 if alpha == "1.3" else rng.choice(np.array([1.05, 1.5, 2.0, 3.0]), rows)
            self.fwd = lambda z, **kw: sm.entmax_bisect(z, a, **kw)
            self.jvp = lambda p, v, **kw: sm.entmax_bisect_jvp(p, v, a, **kw)
            self.loss = lambda z, y: sm.entmax_bisect_loss_and_grad(z, y, a)
        # Compile every kernel outside the timings.
        self.p = self.fwd(self.z)
        self.jvp(self.p, self.v, out=self.out)
        self.loss(self.z, self.y)
        cuda.synchronize()

    def time_forward(self, family, dtype, alpha):
        self.fwd(self.z, out=self.out)
        self.cuda.synchronize()

    def time_jvp(self, family, dtype, alpha):
        self.jvp(self.p, self.v, out=self.out)
        self.cuda.synchronize()

    def time_loss_and_grad(self, family, dtype, alpha):
        self.loss(self.z, self.y)
        self.cuda.synchronize()


def _device_present():
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _cuda()
    except NotImplementedError:
        return False
    return True


if not TINY and not _device_present():
    # nothing to time without a GPU: no "n/a" rows, no tracebacks
    del GpuKernels, GpuEntmaxKernels
