"""GPU benchmark: the CUDA kernels (sparsemax and the entmax mappings) against a
device-to-device copy, and PyTorch's ``entmax`` package where installed.

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
    # The entmax mappings (one Newton search for every alpha, see backends/cuda_entmax):
    # 1.5-entmax, alpha = 1.3 for all rows, and one alpha per row.
    record(
        "entmax15", (rows, K), np.float32,
        _time_ms(cuda, lambda: sm.entmax15(z, out=out), repeats), 8 * n,
    )
    record(
        "entmax_bisect (alpha 1.3)", (rows, K), np.float32,
        _time_ms(cuda, lambda: sm.entmax_bisect(z, 1.3, out=out), repeats), 8 * n,
    )
    alphas = rng.choice(np.array([1.05, 1.5, 2.0, 3.0]), rows)
    record(
        "entmax_bisect (alpha per row)", (rows, K), np.float32,
        _time_ms(cuda, lambda: sm.entmax_bisect(z, alphas, out=out), repeats), 8 * n + 8 * rows,
    )
    record(
        "entmax15_loss_and_grad", (rows, K), np.float32,
        _time_ms(cuda, lambda: sm.entmax15_loss_and_grad(z, y), repeats), 8 * n + 12 * rows,
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
            mine = {row["name"]: row for row in results}
            for label, ours, fn in (
                ("entmax.entmax15 (torch, cuda)", "entmax15",
                 lambda: entmax.entmax15(zt, dim=-1)),
                ("entmax.entmax_bisect alpha 1.3 (torch, cuda)", "entmax_bisect (alpha 1.3)",
                 lambda: entmax.entmax_bisect(zt, alpha=1.3, dim=-1)),
            ):
                r = record(label, (rows, K), np.float32, _time_torch(torch, fn, repeats), 8 * n)
                mine[ours]["speedup_vs_entmax"] = r["median_ms"] / mine[ours]["median_ms"]
    return results


# --------------------------------------------------------------------------- one-shot check
# (name, rows, K, axis, dtype, kind) of each launch configuration at the default block size
# (256 threads): float64 / short rows with ITEMS = 8 entries per thread (groups of 1 to 32
# threads, several warps, one row per block), the register-resident float32 kernels
# (32 entries per thread: several rows per warp, a warp per row, 2 and 8 warps per row),
# rows re-read from memory, a non-last axis, and long rows (several blocks per row: N(0, 1)
# and U(0, 1) rows whose candidates fit the buffer, constant rows that do not).
_CHECK_CASES = {
    "gpu": [
        ("rows_per_warp", 65536, 8, -1, "float32", "normal"),
        ("reg_rows_per_warp", 8192, 100, -1, "float32", "normal"),
        ("reg_warp_per_row", 65536, 1024, -1, "float32", "normal"),
        ("reg_warp_uniform", 16384, 1024, -1, "float32", "uniform"),
        ("reg_two_warps_ties", 2048, 2000, -1, "float32", "ties"),
        ("reg_eight_warps", 1024, 8000, -1, "float16", "normal"),
        ("two_warps", 4096, 300, -1, "float64", "normal"),
        ("block_row", 2048, 1100, -1, "float64", "normal"),
        ("reread", 256, 9000, -1, "float32", "normal"),
        ("axis0", 700, 300, 0, "float32", "normal"),
        ("long_normal", 3, 10**6, -1, "float32", "normal"),
        ("long_uniform", 2, 2 * 10**5, -1, "float32", "uniform"),
        ("long_constant", 2, 10**5 + 3, -1, "float64", "constant"),
        ("long_nan", 2, 10**5, -1, "float32", "nan"),
    ],
    # Under the simulator (the tests): the same paths at 8-thread blocks, tiny sizes.
    "tiny": [
        ("rows_per_warp", 20, 4, -1, "float32", "normal"),
        ("reg", 3, 200, -1, "float32", "ties"),
        ("two_warps", 3, 150, -1, "float64", "normal"),
        ("axis0", 40, 3, 0, "float32", "normal"),
        ("long_normal", 2, 150, -1, "float32", "normal"),
        ("long_uniform", 1, 150, -1, "float64", "uniform"),
        ("long_nan", 1, 100, -1, "float32", "nan"),
    ],
}


def _ref_sparsemax64(z, axis):
    """Float64 sparsemax by sorting (rows with a NaN or +inf, or all -inf, give NaN)."""
    from ._numpy_ref import numpy_sparsemax

    z = np.asarray(z, np.float64)
    zm = np.moveaxis(z, axis, -1)
    m = np.max(zm, axis=-1, keepdims=True)
    bad = ~np.isfinite(m) | np.isnan(zm).any(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        p = numpy_sparsemax(np.where(bad, 0.0, zm - np.where(bad, 0.0, m)), axis=-1)
    p = np.where(bad, np.nan, p)
    return np.moveaxis(p, -1, axis)


def _case_array(rng, rows, K, axis, dtype, kind):
    if kind == "uniform":
        z = rng.random((rows, K))
    elif kind == "constant":
        z = np.full((rows, K), 0.75)
    elif kind == "ties":
        z = np.round(rng.standard_normal((rows, K)) * 4) / 4  # many exact ties
    else:
        z = rng.standard_normal((rows, K)) * 2
    if kind == "nan":
        z[:, K // 3] = np.nan
    z = z.astype(dtype)
    return np.ascontiguousarray(z.T) if axis == 0 else z


def check_paths(cuda, cases, long_min_k=None):
    """Every launch path against float64 references; one dict per case.

    ``sparsemax`` and ``sparsemax_threshold`` are compared with a sort-based float64
    sparsemax; the Jacobian-vector product and the losses with the CPU kernels on the
    float64 copy of the same input. A case is ``ok`` when the largest error is within
    ``1e-5`` (float32) or ``1e-11`` (float64) and the support sizes agree exactly except on
    entries within that tolerance of ``tau``.
    """
    from ... import api as sm
    from ...backends import cuda as _gpu

    rng = np.random.default_rng(7)
    old = _gpu.set_long_rows(min_k=long_min_k) if long_min_k else None
    out = []
    try:
        for name, rows, K, axis, dtype, kind in cases:
            z = _case_array(rng, rows, K, axis, dtype, kind)
            z64 = z.astype(np.float64)
            tol = 1e-11 if dtype == "float64" else 1e-5
            zd = cuda.to_device(z)
            p = sm.sparsemax(zd, axis=axis).copy_to_host()
            ref = _ref_sparsemax64(z64, axis)
            nan_ok = bool(np.array_equal(np.isnan(p), np.isnan(ref)))
            err = {"sparsemax": float(np.nanmax(np.abs(p - ref), initial=0.0))}
            tau, k = sm.sparsemax_threshold(zd, axis=axis)
            tau = tau.copy_to_host()
            k = k.copy_to_host()
            kref = np.sum(np.moveaxis(ref, axis, -1) > 0, axis=-1)
            tref, kcpu = sm.sparsemax_threshold(z64, axis=axis)
            err["threshold"] = float(np.nanmax(np.abs(tau - tref), initial=0.0))
            # A support size may differ only through entries within rounding of tau.
            zm = np.moveaxis(z64, axis, -1)
            near = np.sum(np.abs(zm - tref[..., None]) <= tol * (1 + np.abs(zm)), axis=-1)
            good = np.isnan(tref) | (np.abs(k - kcpu) <= near)
            support_ok = bool(good.all()) and bool(np.all((kref == kcpu) | np.isnan(tref)
                                                         | (np.abs(kref - kcpu) <= near)))
            row = dict(name=name, shape=list(z.shape), axis=axis, dtype=dtype, kind=kind,
                       support_mismatches=int((k != kcpu).sum()), nan_rows_ok=nan_ok)
            if not kind.startswith("long") and not name.startswith("long"):
                v = rng.standard_normal(z.shape).astype(dtype)
                pc = sm.sparsemax(z64, axis=axis)
                jv = sm.sparsemax_jvp(cuda.to_device(pc.astype(dtype)), cuda.to_device(v),
                                      axis=axis).copy_to_host()
                err["jvp"] = float(np.nanmax(np.abs(jv - sm.sparsemax_jvp(
                    pc.astype(dtype).astype(np.float64), v.astype(np.float64), axis=axis)),
                    initial=0.0))
                y = rng.integers(0, K, np.delete(z.shape, axis % z.ndim))
                loss, grad = sm.sparsemax_loss_and_grad(zd, cuda.to_device(y), axis=axis)
                lc, gc = sm.sparsemax_loss_and_grad(z64, y, axis=axis)
                err["loss"] = float(np.nanmax(np.abs(loss.copy_to_host() - lc)
                                              / (1 + np.abs(lc)), initial=0.0))
                err["loss_grad"] = float(np.nanmax(np.abs(grad.copy_to_host() - gc),
                                                   initial=0.0))
            row["max_abs_err"] = err
            row["ok"] = nan_ok and support_ok and all(e <= 10 * tol for e in err.values())
            out.append(row)
    finally:
        if old is not None:
            _gpu.set_long_rows(**old)
    return out


# (name, rows, K, axis, dtype, kind) for the entmax kernels: groups of 1 to 32 threads,
# two warps, a block per row in registers, rows re-read from memory, a non-last axis,
# ties, NaN rows, and a long row (one block; the long-row kernels are sparsemax's only).
_ENTMAX_CASES = {
    "gpu": [
        ("rows_per_warp", 16384, 8, -1, "float32", "normal"),
        ("warp_row", 8192, 256, -1, "float32", "normal"),
        ("two_warps", 2048, 300, -1, "float64", "normal"),
        ("block_row", 1024, 1100, -1, "float64", "normal"),
        ("ties", 1024, 2000, -1, "float32", "ties"),
        ("uniform", 1024, 1024, -1, "float32", "uniform"),
        ("reread", 64, 9000, -1, "float32", "normal"),
        ("axis0", 500, 300, 0, "float32", "normal"),
        ("nan", 256, 1000, -1, "float32", "nan"),
        ("one_long_row", 2, 10**5, -1, "float64", "normal"),
    ],
    "tiny": [
        ("rows_per_warp", 20, 4, -1, "float32", "normal"),
        ("reread", 3, 150, -1, "float64", "ties"),
        ("axis0", 30, 3, 0, "float32", "nan"),
    ],
}


def check_entmax_paths(cuda, cases):
    """The entmax kernels against the CPU backend (exact to rounding); one dict per case
    and mapping: ``entmax15``, ``entmax_bisect`` at alpha = 1.3 and with one alpha per row
    (from 1.05, 1.5, 2, 3). Forward, threshold (support sizes exactly, except through
    entries within the tolerance of ``tau``), Jacobian-vector product and the loss with
    labels and its gradient; ``ok`` within ``1e-5`` (float32) or ``1e-11`` (float64)."""
    from ... import api as sm

    rng = np.random.default_rng(11)
    out = []
    for name, rows, K, axis, dtype, kind in cases:
        z = _case_array(rng, rows, K, axis, dtype, kind)
        zd = cuda.to_device(z)
        batch = tuple(np.delete(z.shape, axis % z.ndim))
        tol = 1e-11 if dtype == "float64" else 1e-5
        v = rng.standard_normal(z.shape).astype(dtype)
        y = rng.integers(0, K, batch)
        yd = cuda.to_device(y)
        per_row = rng.choice(np.array([1.05, 1.5, 2.0, 3.0]), batch)
        for label, fns, alpha in (
            ("entmax15", (sm.entmax15, sm.entmax15_threshold, sm.entmax15_jvp,
                          sm.entmax15_loss_and_grad), ()),
            ("entmax_bisect_1.3", (sm.entmax_bisect, sm.entmax_bisect_threshold,
                                   sm.entmax_bisect_jvp, sm.entmax_bisect_loss_and_grad),
             (1.3,)),
            ("entmax_bisect_per_row", (sm.entmax_bisect, sm.entmax_bisect_threshold,
                                       sm.entmax_bisect_jvp, sm.entmax_bisect_loss_and_grad),
             (per_row,)),
        ):
            f, th, jv, lg = fns
            p = f(zd, *alpha, axis=axis).copy_to_host()
            pc = f(z, *alpha, axis=axis)
            nan_ok = bool(np.array_equal(np.isnan(p), np.isnan(pc)))
            err = {"forward": float(np.nanmax(np.abs(p - pc), initial=0.0))}
            tau, k = th(zd, *alpha, axis=axis)
            tc, kc = th(z, *alpha, axis=axis)
            err["threshold"] = float(np.nanmax(np.abs(tau.copy_to_host() - tc), initial=0.0))
            k = k.copy_to_host()
            # A support size may differ only through entries within rounding of tau.
            pm = np.moveaxis(np.asarray(pc, np.float64), axis, -1)
            near = np.sum((pm > 0) & (pm <= tol), axis=-1)
            support_ok = bool(np.all(np.abs(k - kc) <= near))
            err["jvp"] = float(np.nanmax(np.abs(
                jv(cuda.to_device(pc), cuda.to_device(v), *alpha, axis=axis).copy_to_host()
                - jv(pc, v, *alpha, axis=axis)), initial=0.0))
            loss, grad = lg(zd, yd, *alpha, axis=axis)
            lc, gc = lg(z, y, *alpha, axis=axis)
            err["loss"] = float(np.nanmax(np.abs(loss.copy_to_host() - lc) / (1 + np.abs(lc)),
                                          initial=0.0))
            err["loss_grad"] = float(np.nanmax(np.abs(grad.copy_to_host() - gc), initial=0.0))
            out.append(dict(
                name=f"{label}/{name}", shape=list(z.shape), axis=axis, dtype=dtype, kind=kind,
                support_mismatches=int((k != kc).sum()), nan_rows_ok=nan_ok,
                max_abs_err=err,
                ok=nan_ok and support_ok and all(e <= 10 * tol for e in err.values()),
            ))
    return out


GPU_TEST_FILES = ("test_gpu.py", "test_gpu_entmax.py")


def _run_gpu_tests(timeout=420):
    """``pytest tests/test_gpu.py tests/test_gpu_entmax.py`` on the GPU
    (``NUMBA_ENABLE_CUDASIM=0``), when the tests are next to the package (a source
    checkout); ``None`` otherwise."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    # The source checkout holding this module (searched upward: the module may move).
    for root in Path(__file__).resolve().parents:
        test = root / "tests" / "test_gpu.py"
        if test.exists():
            break
    else:
        return None
    files = [str(root / "tests" / f) for f in GPU_TEST_FILES if (root / "tests" / f).exists()]
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    try:
        r = subprocess.run(
            [sys.executable, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider"],
            cwd=root, env=env, capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"returncode": None, "summary": f"timed out after {timeout} s",
                "seconds": timeout}
    lines = r.stdout.strip().splitlines()
    return {"returncode": r.returncode, "summary": lines[-1] if lines else "",
            "seconds": round(time.perf_counter() - t0, 1),
            "failures": [ln for ln in lines if ln.startswith("FAILED")][:20]}


def _time_torch(torch, fn, repeats):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1))
    return float(np.median(times))


