"""``sparsemax-nb bench``: every kernel side by side with its reference points (docs/contract.md, section 7).

For each case (a shape, a dtype and a scale ``s`` of ``standard_normal * s`` inputs) every
kernel and every reference is timed in the same rounds, interleaved (the order rotates from
round to round), so that drift in the machine's load hits all of them alike. A figure is the
median over rounds of the kernel's time divided by the reference's time *in the same round*.

References: the memory floor ``numpy.copyto(out, z)`` (one read, one write), NumPy's softmax
and the NumPy sort-based sparsemax; where installed, ``entmax.sparsemax`` (PyTorch, CPU) and
``optax.projections.projection_simplex`` under ``jax.jit(jax.vmap(...))`` (peers case only).

Further sections: the row-length sweep (K = 2 to 65536 at a fixed element count, float32,
``out=`` and allocating calls, in units of ``copyto`` and of NumPy's softmax, and ns per
row), the loss with labels against NumPy's softmax cross-entropy with its gradient, the growth of ``method="select"`` with the row length K on random and
adversarial rows (time per element should stay flat: the selection is linear-time), and the
compile cost (import plus first call in a fresh interpreter, with a cold and a warm Numba
on-disk cache).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

from ._timing import _REF_LABEL, _REFS, _fmt_ratio, _fmt_time, _median_ratio, _time_rounds  # noqa: F401

# Case table: name, shape, dtype, inner loops per timing, peers?  One entry per size preset.
# "full" is the figure set of the README; "quick" runs in well under a minute; "tiny" (hidden) is for
# the test suite.
_CASES = {
    "full": [
        ("large batch", (16384, 1024), "float32", 1, False),
        ("large batch", (2048, 16384), "float64", 1, False),
        ("huge row", (1, 10**7), "float64", 1, False),
        ("tiny rows", (10**6, 8), "float32", 1, False),
        ("small call", (1, 10), "float64", 1000, False),
        ("peers", (4096, 1000), "float32", 1, True),
    ],
    "quick": [
        ("large batch", (512, 1024), "float32", 1, False),
        ("large batch", (64, 8192), "float64", 1, False),
        ("huge row", (1, 5 * 10**5), "float64", 1, False),
        ("tiny rows", (5 * 10**4, 8), "float32", 1, False),
        ("small call", (1, 10), "float64", 200, False),
        ("peers", (256, 1000), "float32", 1, True),
    ],
    "tiny": [
        ("large batch", (64, 256), "float32", 1, False),
        ("huge row", (1, 4096), "float64", 1, False),
        ("tiny rows", (1000, 8), "float32", 1, False),
        ("small call", (1, 10), "float64", 20, False),
        ("peers", (32, 100), "float32", 1, True),
    ],
}
# growth: log2 of the smallest and largest K, and log2 of the elements per timing
_GROWTH = {"full": (10, 22, 22), "quick": (10, 15, 17), "tiny": (6, 9, 12)}
_SCALES = {"full": (0.1, 1.0, 3.0), "quick": (0.1, 1.0, 3.0), "tiny": (1.0,)}
_REPEAT = {"full": 5, "quick": 3, "tiny": 2}
# sweep: log2 of the smallest and largest K, and log2 of the elements per array (float32)
_SWEEP = {"full": (1, 16, 22), "quick": (1, 16, 18), "tiny": (1, 7, 10)}
_SWEEP_SCALES = (1.0, 0.1)
# loss: shapes of the loss-with-labels section (float32, s = 1)
_LOSS = {
    "full": [(16384, 1024), (1 << 20, 16)],
    "quick": [(1024, 1024), (1 << 16, 16)],
    "tiny": [(64, 256), (1024, 16)],
}
_SECTIONS = ("cases", "sweep", "loss", "growth", "compile", "entmax")


def add_arguments(parser):
    """Add the options of ``sparsemax-nb bench`` to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    """
    parser.add_argument(
        "--quick", action="store_true",
        help="smaller sizes and fewer rounds (well under a minute)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every row to PATH as JSON")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu",
        help="cpu (default): the Numba CPU kernels; cuda: the GPU kernels",
    )
    parser.add_argument(
        "--check", action="store_true",
        help="with --device cuda: run the GPU tests, check every launch path against float64 "
        "references, time against a copy/torch/entmax, write one JSON (--json, default "
        "sparsemax-nb-cuda-check.json)",
    )
    parser.add_argument(
        "--repeat", type=int, metavar="N", default=None,
        help="rounds per case; the figure is the median (default 5, --quick 3)",
    )
    parser.add_argument(
        "--only", metavar="SECTIONS", default=",".join(_SECTIONS),
        help="comma-separated subset of: cases, sweep, loss, growth, compile (default: all)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar on stderr"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    # even smaller sizes, for the test suite only
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)


# ----------------------------------------------------------------------------- progress


class _SimpleProgress:
    """A one-line progress bar on stderr, for when ``rich`` is not installed."""

    def __init__(self, total, enabled):
        self.total = max(total, 1)
        self.done = 0
        self.enabled = enabled
        self.label = ""
        self.tty = sys.stderr.isatty()
        self._last = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.enabled:
            sys.stderr.write("\n" if self.tty else "")
            sys.stderr.flush()

    def describe(self, label):
        self.label = label
        self._draw()

    def advance(self, n=1):
        self.done = min(self.done + n, self.total)
        self._draw()

    def _draw(self):
        if not self.enabled:
            return
        frac = self.done / self.total
        if self.tty:
            bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
            sys.stderr.write(f"\r[{bar}] {100 * frac:5.1f}% {self.label:<40.40}")
        else:
            # no carriage returns into a log file: a line every 10 %
            step = int(10 * frac)
            if step == self._last:
                return
            self._last = step
            sys.stderr.write(f"bench: {100 * frac:5.1f}% {self.label}\n")
        sys.stderr.flush()


class _RichProgress:
    def __init__(self, total, enabled):
        from rich.console import Console
        from rich.progress import (
            BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
        )

        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=Console(stderr=True), transient=True,
            disable=not enabled,
        )
        self.task = self.progress.add_task("bench", total=max(total, 1))

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def describe(self, label):
        self.progress.update(self.task, description=label)

    def advance(self, n=1):
        self.progress.advance(self.task, n)


def _progress(total, enabled):
    """rich's bar on a terminal when rich is installed; else plain lines on stderr (a rich
    bar in a log file would show nothing at all)."""
    if not sys.stderr.isatty():
        return _SimpleProgress(total, enabled)
    try:
        import rich  # noqa: F401
    except ImportError:
        return _SimpleProgress(total, enabled)
    return _RichProgress(total, enabled)


# ----------------------------------------------------------------------------- timing


# ----------------------------------------------------------------------------- peers


def _peers(numba_threads):
    """``{name: make(x) -> zero-arg callable}`` for the installed peers (none is required)."""
    out = {}
    try:
        import entmax
        import torch
    except Exception:  # ImportError, or a broken install: the column is just left out
        pass
    else:
        # same thread count as the Numba kernels, so the comparison is like for like
        torch.set_num_threads(numba_threads)

        def make_entmax(x):
            xt = torch.from_numpy(np.ascontiguousarray(x))

            def run():
                with torch.no_grad():
                    entmax.sparsemax(xt, dim=-1)

            return run

        out["entmax"] = make_entmax
    try:
        import jax
        import jax.numpy as jnp
        from optax.projections import projection_simplex
    except Exception:
        pass
    else:
        proj = jax.jit(jax.vmap(projection_simplex))

        def make_optax(x):
            xj = jnp.asarray(x)  # JAX keeps float32 unless x64 is enabled
            proj(xj).block_until_ready()  # trace and compile outside the timings

            def run():
                proj(xj).block_until_ready()

            return run

        out["optax"] = make_optax
    return out


def _peer_versions():
    v = {}
    for mod in ("torch", "entmax", "jax", "optax"):
        try:
            m = __import__(mod)
            v[mod] = getattr(m, "__version__", "?")
        except Exception:
            pass
    return v


# ----------------------------------------------------------------------------- cases


def _case_functions(x, labels, peers_wanted, peers):
    """Kernels and references for one input, as zero-argument callables."""
    import sparsemax_nb as sm
    from sparsemax_nb.cli.bench._numpy_ref import numpy_softmax, numpy_sparsemax

    o = np.empty_like(x)
    o2 = np.empty_like(x)
    p = sm.sparsemax(x)
    v = np.random.default_rng(1).standard_normal(x.shape).astype(x.dtype)
    kernels = {
        "sparsemax[sort]": lambda: sm.sparsemax(x, out=o, method="sort"),
        "sparsemax[select]": lambda: sm.sparsemax(x, out=o, method="select"),
        "sparsemax[auto]": lambda: sm.sparsemax(x, out=o, method="auto"),
        "sparsemax_threshold": lambda: sm.sparsemax_threshold(x),
        "sparsemax_jvp": lambda: sm.sparsemax_jvp(p, v, out=o2),
        "sparsemax_loss_and_grad": lambda: sm.sparsemax_loss_and_grad(x, labels),
    }
    refs = {
        "copyto": lambda: np.copyto(o, x),
        "softmax": lambda: numpy_softmax(x),
        "numpy_sparsemax": lambda: numpy_sparsemax(x),
    }
    if peers_wanted:
        for name, make in peers.items():
            refs[name] = make(x)
    return kernels, refs


def _run_cases(preset, repeat, seed, prog, peers):
    rows = []
    rng = np.random.default_rng(seed)
    for case, shape, dtype, number, peers_wanted in _CASES[preset]:
        base = rng.standard_normal(shape, dtype=np.dtype(dtype))
        labels = rng.integers(0, shape[-1], size=shape[:-1])
        for s in _SCALES[preset]:
            prog.describe(f"{case} {shape} {dtype} s={s}")
            x = base * np.asarray(s, dtype=dtype)
            kernels, refs = _case_functions(x, labels, peers_wanted, peers)
            fns = {**kernels, **refs}
            for fn in fns.values():  # compile for this dtype and warm the caches
                fn()
            times = _time_rounds(fns, number, repeat, on_round=prog.advance)
            for name in fns:
                row = {
                    "case": case,
                    "kernel": name,
                    "reference": name in refs,
                    "dtype": dtype,
                    "shape": list(shape),
                    "s": s,
                    "number": number,
                    "rounds": repeat,
                    "median_s": float(np.median(times[name])),
                }
                for ref in _REFS:
                    row[f"ratio_{ref}"] = _median_ratio(times[name], times.get(ref))
                rows.append(row)
            del x, kernels, refs, fns
    return rows


# ----------------------------------------------------------------------------- sweep


def _run_sweep(preset, repeat, seed, prog):
    """Row-length sweep: float32 arrays of 2^lg_n elements as (2^lg_n / K, K) for every
    power of two K, at two scales; the out= call, the allocating call, copyto and NumPy's
    softmax timed in the same rounds."""
    import sparsemax_nb as sm
    from sparsemax_nb.cli.bench._numpy_ref import numpy_softmax

    lo, hi, lg_n = _SWEEP[preset]
    rng = np.random.default_rng(seed + 2)
    rows = []
    for lg in range(lo, hi + 1):
        K = 2**lg
        n_rows = max(1, 2 ** (lg_n - lg))
        base = rng.standard_normal((n_rows, K), dtype=np.float32)
        for s in _SWEEP_SCALES:
            prog.describe(f"sweep K=2^{lg} s={s}")
            x = base * np.float32(s)
            o = np.empty_like(x)
            fns = {
                "sparsemax": lambda: sm.sparsemax(x, out=o),
                "sparsemax (alloc)": lambda: sm.sparsemax(x),
                "copyto": lambda: np.copyto(o, x),
                "softmax": lambda: numpy_softmax(x),
            }
            for fn in fns.values():
                fn()
            times = _time_rounds(fns, 1, repeat)
            for name in fns:
                med = float(np.median(times[name]))
                row = {
                    "case": "sweep",
                    "kernel": name,
                    "reference": name in ("copyto", "softmax"),
                    "dtype": "float32",
                    "shape": [n_rows, K],
                    "K": K,
                    "s": s,
                    "number": 1,
                    "rounds": repeat,
                    "median_s": med,
                    "ns_per_row": 1e9 * med / n_rows,
                    **{f"ratio_{r}": None for r in _REFS},
                }
                row["ratio_copyto"] = _median_ratio(times[name], times["copyto"])
                row["ratio_softmax"] = _median_ratio(times[name], times["softmax"])
                rows.append(row)
            prog.advance()
            del x, o, fns
    return rows


def _print_sweep(rows):
    Ks = sorted({row["K"] for row in rows})
    print("\nsweep: sparsemax of float32 (2^n / K, K) arrays, standard_normal * s, "
          f"{rows[0]['shape'][0] * rows[0]['shape'][1]} elements, out= unless (alloc)")

    def line(label, kernel, s, key, fmt):
        vals = {row["K"]: row[key] for row in rows if row["kernel"] == kernel and row["s"] == s}
        print(f"  {label:<34}" + "".join(fmt(vals.get(K)) for K in Ks))

    print(f"  {'K':<34}" + "".join(f"{K:>9}" for K in Ks))

    def r(v):
        return f"{'-':>9}" if v is None else f"{v:9.3g}"

    for s in _SWEEP_SCALES:
        line(f"x copyto, s={s}", "sparsemax", s, "ratio_copyto", r)
    for s in _SWEEP_SCALES:
        line(f"x softmax, s={s}", "sparsemax", s, "ratio_softmax", r)
    for s in _SWEEP_SCALES:
        line(f"alloc x copyto, s={s}", "sparsemax (alloc)", s, "ratio_copyto", r)
    for s in _SWEEP_SCALES:
        line(f"alloc x softmax, s={s}", "sparsemax (alloc)", s, "ratio_softmax", r)
    for s in _SWEEP_SCALES:
        line(f"ns per row, s={s}", "sparsemax", s, "ns_per_row", r)
    line("ns per row, copyto", "copyto", _SWEEP_SCALES[0], "ns_per_row", r)


# ----------------------------------------------------------------------------- loss


def _softmax_xent_and_grad(z, labels):
    """NumPy's softmax cross-entropy (mean over rows) and its gradient: the reference a
    classifier would otherwise use."""
    n = z.shape[0]
    m = np.max(z, axis=-1, keepdims=True)
    e = np.exp(z - m)
    s = np.sum(e, axis=-1, keepdims=True)
    idx = np.arange(n)
    loss = np.mean(np.log(s[:, 0]) - (z[idx, labels] - m[:, 0]))
    e /= s
    e[idx, labels] -= 1
    e /= n
    return loss, e


def _run_loss(preset, repeat, seed, prog):
    """``sparsemax_loss_and_grad`` with class labels (mean reduction), the gradient
    allocated and into ``out=``, against copyto and NumPy's softmax cross-entropy."""
    import sparsemax_nb as sm

    rng = np.random.default_rng(seed + 3)
    rows = []
    for shape in _LOSS[preset]:
        prog.describe(f"loss {shape}")
        x = rng.standard_normal(shape, dtype=np.float32)
        labels = rng.integers(0, shape[-1], size=shape[:-1])
        o = np.empty_like(x)
        fns = {
            "sparsemax_loss_and_grad": lambda: sm.sparsemax_loss_and_grad(x, labels, reduction="mean"),
            "sparsemax_loss_grad (out=)": lambda: sm.sparsemax_loss_grad(
                x, labels, reduction="mean", out=o),
            "sparsemax_loss": lambda: sm.sparsemax_loss(x, labels, reduction="mean"),
            "copyto": lambda: np.copyto(o, x),
            "softmax_xent_and_grad": lambda: _softmax_xent_and_grad(x, labels),
        }
        for fn in fns.values():
            fn()
        times = _time_rounds(fns, 1, repeat)
        for name in fns:
            row = {
                "case": "loss",
                "kernel": name,
                "reference": name in ("copyto", "softmax_xent_and_grad"),
                "dtype": "float32",
                "shape": list(shape),
                "s": 1.0,
                "number": 1,
                "rounds": repeat,
                "median_s": float(np.median(times[name])),
                **{f"ratio_{r}": None for r in _REFS},
            }
            row["ratio_copyto"] = _median_ratio(times[name], times["copyto"])
            row["ratio_softmax_xent"] = _median_ratio(times[name], times["softmax_xent_and_grad"])
            rows.append(row)
        prog.advance()
        del x, o, fns
    return rows


