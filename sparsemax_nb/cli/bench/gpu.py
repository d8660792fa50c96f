"""GPU benchmark: the CUDA kernels against a device-to-device copy (and entmax on the GPU).

:func:`bench_cuda` is what ``sparsemax-nb bench --device cuda`` calls. Times are CUDA-event
medians after one warm-up call (which compiles the kernels); each figure is reported with
the bytes the operation must move, its effective bandwidth, and the ratio to a
device-to-device copy of the same number of bytes (the contract's section 7 (docs/contract.md) memory floor, on the GPU).
"""

import os

import numpy as np

__all__ = ["bench_cuda"]


def _time_ms(cuda, fn, repeats):
    """Median milliseconds of ``fn()`` over ``repeats`` calls, timed with CUDA events."""
    fn()  # warm-up: compiles, allocates
    cuda.synchronize()
    times = []
    for _ in range(repeats):
        e0 = cuda.event()
        e1 = cuda.event()
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1))
    return float(np.median(times))


def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return torch


def bench_cuda(quick=False):
    """Measure the GPU kernels; one dict per measurement.

    Parameters
    ----------
    quick : bool, optional
        Smaller arrays (4096 x 1024 and one row of 10^6) and fewer repeats.

    Returns
    -------
    list of dict
        Keys: ``name``, ``shape``, ``dtype``, ``median_ms``, ``bytes`` (the bytes the
        operation must read and write), ``gbps`` (``bytes / time``), ``copy_ms`` and
        ``copy_gbps`` (a device-to-device copy of ``bytes / 2`` bytes, i.e. the same
        traffic), ``ratio_to_copy`` (``copy_ms / median_ms``: 1.0 is the memory floor),
        and ``device``. entmax rows (when PyTorch with CUDA and entmax are installed) also
        carry ``speedup_vs_entmax`` on the sparsemax row they match.

    Raises
    ------
    sparsemax_nb.backends.cuda.NoCudaDeviceError
        When no CUDA device is found, or under Numba's simulator (whose timings mean
        nothing).
    """
    from ...backends.cuda import NoCudaDeviceError, _cuda

    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        raise NoCudaDeviceError(
            "sparsemax_nb: no CUDA device was found (NUMBA_ENABLE_CUDASIM is set: the "
            "simulator cannot be benchmarked)"
        )
    cuda = _cuda()
    dev = cuda.get_current_device()
    name = getattr(dev, "name", "unknown GPU")
    device = name.decode() if isinstance(name, bytes) else str(name)
    if quick:
        return _measure(cuda, device, 4096, 1024, 10**6, 5)
    return _measure(cuda, device, 65536, 1024, 10**7, 20)


def _measure(cuda, device, rows, K, long_k, repeats):
    """The measurements of :func:`bench_cuda` (sizes given; the tests run it tiny under the
    simulator, where the times are meaningless)."""
    from ... import api as sm

    rng = np.random.default_rng(0)
    results = []

    def copy_ms(nbytes):
        src = cuda.device_array(nbytes // 2 // 4, np.float32)
        dst = cuda.device_array_like(src)
        return _time_ms(cuda, lambda: dst.copy_to_device(src), repeats)

    def record(name, shape, dtype, ms, nbytes):
        c = copy_ms(nbytes)
        results.append(
            dict(
                name=name, shape=tuple(shape), dtype=np.dtype(dtype).name, median_ms=ms,
                bytes=int(nbytes), gbps=nbytes / ms / 1e6, copy_ms=c,
                copy_gbps=nbytes / c / 1e6, ratio_to_copy=c / ms, device=device,
            )
        )
        return results[-1]

    z = cuda.to_device(rng.standard_normal((rows, K), dtype=np.float32))
    out = cuda.device_array_like(z)
    n = rows * K
    fwd = record(
        "sparsemax", (rows, K), np.float32,
        _time_ms(cuda, lambda: sm.sparsemax(z, out=out), repeats), 8 * n,
    )
    record(
        "sparsemax_threshold", (rows, K), np.float32,
        _time_ms(cuda, lambda: sm.sparsemax_threshold(z), repeats), 4 * n + 12 * rows,
    )
    p = sm.sparsemax(z)
    v = cuda.to_device(rng.standard_normal((rows, K), dtype=np.float32))
    record(
        "sparsemax_jvp", (rows, K), np.float32,
        _time_ms(cuda, lambda: sm.sparsemax_jvp(p, v, out=out), repeats), 12 * n,
    )
    y = cuda.to_device(rng.integers(0, K, rows))
    record(
        "sparsemax_loss_and_grad", (rows, K), np.float32,
        _time_ms(cuda, lambda: sm.sparsemax_loss_and_grad(z, y), repeats), 8 * n + 12 * rows,
    )
    zl = cuda.to_device(rng.standard_normal((1, long_k), dtype=np.float32))
    outl = cuda.device_array_like(zl)
    record(
        "sparsemax (one long row)", (1, long_k), np.float32,
        _time_ms(cuda, lambda: sm.sparsemax(zl, out=outl), repeats), 8 * long_k,
    )

    torch = _torch_cuda()
    if torch is not None:
        try:
            import entmax
        except ImportError:
            entmax = None
        if entmax is not None:
            zt = torch.as_tensor(np.asarray(z.copy_to_host()), device="cuda")

            def run_entmax():
                entmax.sparsemax(zt, dim=-1)

            # torch runs on its own current stream; time with torch's events.
            run_entmax()
            torch.cuda.synchronize()
            times = []
            for _ in range(repeats):
                e0 = torch.cuda.Event(enable_timing=True)
                e1 = torch.cuda.Event(enable_timing=True)
                e0.record()
                run_entmax()
                e1.record()
                e1.synchronize()
                times.append(e0.elapsed_time(e1))
            r = record("entmax.sparsemax (torch, cuda)", (rows, K), np.float32,
                       float(np.median(times)), 8 * n)
            fwd["speedup_vs_entmax"] = r["median_ms"] / fwd["median_ms"]
    return results