def check_cuda(json_path=None, quick=False, run_tests=True, _cuda_mod=None, _tiny=False):
    """The one-shot GPU check behind ``sparsemax-nb bench --device cuda --check``.

    Runs the GPU test file (from a source checkout), checks every launch path against
    float64 references at the current (default) block size, times the kernels against a
    device-to-device copy, ``torch.softmax`` and ``entmax.sparsemax`` where installed, and
    writes one JSON document; the entmax kernels are checked against the CPU backend
    (:func:`check_entmax_paths`). Sized to finish well under 10 minutes on an H100/H200 (an
    estimate: the test files' kernel compiles dominate; the GPU tests get at most 7
    minutes).

    Parameters
    ----------
    json_path : str, optional
        Where to write the JSON (also returned).
    quick : bool, optional
        Smaller timing sizes (the checks are the same).
    run_tests : bool, optional
        Run ``tests/test_gpu.py`` and ``tests/test_gpu_entmax.py`` on the GPU first.

    Returns
    -------
    dict
        ``device``, ``tests`` (pytest's summary, or None), ``checks`` (one dict per launch
        path, with ``ok``), ``timings`` (as :func:`bench_cuda`, plus softmax/entmax rows),
        ``ok`` (every check passed and the tests, when run, passed).
    """
    import json
    import time

    from ...backends import cuda as _gpu

    t0 = time.perf_counter()
    if _cuda_mod is None:
        if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
            raise _gpu.NoCudaDeviceError(
                "sparsemax_nb: no CUDA device was found (NUMBA_ENABLE_CUDASIM is set: "
                "run the check on a GPU)"
            )
        cuda = _gpu._cuda()
        name = getattr(cuda.get_current_device(), "name", "unknown GPU")
        device = name.decode() if isinstance(name, bytes) else str(name)
    else:  # the tests: the simulator at tiny sizes
        cuda = _cuda_mod
        device = "simulator"
    doc = {"device": device, "block_size": _gpu._TPB[0]}
    doc["tests"] = _run_gpu_tests() if run_tests else None
    cases = _CHECK_CASES["tiny" if _tiny else "gpu"]
    doc["checks"] = check_paths(cuda, cases, long_min_k=32 if _tiny else 10**5)
    doc["checks"] += check_entmax_paths(cuda, _ENTMAX_CASES["tiny" if _tiny else "gpu"])
    if _tiny:
        timings = _measure(cuda, device, 3, 16, 40, 1)
        rows, K, repeats = 3, 16, 1
    else:
        rows, K, repeats = (8192, 1024, 10) if quick else (65536, 1024, 20)
        timings = _measure(cuda, device, rows, K, 10**6 if quick else 10**7, repeats)
    torch = None if _tiny else _torch_cuda()
    if torch is not None:
        zt = torch.randn(rows, K, device="cuda")
        ms = _time_torch(torch, lambda: torch.softmax(zt, dim=-1), repeats)
        fwd = timings[0]
        timings.append(dict(name="torch.softmax (cuda)", shape=[rows, K], dtype="float32",
                            median_ms=ms, bytes=8 * rows * K, gbps=8 * rows * K / ms / 1e6,
                            ratio_to_copy=fwd["copy_ms"] / ms, device=device))
        fwd["speedup_vs_torch_softmax"] = ms / fwd["median_ms"]
    doc["timings"] = timings
    tests_ok = doc["tests"] is None or doc["tests"]["returncode"] == 0
    doc["ok"] = tests_ok and all(c["ok"] for c in doc["checks"])
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(doc, f, indent=1, default=str)
    return doc