def _print_loss(rows):
    print("\nloss with labels: float32, standard_normal, reduction='mean'")
    print(f"  {'kernel':<30}{'shape':>16}{'median':>11}{'x copyto':>10}{'x softmax-xent':>16}")
    for row in rows:
        name = row["kernel"] + (" (ref)" if row["reference"] else "")
        print(f"  {name:<30}{str(tuple(row['shape'])):>16}{_fmt_time(row['median_s']):>11}"
              f"{_fmt_ratio(row['ratio_copyto']):>10}{_fmt_ratio(row['ratio_softmax_xent']):>16}")


# ----------------------------------------------------------------------------- growth


def _growth_row(kind, K, rng):
    """One row of length K of the given kind (float64)."""
    if kind == "random":
        return rng.standard_normal(K)
    if kind == "sorted":
        return np.sort(rng.standard_normal(K))
    if kind == "all equal":
        return np.zeros(K)
    if kind == "geometric":
        # 2^-i: every prefix sum is distinct, and from i ~ 1075 on the entries underflow to
        # exact zeros, so most of a long row is one big tie
        return np.ldexp(1.0, -np.arange(K))
    if kind == "two clusters":
        # half the entries near 0, half near 1: the threshold falls in the gap, the support
        # is the whole upper cluster, and pivots keep splitting near-equal values
        z = rng.standard_normal(K) * 1e-3
        z[: K // 2] += 1.0
        return rng.permutation(z)
    raise ValueError(kind)


_GROWTH_KINDS = ("random", "sorted", "all equal", "geometric", "two clusters")


def _run_growth(preset, repeat, seed, prog):
    import numba

    import sparsemax_nb as sm

    lo, hi, lg_n = _GROWTH[preset]
    rng = np.random.default_rng(seed + 1)
    rows = []
    # One thread: a batch of short rows and one long row then do the same work per thread,
    # so the time per element compares the algorithm, not how well the rows parallelise.
    saved = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        for kind in _GROWTH_KINDS:
            for lg in range(lo, hi + 1):
                K = 2**lg
                n_rows = max(1, 2 ** (lg_n - lg))
                prog.describe(f"growth {kind} K=2^{lg}")
                x = np.tile(_growth_row(kind, K, rng), (n_rows, 1))
                o = np.empty_like(x)
                fns = {"select": lambda: sm.sparsemax(x, out=o, method="select")}
                fns["select"]()
                t = _time_rounds(fns, 1, repeat)["select"]
                med = float(np.median(t))
                rows.append({
                    "case": "growth",
                    "kernel": "sparsemax[select]",
                    "reference": False,
                    "input": kind,
                    "dtype": "float64",
                    "shape": [n_rows, K],
                    "K": K,
                    "s": None,
                    "number": 1,
                    "rounds": repeat,
                    "threads": 1,
                    "median_s": med,
                    "ns_per_element": 1e9 * med / x.size,
                    **{f"ratio_{r}": None for r in _REFS},
                })
                prog.advance()
    finally:
        numba.set_num_threads(saved)
    return rows


# ----------------------------------------------------------------------------- compile

_COMPILE_SCRIPT = r"""
import time
t0 = time.perf_counter()
import numpy as np
import sparsemax_nb
t1 = time.perf_counter()
z = np.random.default_rng(0).standard_normal((4096, 1000), dtype=np.float32)
t2 = time.perf_counter()
sparsemax_nb.sparsemax(z)
t3 = time.perf_counter()
print(t1 - t0, t3 - t2)
"""


def _run_compile(repeat, prog):
    """Import and first call in fresh interpreters: cold, then warm on-disk cache."""
    rows = []
    env = dict(os.environ)
    env.pop("NUMBA_DISABLE_JIT", None)
    # the package's directory on the path, whether it is installed or run from a checkout
    # (this file is sparsemax_nb/cli/bench/cpu.py: four levels up is the package's parent)
    pkg_root = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 3))
    env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
    results = {"cold": [], "warm": []}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="sparsemax-nb-cache-") as cache:
            env["NUMBA_CACHE_DIR"] = cache
            for state in ("cold", "warm"):
                prog.describe(f"compile ({state} cache)")
                t = time.perf_counter()
                r = subprocess.run(
                    [sys.executable, "-c", _COMPILE_SCRIPT], env=env,
                    capture_output=True, text=True, check=False,
                )
                wall = time.perf_counter() - t
                if r.returncode != 0:
                    raise RuntimeError(f"compile benchmark failed:\n{r.stderr}")
                imp, first = (float(v) for v in r.stdout.split()[-2:])
                results[state].append((imp, first, wall))
                prog.advance()
    for state, res in results.items():
        a = np.asarray(res)
        for j, what in enumerate(("import", "first call", "process wall")):
            rows.append({
                "case": "compile",
                "kernel": what,
                "reference": False,
                "cache": state,
                "dtype": "float32",
                "shape": [4096, 1000],
                "s": None,
                "number": 1,
                "rounds": repeat,
                "median_s": float(np.median(a[:, j])),
                **{f"ratio_{r}": None for r in _REFS},
            })
    return rows


