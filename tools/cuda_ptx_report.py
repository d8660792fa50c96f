"""Compile the CUDA kernels for a GPU without one and report registers and spills.

Usage (no GPU needed; needs NVVM, NVRTC and ``ptxas``, e.g. from the ``nvidia-cuda-nvcc``
and ``nvidia-cuda-nvrtc`` wheels)::

    NUMBA_ENABLE_CUDASIM=0 python tools/cuda_ptx_report.py [--ptxas PATH] [--cc 80 90]

For each kernel and signature: the registers per thread, spill stores/loads and local
memory from ``ptxas -v``, and whether the search's product was kept unfused (no
``fma.rn.f64`` feeding the step test is hard to isolate, so the count of ``mul.rn.f64`` is
shown) and which atomics were emitted (``atom.global.max.u64``, ``atom.*.add.u32``; a
``atom.cas`` would mean a spin loop).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types as _t

os.environ["NUMBA_ENABLE_CUDASIM"] = "0"
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from numba import cuda, types  # noqa: E402

# Device functions ask the (absent) current device for its compute capability.
sys.modules["numba.cuda.dispatcher"].get_current_device = lambda: _t.SimpleNamespace(
    compute_capability=(8, 0)
)
import sparsemax_nb.backends.cuda_kernels as C  # noqa: E402


def A(t, n):
    return types.Array(t, n, "C")


f32, f64, b1, i32, i64, u64 = (types.float32, types.float64, types.boolean, types.int32,
                               types.int64, types.uint64)
SIGS = {
    "k_forward": [(A(f32, 3), A(f32, 3), i64, i64, i64), (A(f64, 3), A(f64, 3), i64, i64, i64)],
    "k_threshold": [(A(f32, 3), A(f32, 1), A(i64, 1), i64, i64, i64)],
    "k_forward_reg": [(A(f32, 1), A(f32, 1), i64, i64, i64, i64)],
    "k_threshold_reg": [(A(f32, 1), A(f32, 1), A(i64, 1), i64, i64, i64, i64)],
    "k_jvp": [(A(f32, 3), A(f32, 3), A(f32, 3), i64, i64, i64)],
    "k_loss_labels": [(A(f32, 3), A(i64, 1), i64, f64, A(f32, 1), A(f32, 3), b1, i64, i64, i64)],
    "k_loss_dist": [(A(f32, 3), A(f32, 3), f64, A(f32, 1), A(f32, 3), b1, i64, i64, i64)],
    "k_lr_gather": [(A(f32, 3), i64, i64, A(u64, 2), A(i32, 2), A(f64, 2), A(f64, 2))],
    "k_lr_write": [(A(f32, 3), A(f32, 3), i64, i64, A(f64, 2))],
    "k_lr_tau": [(A(f64, 2), A(f32, 1), A(i64, 1))],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ptxas", default=shutil.which("ptxas") or "/usr/local/cuda/bin/ptxas")
    ap.add_argument("--cc", nargs="+", type=int, default=[80, 90])
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    print(f"{'kernel':16} {'signature':10} {'sm':>3} {'regs':>5} {'spill st/ld':>11} "
          f"{'local':>6} {'shfl':>5} {'bar':>4} {'mul.rn.f64':>10} {'fma.f64':>7} atomics")
    for name, sigs in SIGS.items():
        for sig in sigs:
            for cc in args.cc:
                cap = (cc // 10, cc % 10)
                ptx, _ = cuda.compile_ptx(getattr(C, name).py_func, sig, cc=cap)
                path = os.path.join(tmp, f"{name}_{cc}.ptx")
                with open(path, "w") as f:
                    f.write(ptx)
                out = subprocess.run(
                    [args.ptxas, f"-arch=sm_{cc}", "-v", path, "-o", path + ".cubin"],
                    capture_output=True, text=True,
                ).stderr
                regs = re.search(r"Used (\d+) registers", out)
                spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", out)
                local = re.search(r"(\d+) bytes stack frame", out)
                atoms = sorted(set(re.findall(r"atom\.[\w.]+", ptx)))
                print(
                    f"{name:16} {str(sig[0].dtype):10} {cc:>3} "
                    f"{regs.group(1) if regs else '?':>5} "
                    f"{(spill.group(1) + '/' + spill.group(2)) if spill else '?':>11} "
                    f"{local.group(1) if local else '?':>6} {ptx.count('shfl.sync'):>5} "
                    f"{ptx.count('bar.sync') + ptx.count('barrier.sync'):>4} "
                    f"{ptx.count('mul.rn.f64'):>10} {ptx.count('fma.rn.f64'):>7} "
                    f"{' '.join(atoms)}"
                )


if __name__ == "__main__":
    main()
