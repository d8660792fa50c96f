"""airspeed velocity benchmarks of the CPU kernels of sparsemax_nb.

Every public function x method x dtype x shape family of section 7 of docs/contract.md, at moderate sizes so
that ``asv run --quick`` stays within a few minutes. Shape families:

- ``batch``: many medium rows (the usual classifier or attention batch);
- ``huge_row``: one long row (projection onto a large simplex);
- ``tiny_rows``: very many rows of 8 (per-row overhead);
- ``small_call``: one row of 10 (per-call overhead of the Python layer).

Numba compiles on first use, so every ``setup`` makes one call first: the timings never
include compilation. Compilation itself is tracked by ``Compile`` (fresh interpreter, cold and
warm on-disk cache).

The default grid is trimmed so that ``asv run --quick`` and ``asv continuous`` stay short:
float32 only, ``method="auto"`` (plus ``sort`` and ``select`` for the fused loss), a subset
of the row-length sweep and of the growth lengths, and no cold-compile goal.
``SPARSEMAX_NB_ASV_FULL=1`` (read at import) runs the full grid: both dtypes, every method,
every length. ``SPARSEMAX_NB_ASV_TINY=1`` shrinks every size, for the test suite.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

import sparsemax_nb as sm

TINY = os.environ.get("SPARSEMAX_NB_ASV_TINY", "") not in ("", "0")
FULL = os.environ.get("SPARSEMAX_NB_ASV_FULL", "") not in ("", "0")

if TINY:
    FAMILIES = {
        "batch": (16, 64),
        "huge_row": (1, 2048),
        "tiny_rows": (256, 8),
        "small_call": (1, 10),
    }
    GROWTH_K = [2**6, 2**9]
    SWEEP_K = [2, 16, 128]
    SWEEP_ELEMENTS = 2**12
    LOSS_SHAPES = [(64, 256), (1024, 16)]
else:
    FAMILIES = {
        "batch": (1024, 1024),
        "huge_row": (1, 2**20),
        "tiny_rows": (2**17, 8),
        "small_call": (1, 10),
    }
    GROWTH_K = [2**10, 2**14, 2**18] if FULL else [2**10, 2**18]
    SWEEP_K = [2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 65536] if FULL else [2, 16, 128, 1024, 65536]
    SWEEP_ELEMENTS = 2**22
    LOSS_SHAPES = [(16384, 1024), (2**20, 16)]

METHODS = ["sort", "select", "auto"] if (FULL or TINY) else ["auto"]
DTYPES = ["float32", "float64"] if (FULL or TINY) else ["float32"]
FAMILY_NAMES = list(FAMILIES)


def _inputs(family, dtype, seed=0):
    """``standard_normal`` scores of the family's shape, integer labels, and a target
    distribution (a random point of the simplex per row)."""
    rng = np.random.default_rng(seed)
    shape = FAMILIES[family]
    z = rng.standard_normal(shape).astype(dtype)
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    q = rng.random(shape)
    q /= q.sum(axis=-1, keepdims=True)
    return z, labels, q.astype(dtype)


class Sparsemax:
    """``sparsemax`` into a preallocated ``out`` and allocating its result."""

    params = [METHODS, DTYPES, FAMILY_NAMES]
    param_names = ["method", "dtype", "family"]

    def setup(self, method, dtype, family):
        self.z = _inputs(family, dtype)[0]
        self.out = np.empty_like(self.z)
        sm.sparsemax(self.z, out=self.out, method=method)  # compile outside the timing

    def time_out(self, method, dtype, family):
        sm.sparsemax(self.z, out=self.out, method=method)

    def time_alloc(self, method, dtype, family):
        sm.sparsemax(self.z, method=method)


class SparsemaxThreshold:
    """``sparsemax_threshold``: tau and the support size only."""

    params = [METHODS, DTYPES, FAMILY_NAMES]
    param_names = ["method", "dtype", "family"]

    def setup(self, method, dtype, family):
        self.z = _inputs(family, dtype)[0]
        sm.sparsemax_threshold(self.z, method=method)

    def time_threshold(self, method, dtype, family):
        sm.sparsemax_threshold(self.z, method=method)


class SparsemaxJvp:
    """``sparsemax_jvp`` (there is no method: it reads the support from ``p``)."""

    params = [DTYPES, FAMILY_NAMES]
    param_names = ["dtype", "family"]

    def setup(self, dtype, family):
        z = _inputs(family, dtype)[0]
        self.p = sm.sparsemax(z)
        self.v = np.random.default_rng(1).standard_normal(z.shape).astype(dtype)
        self.out = np.empty_like(self.v)
        sm.sparsemax_jvp(self.p, self.v, out=self.out)

    def time_out(self, dtype, family):
        sm.sparsemax_jvp(self.p, self.v, out=self.out)

    def time_alloc(self, dtype, family):
        sm.sparsemax_jvp(self.p, self.v)


_LOSS_FUNCTIONS = {
    "loss": sm.sparsemax_loss,
    "loss_grad": sm.sparsemax_loss_grad,
    "loss_and_grad": sm.sparsemax_loss_and_grad,
}


class SparsemaxLossLabels:
    """The three loss functions with integer class labels.

    ``variant`` is ``function:method``: every method for ``sparsemax_loss_and_grad`` (the
    one-pass kernel that the other two share), ``auto`` for the other two, to keep the number
    of asv processes down.
    """

    params = [
        ["loss:auto", "loss_grad:auto", "loss_and_grad:sort", "loss_and_grad:select",
         "loss_and_grad:auto"],
        DTYPES,
        FAMILY_NAMES,
    ]
    param_names = ["variant", "dtype", "family"]

    def setup(self, variant, dtype, family):
        self.z, self.labels, _ = _inputs(family, dtype)
        function, self.method = variant.split(":")
        self.fn = _LOSS_FUNCTIONS[function]
        self.fn(self.z, self.labels, method=self.method)

    def time_labels(self, variant, dtype, family):
        self.fn(self.z, self.labels, method=self.method)


class SparsemaxLossDistribution:
    """The three loss functions with one target distribution per row (method auto)."""

    params = [list(_LOSS_FUNCTIONS), DTYPES, FAMILY_NAMES]
    param_names = ["function", "dtype", "family"]

    def setup(self, function, dtype, family):
        self.z, _, self.q = _inputs(family, dtype)
        self.fn = _LOSS_FUNCTIONS[function]
        self.fn(self.z, self.q)

    def time_distribution(self, function, dtype, family):
        self.fn(self.z, self.q)


class LabelsToProportions:
    """``labels_to_proportions`` on 0/1 label rows."""

    params = [FAMILY_NAMES]
    param_names = ["family"]

    def setup(self, family):
        rng = np.random.default_rng(0)
        y = rng.random(FAMILIES[family]) < 0.3
        y[..., 0] = True  # every row needs a label
        self.y = y
        sm.labels_to_proportions(self.y)

    def time_labels_to_proportions(self, family):
        sm.labels_to_proportions(self.y)


class PeakMemory:
    """Peak resident memory: allocating a result versus writing into ``out=``.

    The two differ by one output array; the input and ``out`` are made in ``setup`` and so
    count in both.
    """

    params = [["sparsemax", "sparsemax_jvp", "sparsemax_loss_grad"], DTYPES, ["batch", "huge_row"]]
    param_names = ["function", "dtype", "family"]

    def setup(self, function, dtype, family):
        self.z, self.labels, _ = _inputs(family, dtype)
        self.p = sm.sparsemax(self.z)
        self.out = np.empty_like(self.z)
        self._call(function, None)

    def _call(self, function, out):
        if function == "sparsemax":
            return sm.sparsemax(self.z, out=out)
        if function == "sparsemax_jvp":
            return sm.sparsemax_jvp(self.p, self.z, out=out)
        return sm.sparsemax_loss_grad(self.z, self.labels, out=out)

    def peakmem_alloc(self, function, dtype, family):
        self._call(function, None)

    def peakmem_out(self, function, dtype, family):
        self._call(function, self.out)


class RowSweep:
    """The row-length sweep of ``sparsemax-nb bench``: float32 ``(SWEEP_ELEMENTS / K, K)``
    at two scales (1: sparse supports, 0.1: dense), with the references in the same class
    (``copyto``: the memory floor; NumPy's softmax) so that ratios come from one run."""

    params = [SWEEP_K, [1.0, 0.1]]
    param_names = ["K", "scale"]

    def setup(self, K, scale):
        rng = np.random.default_rng(0)
        self.z = rng.standard_normal((max(1, SWEEP_ELEMENTS // K), K), dtype=np.float32)
        self.z *= np.float32(scale)
        self.out = np.empty_like(self.z)
        sm.sparsemax(self.z, out=self.out)

    def time_out(self, K, scale):
        sm.sparsemax(self.z, out=self.out)

    def time_alloc(self, K, scale):
        sm.sparsemax(self.z)

    def time_ref_copyto(self, K, scale):
        np.copyto(self.out, self.z)

    def time_ref_softmax(self, K, scale):
        e = np.exp(self.z - np.max(self.z, axis=-1, keepdims=True))
        e /= np.sum(e, axis=-1, keepdims=True)


class LossLabelsGoal:
    """``sparsemax_loss_and_grad`` with labels (mean) on the shapes of the speed goals,
    against copyto and NumPy's softmax cross-entropy with its gradient."""

    params = [[f"{a}x{b}" for a, b in LOSS_SHAPES]]
    param_names = ["shape"]

    def setup(self, shape):
        n, K = (int(v) for v in shape.split("x"))
        rng = np.random.default_rng(0)
        self.z = rng.standard_normal((n, K), dtype=np.float32)
        self.y = rng.integers(0, K, size=n)
        self.out = np.empty_like(self.z)
        sm.sparsemax_loss_and_grad(self.z, self.y, reduction="mean")
        sm.sparsemax_loss_grad(self.z, self.y, reduction="mean", out=self.out)

    def time_loss_and_grad(self, shape):
        sm.sparsemax_loss_and_grad(self.z, self.y, reduction="mean")

    def time_loss_grad_out(self, shape):
        sm.sparsemax_loss_grad(self.z, self.y, reduction="mean", out=self.out)

    def time_ref_copyto(self, shape):
        np.copyto(self.out, self.z)

    def time_ref_softmax_xent_and_grad(self, shape):
        z = self.z
        n = z.shape[0]
        m = np.max(z, axis=-1, keepdims=True)
        e = np.exp(z - m)
        s = np.sum(e, axis=-1, keepdims=True)
        idx = np.arange(n)
        np.mean(np.log(s[:, 0]) - (z[idx, self.y] - m[:, 0]))
        e /= s
        e[idx, self.y] -= 1
        e /= n


def _growth_row(kind, K, rng):
    if kind == "random":
        return rng.standard_normal(K)
    if kind == "sorted":
        return np.sort(rng.standard_normal(K))
    if kind == "all_equal":
        return np.zeros(K)
    if kind == "geometric":
        # 2^-i: distinct prefix sums, then exact zeros once 2^-i underflows (one large tie)
        return np.ldexp(1.0, -np.arange(K))
    # two clusters, near 0 and near 1: the threshold sits in the gap
    z = rng.standard_normal(K) * 1e-3
    z[: K // 2] += 1.0
    return rng.permutation(z)


class SelectGrowth:
    """``method="select"`` on one row of length K, random and adversarial rows.

    The selection is linear-time: time / K should stay flat as K grows, whatever the row.
    """

    params = [["random", "sorted", "all_equal", "geometric", "two_clusters"], GROWTH_K]
    param_names = ["row", "K"]

    def setup(self, row, K):
        self.z = _growth_row(row, K, np.random.default_rng(0))[None, :]
        self.out = np.empty_like(self.z)
        sm.sparsemax(self.z, out=self.out, method="select")

    def time_select(self, row, K):
        sm.sparsemax(self.z, out=self.out, method="select")


_COMPILE_SCRIPT = (
    "import time; t0 = time.perf_counter(); import numpy as np; import sparsemax_nb; "
    "sparsemax_nb.sparsemax(np.linspace(-1.0, 1.0, 40).reshape(4, 10)); "
    "print(time.perf_counter() - t0)"
)


# The compile goal's case: the first call on a (4096, 1000) float32 array, timed alone.
_GOAL_SCRIPT = (
    "import time; import numpy as np; import sparsemax_nb; "
    "z = np.random.default_rng(0).standard_normal((4096, 1000), dtype=np.float32); "
    "t0 = time.perf_counter(); sparsemax_nb.sparsemax(z); print(time.perf_counter() - t0)"
)


def _import_and_first_call(cache_dir, script=_COMPILE_SCRIPT):
    """Seconds printed by ``script`` (by default ``import sparsemax_nb`` plus one float64
    ``sparsemax`` call) in a fresh interpreter whose Numba cache is ``cache_dir``."""
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = cache_dir
    env.pop("NUMBA_DISABLE_JIT", None)
    root = os.path.dirname(os.path.dirname(os.path.abspath(sm.__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True,
        check=True,
    )
    return float(r.stdout.split()[-1])


class Compile:
    """Import plus first call in a fresh interpreter (seconds): cold and warm Numba cache."""

    timeout = 600

    def track_import_first_call_cold(self):
        # a new empty cache directory on every call, so that a repeat is cold too
        with tempfile.TemporaryDirectory(prefix="sparsemax-nb-asv-") as cache:
            seconds = _import_and_first_call(cache)
            if TINY:  # the test suite: let the warm benchmark reuse this compile
                _TINY_WARM_CACHE.append(tempfile.mkdtemp(prefix="sparsemax-nb-asv-"))
                shutil.copytree(cache, _TINY_WARM_CACHE[-1], dirs_exist_ok=True)
            return seconds

    track_import_first_call_cold.unit = "seconds"

    def track_import_first_call_warm(self):
        if TINY and _TINY_WARM_CACHE:
            cache = _TINY_WARM_CACHE.pop()
            try:
                return _import_and_first_call(cache)
            finally:
                shutil.rmtree(cache, ignore_errors=True)
        with tempfile.TemporaryDirectory(prefix="sparsemax-nb-asv-") as cache:
            _import_and_first_call(cache)  # compiles and fills the cache
            return _import_and_first_call(cache)

    track_import_first_call_warm.unit = "seconds"


_TINY_WARM_CACHE = []


class CompileGoal:
    """First call of ``sparsemax`` on a (4096, 1000) float32 array in a fresh interpreter
    (seconds, import excluded): cold (empty Numba cache) and warm (cache filled by a
    previous process)."""

    timeout = 600

    def setup(self):
        if TINY or not FULL:  # two more cold compiles: the full grid only (Compile runs
            # the small first call in every grid)
            raise NotImplementedError("CompileGoal runs with SPARSEMAX_NB_ASV_FULL=1")

    def track_first_call_cold(self):
        with tempfile.TemporaryDirectory(prefix="sparsemax-nb-asv-") as cache:
            return _import_and_first_call(cache, _GOAL_SCRIPT)

    track_first_call_cold.unit = "seconds"

    def track_first_call_warm(self):
        with tempfile.TemporaryDirectory(prefix="sparsemax-nb-asv-") as cache:
            _import_and_first_call(cache, _GOAL_SCRIPT)
            return _import_and_first_call(cache, _GOAL_SCRIPT)

    track_first_call_warm.unit = "seconds"