# ----------------------------------------------------------------------------- reporting


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _meta(preset, repeat, peers):
    import numba

    import sparsemax_nb as sm

    # the threading layer is only known once a parallel function has run
    sm.sparsemax(np.zeros((64, 64)))
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "none (no parallel call ran)"
    return {
        "preset": preset,
        "rounds": repeat,
        "numba_threads": numba.get_num_threads(),
        "threading_layer": layer,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "sparsemax_nb": sm.__version__,
        "peers": _peer_versions() if peers else {},
    }


def _print_meta(meta):
    print(f"sparsemax-nb bench ({meta['preset']}): median of {meta['rounds']} rounds")
    print(f"  CPU: {meta['cpu']} ({meta['cpu_count']} logical CPUs)")
    print(
        f"  Numba threads: {meta['numba_threads']}, threading layer: {meta['threading_layer']}"
    )
    print(
        f"  Python {meta['python']}, NumPy {meta['numpy']}, Numba {meta['numba']}, "
        f"sparsemax_nb {meta['sparsemax_nb']}"
    )
    if "cases" not in meta["sections"]:
        print("  peers: not measured (no cases section in this run)")
    elif meta["peers"]:
        print("  peers: " + ", ".join(f"{k} {v}" for k, v in meta["peers"].items()))
    else:
        print("  peers: none installed (pip install 'sparsemax_nb[peers]')")
    print(
        "  figures: median over rounds of (kernel time / reference time in the same round);"
        " < 1 means faster than the reference"
    )