def main_check(args):
    """``sparsemax-nb bench --device cuda --check``: run :func:`check_cuda`, print a summary.

    Returns 0 when every check (and the GPU tests) passed, 1 when one failed, 2 without a
    usable GPU.
    """
    import sys

    from ...backends.cuda import NoCudaDeviceError

    path = args.json or "sparsemax-nb-cuda-check.json"
    try:
        doc = check_cuda(path, quick=bool(args.quick))
    except NoCudaDeviceError as e:
        print(f"sparsemax-nb bench --device cuda --check: {e}", file=sys.stderr)
        return 2
    print(f"sparsemax-nb bench --device cuda --check on {doc['device']} "
          f"({doc['seconds']} s; JSON in {path})")
    if doc["tests"] is not None:
        print(f"  tests/{{{','.join(GPU_TEST_FILES)}}}: {doc['tests']['summary']}")
    for c in doc["checks"]:
        worst = max(c["max_abs_err"].values())
        print(f"  {'ok  ' if c['ok'] else 'FAIL'} {c['name']:36} {str(c['shape']):18} "
              f"{c['dtype']:8} max err {worst:.2e}")
    for t in doc["timings"]:
        ratio = t.get("ratio_to_copy")
        print(f"  {t['name']:34} {t['median_ms']:9.3f} ms"
              + (f"  {ratio:5.2f} x copy" if ratio is not None else ""))
    return 0 if doc["ok"] else 1