def _print_cases(rows):
    refs_present = [r for r in _REFS if any(row[f"ratio_{r}"] is not None for row in rows)]
    groups = {}
    for row in rows:
        key = (row["case"], tuple(row["shape"]), row["dtype"], row["s"])
        groups.setdefault(key, []).append(row)
    head = f"  {'kernel':<24}{'median':>11}" + "".join(
        f"{_REF_LABEL[r]:>12}" for r in refs_present
    )
    for (case, shape, dtype, s), grp in groups.items():
        n = grp[0]["number"]
        extra = f", {n} calls per timing" if n > 1 else ""
        print(f"\n{case}: shape {shape} {dtype}, s = {s}{extra}")
        print(head)
        for row in grp:
            name = row["kernel"] + (" (ref)" if row["reference"] else "")
            print(
                f"  {name:<24}{_fmt_time(row['median_s']):>11}"
                + "".join(f"{_fmt_ratio(row[f'ratio_{r}']):>12}" for r in refs_present)
            )


def _print_growth(rows):
    print("\ngrowth: sparsemax(method='select') on 1 thread, ns per element")
    Ks = sorted({row["K"] for row in rows})
    print(f"  {'input':<14}" + "".join(f"{'2^%d' % (K.bit_length() - 1):>7}" for K in Ks)
          + f"{'max/min':>9}")
    for kind in _GROWTH_KINDS:
        sel = {row["K"]: row["ns_per_element"] for row in rows if row["input"] == kind}
        if not sel:
            continue
        vals = [sel[K] for K in Ks]
        print(f"  {kind:<14}" + "".join(f"{v:7.2f}" for v in vals)
              + f"{max(vals) / min(vals):9.2f}")


def _print_compile(rows):
    print("\ncompile: fresh interpreter, NUMBA_CACHE_DIR in a new temporary directory; "
          "first call: sparsemax of a (4096, 1000) float32 array")
    print(f"  {'cache':<8}{'import':>11}{'first call':>12}{'process wall':>14}")
    for state in ("cold", "warm"):
        d = {row["kernel"]: row["median_s"] for row in rows if row["cache"] == state}
        print(
            f"  {state:<8}{_fmt_time(d['import']):>11}{_fmt_time(d['first call']):>12}"
            f"{_fmt_time(d['process wall']):>14}"
        )


def _print_generic(rows):
    """A plain table of a list of dicts (used for the CUDA results)."""
    if not rows:
        print("(no rows)")
        return
    keys = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    cells = [[_cell(row.get(k)) for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))


def _cell(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _write_json(path, meta, rows):
    with open(path, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1, default=_json_default)
    print(f"\nwrote {len(rows)} rows to {path}")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)


# ----------------------------------------------------------------------------- main


def _cuda_unavailable_reason():
    """Why no GPU timings can be taken here, or None when a real CUDA GPU is usable."""
    try:
        from numba import config, cuda
    except Exception as e:  # numba-cuda missing or broken
        return f"numba.cuda cannot be imported ({e})"
    if config.ENABLE_CUDASIM:
        # the simulator runs kernels in Python threads: its timings mean nothing
        return "the CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1), not a GPU"
    try:
        if not cuda.is_available():
            return "no usable CUDA GPU found (numba.cuda.is_available() is False)"
    except Exception as e:
        return f"no usable CUDA GPU found ({type(e).__name__}: {e})"
    return None


def _main_cuda(args):
    if getattr(args, "check", False):
        from sparsemax_nb.cli.bench.gpu import main_check

        return main_check(args)
    try:
        from sparsemax_nb.cli.bench.gpu import bench_cuda
    except ImportError as e:
        print(f"sparsemax-nb bench --device cuda: the GPU benchmarks are not available ({e})", file=sys.stderr)
        return 2
    reason = _cuda_unavailable_reason()
    if reason is not None:
        print(f"sparsemax-nb bench --device cuda: {reason}", file=sys.stderr)
        return 2
    try:
        rows = bench_cuda(bool(args.quick or args.tiny))
    except Exception as e:  # a driver or device error: one clear line, not a traceback
        print(f"sparsemax-nb bench --device cuda: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    rows = list(rows)
    print("sparsemax-nb bench --device cuda")
    _print_generic(rows)
    if args.json:
        _write_json(args.json, {"device": "cuda"}, rows)
    return 0


def _compile_rounds(preset, repeat):
    # a cold compile costs seconds to tens of seconds: one round unless the full run
    if repeat is not None:
        return max(1, min(repeat, 3))
    return 3 if preset == "full" else 1


def main(args):
    """Run ``sparsemax-nb bench``: time, print the tables, optionally write JSON.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options (see ``add_arguments``).

    Returns
    -------
    int
        0 on success; 2 for a bad option, or for ``--device cuda`` without a usable GPU or
        without the GPU benchmark module (one line on stderr says which).
    """
    if args.device == "cuda":
        return _main_cuda(args)

    import numba

    preset = "tiny" if args.tiny else "quick" if args.quick else "full"
    repeat = args.repeat if args.repeat is not None else _REPEAT[preset]
    if repeat < 1:
        print("sparsemax-nb bench: --repeat must be at least 1", file=sys.stderr)
        return 2
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in sections if s not in _SECTIONS]
    if bad:
        print(f"sparsemax-nb bench: unknown section(s) {bad}; choose from {list(_SECTIONS)}",
              file=sys.stderr)
        return 2

    peers = _peers(numba.get_num_threads()) if "cases" in sections else {}
    meta = _meta(preset, repeat, peers)
    meta["sections"] = sections
    _print_meta(meta)
    sys.stdout.flush()

    lo, hi, _ = _GROWTH[preset]
    total = 0
    if "cases" in sections:
        total += sum(len(_SCALES[preset]) for _ in _CASES[preset]) * repeat
    if "sweep" in sections:
        slo, shi, _ = _SWEEP[preset]
        total += (shi - slo + 1) * len(_SWEEP_SCALES)
    if "loss" in sections:
        total += len(_LOSS[preset])
    if "growth" in sections:
        total += len(_GROWTH_KINDS) * (hi - lo + 1)
    if "compile" in sections:
        total += 2 * _compile_rounds(preset, args.repeat)
    if "entmax" in sections:  # the entmax family: sparsemax_nb.cli.bench.entmax
        from . import entmax as entmax_bench
        total += entmax_bench.progress_steps(preset, repeat)
    rows = []
    with _progress(total, not args.no_progress) as prog:
        if "cases" in sections:
            case_rows = _run_cases(preset, repeat, args.seed, prog, peers)
            rows += case_rows
        if "sweep" in sections:
            sweep_rows = _run_sweep(preset, repeat, args.seed, prog)
            rows += sweep_rows
        if "loss" in sections:
            loss_rows = _run_loss(preset, repeat, args.seed, prog)
            rows += loss_rows
        if "growth" in sections:
            growth_rows = _run_growth(preset, repeat, args.seed, prog)
            rows += growth_rows
        if "compile" in sections:
            compile_rows = _run_compile(_compile_rounds(preset, args.repeat), prog)
            rows += compile_rows
        if "entmax" in sections:
            entmax_rows = entmax_bench.run(preset, repeat, args.seed, prog, numba.get_num_threads())
            rows += entmax_rows
    if "cases" in sections:
        _print_cases(case_rows)
    if "sweep" in sections:
        _print_sweep(sweep_rows)
    if "loss" in sections:
        _print_loss(loss_rows)
    if "growth" in sections:
        _print_growth(growth_rows)
    if "compile" in sections:
        _print_compile(compile_rows)
    if "entmax" in sections:
        entmax_bench.print_rows(entmax_rows)
    if args.json:
        _write_json(args.json, meta, rows)
    return 0
