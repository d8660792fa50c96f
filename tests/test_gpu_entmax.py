"""The entmax mappings on the GPU backend, against the CPU backend and tests/naive.py.

Under Numba's CUDA simulator by default (tests/conftest.py): every simulated thread is a
Python thread, so rows are short and few. Most tests run at 8 threads per block (ITEMS = 8
entries per thread in registers): K > 64 takes the path that re-reads the row from memory
every pass, K <= 4 puts several rows in a block. The tests with the ``tpb`` fixture run at
the default block size (256 threads) too: groups of 8 threads (32 rows per block), two-warp
groups (block-wide votes), and one row per block. ``NUMBA_ENABLE_CUDASIM=0 pytest
tests/test_gpu_entmax.py`` runs the same tests on a real GPU.
"""

import math
import os

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

import naive  # noqa: E402
import sparsemax_nb as sm  # noqa: E402
from sparsemax_nb.backends import cuda as _gpu  # noqa: E402

if not cuda.is_available():  # pragma: no cover - NUMBA_ENABLE_CUDASIM=0 without a GPU
    pytest.skip("no CUDA device and the simulator is off", allow_module_level=True)

RNG = np.random.default_rng(4321)
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
DEFAULT_TPB = _gpu._TPB[0]
# Every alpha runs the same device search (one branch for alpha <= 2, one above); the
# simulator, which runs threads one by one, takes two of them (CI time), a GPU all five.
ALPHAS = [1.3, 3.0] if SIMULATOR else [1.05, 1.3, 1.5, 2.0, 3.0]


@pytest.fixture(autouse=True)
def small_blocks():
    old = _gpu.set_block_size(8)
    yield
    _gpu.set_block_size(old)


@pytest.fixture(params=[8, DEFAULT_TPB], ids=lambda t: f"tpb{t}")
def tpb(request):
    _gpu.set_block_size(request.param)
    return request.param


def dev(a):
    return cuda.to_device(np.ascontiguousarray(a))


def host(a):
    return a.copy_to_host()


def tol(dt):
    return 1e-6 if np.dtype(dt) == np.float32 else 1e-12


# (name, alpha): "entmax15" is sm.entmax15*, else sm.entmax_bisect* at alpha.
MAPPINGS = [("entmax15", None)] + [("bisect", a) for a in ALPHAS]


def ids(m):
    return m[0] if m[1] is None else f"alpha{m[1]}"


def fwd(m, z, axis=-1, **kw):
    if m[0] == "entmax15":
        return sm.entmax15(z, axis=axis, **kw)
    return sm.entmax_bisect(z, m[1], axis=axis, **kw)


def thr(m, z, axis=-1, **kw):
    if m[0] == "entmax15":
        return sm.entmax15_threshold(z, axis=axis, **kw)
    return sm.entmax_bisect_threshold(z, m[1], axis=axis, **kw)


def jvp(m, p, v, axis=-1, **kw):
    if m[0] == "entmax15":
        return sm.entmax15_jvp(p, v, axis=axis, **kw)
    return sm.entmax_bisect_jvp(p, v, m[1], axis=axis, **kw)


def loss_and_grad(m, z, t, axis=-1, **kw):
    if m[0] == "entmax15":
        return sm.entmax15_loss_and_grad(z, t, axis=axis, **kw)
    return sm.entmax_bisect_loss_and_grad(z, t, m[1], axis=axis, **kw)


def loss(m, z, t, axis=-1, **kw):
    if m[0] == "entmax15":
        return sm.entmax15_loss(z, t, axis=axis, **kw)
    return sm.entmax_bisect_loss(z, t, m[1], axis=axis, **kw)


def naive_fwd(m, z, axis=-1):
    if m[0] == "entmax15":
        return naive.entmax15(z, axis=axis)
    return naive.entmax_bisect(z, m[1], axis=axis)


def naive_thr(m, z, axis=-1):
    if m[0] == "entmax15":
        return naive.entmax15_threshold(z, axis=axis)
    return naive.entmax_bisect_threshold(z, m[1], axis=axis)


def alpha_of(m):
    return 1.5 if m[1] is None else m[1]


def check_forward(m, z, axis=-1, naive_too=True):
    """GPU forward and threshold against the CPU backend (and the naive reference)."""
    dt = z.dtype
    p = fwd(m, dev(z), axis=axis)
    assert p.dtype == dt and p.shape == z.shape
    ph = host(p)
    pc = fwd(m, z, axis=axis)
    np.testing.assert_allclose(ph, pc, atol=tol(dt), rtol=0)
    tau, k = thr(m, dev(z), axis=axis)
    tc, kc = thr(m, z, axis=axis)
    assert host(tau).dtype == dt and host(k).dtype == np.int64
    np.testing.assert_allclose(host(tau), tc, atol=tol(dt), rtol=0)
    np.testing.assert_array_equal(host(k), kc)
    if naive_too:
        zn = z.astype(np.float64)
        np.testing.assert_allclose(ph, naive_fwd(m, zn, axis), atol=tol(dt), rtol=0)
        tn, kn = naive_thr(m, zn, axis)
        np.testing.assert_allclose(host(tau), tn, atol=tol(dt), rtol=0)
        np.testing.assert_array_equal(host(k), kn)
    return ph


# --------------------------------------------------------------------------- forward
@pytest.mark.parametrize("m", MAPPINGS, ids=ids)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_and_threshold_vs_cpu_and_naive(m, dtype):
    # K = 1, several rows per 8-thread block (K = 3), rows in registers (K = 40), rows
    # re-read from memory (K = 150).
    for K in (1, 3, 40, 150):
        z = (RNG.normal(size=(3, K)) * 3).astype(dtype)
        check_forward(m, z)


@pytest.mark.parametrize("m", MAPPINGS, ids=ids)
def test_adversarial_rows(m):
    inf = math.inf
    K = 12
    rows = [
        np.full(K, 5.0),  # all equal
        np.r_[np.full(4, 2.0), np.zeros(K - 4)],  # a tie at the top
        np.sort(RNG.normal(size=K)),  # sorted up
        np.sort(RNG.normal(size=K))[::-1],  # sorted down
        np.r_[1e30, -1e30, 1e30 - 1e15, np.zeros(K - 3)],  # huge
        np.r_[[-inf] * 5, RNG.normal(size=K - 5)],  # masked entries
        np.r_[[-inf] * (K - 1), 3.0],  # one unmasked entry
        np.linspace(-1e-9, 0.0, K),  # nearly all equal
        -(2.0 ** -np.arange(K)),  # geometric gaps
        np.arange(K) * 1e3,  # one dominant entry
    ]
    z = np.array(rows, dtype=np.float64)
    check_forward(m, z)
    check_forward(m, z.astype(np.float32), naive_too=False)
    z1 = RNG.normal(size=(4, 1))
    np.testing.assert_array_equal(host(fwd(m, dev(z1))), np.ones((4, 1)))
    check_forward(m, z1)


def test_near_ties_take_the_float_probes(monkeypatch):
    # Rows whose entries enter the support within a few ulps of each other: Newton stops
    # moving v and the search probes the neighbouring floats (next_up / next_down), as
    # on the CPU; alpha from just above 1 to 10.
    from sparsemax_nb.backends import cuda_entmax as E

    calls = {"up": 0, "down": 0}
    if SIMULATOR:
        up, down = E.next_up, E.next_down

        def next_up(x):
            calls["up"] += 1
            return up(x)

        def next_down(x):
            calls["down"] += 1
            return down(x)

        monkeypatch.setattr(E, "next_up", next_up)
        monkeypatch.setattr(E, "next_down", next_down)
    z = np.array([
        np.r_[0.0, -np.logspace(-12, 0, 9)],
        np.r_[np.zeros(3), -1e-14 * np.arange(1, 8)],
        np.r_[0.0, -1e-8, -2e-8, np.full(7, -1.0)],
        np.r_[0.0, np.full(3, -0.5), -2.0, -2.0, np.full(4, -3.0)],
    ])
    for a in (1.001, 1.01, 2.01, 2.5, 5.0, 10.0):
        check_forward(("bisect", a), z, naive_too=False)
    if SIMULATOR:
        assert calls["up"] > 0 and calls["down"] > 0


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # the simulator's NumPy scalars
@pytest.mark.parametrize("m", [MAPPINGS[0], ("bisect", 1.3), ("bisect", 3.0)], ids=ids)
def test_non_finite_rows(m):
    inf, nan = math.inf, math.nan
    z = np.array(
        [
            [0.0, 0.0, -inf, 1.0],
            [-inf, -inf, -inf, -inf],
            [1.0, nan, 0.0, 2.0],
            [1.0, inf, 0.0, 2.0],
            [1e308, -1e308, 1e308 - 1e292, 5.0],
        ]
    )
    ph = host(fwd(m, dev(z)))
    np.testing.assert_allclose(ph, fwd(m, z), atol=1e-12, rtol=0)
    assert ph[0, 2] == 0.0 and np.isnan(ph[1:4]).all() and not np.isnan(ph[[0, 4]]).any()
    tau, k = thr(m, dev(z))
    tc, kc = thr(m, z)
    np.testing.assert_allclose(host(tau), tc, atol=1e-12, rtol=0)
    np.testing.assert_array_equal(host(k), kc)
    np.testing.assert_array_equal(host(k)[1:4], 0)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("m", [MAPPINGS[0], ("bisect", 1.3), ("bisect", 3.0)], ids=ids)
def test_every_axis_of_3d(m, axis):
    z = RNG.normal(size=(3, 4, 5)) * 2
    check_forward(m, z, axis=axis)
    check_forward(m, z.astype(np.float32), axis=axis, naive_too=False)


@pytest.mark.parametrize("axis", [0, -1])
def test_alpha_per_row(axis):
    z = RNG.normal(size=(4, 3, 6)) * 2
    batch = np.delete(np.array(z.shape), axis % 3)
    alpha = RNG.choice(ALPHAS, size=tuple(batch))
    p = host(sm.entmax_bisect(dev(z), alpha, axis=axis))
    np.testing.assert_allclose(p, sm.entmax_bisect(z, alpha, axis=axis), atol=1e-12, rtol=0)
    np.testing.assert_allclose(p, naive.entmax_bisect(z, alpha, axis=axis), atol=1e-12, rtol=0)
    tau, k = sm.entmax_bisect_threshold(dev(z), alpha, axis=axis)
    tn, kn = naive.entmax_bisect_threshold(z, alpha, axis=axis)
    np.testing.assert_allclose(host(tau), tn, atol=1e-12, rtol=0)
    np.testing.assert_array_equal(host(k), kn)
    # A broadcast alpha (one value per outer index) is one value per row too.
    a2 = RNG.choice(ALPHAS, size=(tuple(batch)[0], 1))
    np.testing.assert_allclose(host(sm.entmax_bisect(dev(z), a2, axis=axis)),
                               sm.entmax_bisect(z, a2, axis=axis), atol=1e-12, rtol=0)


def test_bad_alpha_raises_before_any_work():
    z = dev(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="alpha"):
        sm.entmax_bisect(z, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        sm.entmax_bisect(z, np.array([1.5, np.nan]))
    with pytest.raises(ValueError, match="broadcast"):
        sm.entmax_bisect(z, np.array([1.5, 2.0, 3.0]))


def test_empty_shapes_out_and_in_place():
    m = MAPPINGS[0]
    assert fwd(m, dev(np.zeros((3, 0)))).shape == (3, 0)
    tau, k = thr(m, dev(np.zeros((3, 0))))
    assert np.isnan(host(tau)).all() and (host(k) == 0).all()
    assert fwd(m, dev(np.zeros((0, 4)))).shape == (0, 4)
    z = RNG.normal(size=(3, 6))
    out = cuda.device_array((3, 6), np.float64)
    assert sm.entmax_bisect(dev(z), 1.3, out=out) is out
    np.testing.assert_allclose(host(out), sm.entmax_bisect(z, 1.3), atol=1e-12)
    zd = dev(z)
    sm.entmax15(zd, out=zd)
    np.testing.assert_allclose(host(zd), sm.entmax15(z), atol=1e-12)
    zd = dev(z)
    y = np.array([0, 5, 2])
    sm.entmax_bisect_loss_grad(zd, dev(y), 1.3, out=zd)
    np.testing.assert_allclose(host(zd), sm.entmax_bisect_loss_grad(z, y, 1.3), atol=1e-12)


def test_stream_argument():
    z = RNG.normal(size=(3, 7))
    s = cuda.stream()
    p = sm.entmax15(dev(z), stream=s)
    s.synchronize()
    np.testing.assert_allclose(host(p), sm.entmax15(z), atol=1e-12)
    tau, k = sm.entmax_bisect_threshold(dev(z), 2.5, stream=s)
    s.synchronize()
    np.testing.assert_allclose(host(tau), sm.entmax_bisect_threshold(z, 2.5)[0], atol=1e-12)
    lo = sm.entmax_bisect_loss(dev(z), dev(np.array([0, 1, 2])), 1.3, reduction="sum",
                               stream=s)
    s.synchronize()
    np.testing.assert_allclose(host(lo), sm.entmax_bisect_loss(z, [0, 1, 2], 1.3,
                                                               reduction="sum"), rtol=1e-12)


# --------------------------------------------------------------------------- jvp
@pytest.mark.parametrize("m", MAPPINGS, ids=ids)
def test_jvp_vs_cpu_and_naive(m):
    for K, dtype in ((6, np.float64), (90, np.float64), (20, np.float32)):
        z = (RNG.normal(size=(3, K)) * 2).astype(dtype)
        p = fwd(m, z)
        v = RNG.normal(size=z.shape).astype(dtype)
        out = host(jvp(m, dev(p), dev(v)))
        assert out.dtype == dtype
        np.testing.assert_allclose(out, jvp(m, p, v), atol=tol(dtype), rtol=0)
        np.testing.assert_allclose(out, naive.entmax_jvp(p, v, alpha_of(m)),
                                   atol=10 * tol(dtype), rtol=0)
    # A NaN row and a row with no positive entry give NaN rows, as on the CPU.
    p = np.array([[np.nan, 0.5, 0.5], [0.0, 0.0, 0.0], [0.2, 0.8, 0.0]])
    v = RNG.normal(size=p.shape)
    out = host(jvp(m, dev(p), dev(v)))
    np.testing.assert_allclose(out, jvp(m, p, v), atol=1e-12, rtol=0)
    assert np.isnan(out[:2]).all() and not np.isnan(out[2]).any()


def test_jvp_per_row_alpha_and_axis_0_in_place():
    z = RNG.normal(size=(5, 4, 3))
    alpha = RNG.choice(ALPHAS, size=(4, 3))
    p = sm.entmax_bisect(z, alpha, axis=0)
    v = RNG.normal(size=z.shape)
    vd = dev(v)
    sm.entmax_bisect_jvp(dev(p), vd, alpha, axis=0, out=vd)
    np.testing.assert_allclose(host(vd), sm.entmax_bisect_jvp(p, v, alpha, axis=0),
                               atol=1e-12, rtol=0)


# --------------------------------------------------------------------------- losses
@pytest.mark.parametrize("m", MAPPINGS, ids=ids)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_loss_labels_vs_cpu_and_naive(m, reduction):
    for K, dtype in ((7, np.float64), (100, np.float64), (9, np.float32)):
        n = 4
        z = (RNG.normal(size=(n, K)) * 2).astype(dtype)
        y = RNG.integers(0, K, n)
        y[1] = -100
        kw = dict(reduction=reduction, ignore_index=-100)
        lg, gg = loss_and_grad(m, dev(z), dev(y), **kw)
        lc, gc = loss_and_grad(m, z, y, **kw)
        lh = host(lg)
        assert lh.dtype == dtype and lh.shape == np.shape(lc)
        np.testing.assert_allclose(lh, lc, rtol=10 * tol(dtype), atol=tol(dtype))
        np.testing.assert_allclose(host(gg), gc, atol=tol(dtype), rtol=0)
        assert (host(gg)[1] == 0).all()
        if reduction == "none":
            keep = y != -100
            ln = naive.entmax_loss(z[keep].astype(np.float64), y[keep], alpha_of(m))
            np.testing.assert_allclose(lh[keep], ln, rtol=1e-9, atol=10 * tol(dtype))
            assert lh[1] == 0.0
        lo = host(loss(m, dev(z), dev(y), **kw))
        np.testing.assert_allclose(lo, lc, rtol=10 * tol(dtype), atol=tol(dtype))


@pytest.mark.parametrize("m", MAPPINGS, ids=ids)
def test_loss_dist_vs_cpu_and_naive(m):
    for axis in (0, -1):
        z = RNG.normal(size=(3, 4, 6)) * 2
        q = RNG.random(size=z.shape)
        q[q < 0.5] = 0.0
        q = np.moveaxis(q, axis, -1)
        q[..., 0] += 0.1
        q /= q.sum(axis=-1, keepdims=True)
        q = np.ascontiguousarray(np.moveaxis(q, -1, axis))
        for reduction in ("none", "mean"):
            lg, gg = loss_and_grad(m, dev(z), dev(q), axis=axis, reduction=reduction)
            lc, gc = loss_and_grad(m, z, q, axis=axis, reduction=reduction)
            np.testing.assert_allclose(host(lg), lc, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(host(gg), gc, atol=1e-12, rtol=0)
        ln = naive.entmax_loss(z, q, alpha_of(m), axis=axis)
        np.testing.assert_allclose(host(loss(m, dev(z), dev(q), axis=axis)), ln, rtol=1e-9,
                                   atol=1e-12)


@pytest.mark.parametrize("m", [MAPPINGS[0], ("bisect", 1.05), ("bisect", 3.0)], ids=ids)
def test_loss_masked_and_nan_rows(m):
    inf, nan = math.inf, math.nan
    z = np.array([[1.0, -inf, 0.0, 0.5], [1.0, nan, 0.0, 2.0], [-inf, 2.0, -inf, 1.0]])
    y = np.array([0, 0, 1])
    lg, gg = loss_and_grad(m, dev(z), dev(y))
    lc, gc = loss_and_grad(m, z, y)
    np.testing.assert_allclose(host(lg), lc, rtol=1e-12)
    np.testing.assert_allclose(host(gg), gc, atol=1e-12, rtol=0)
    assert np.isnan(host(lg)[1]) and not np.isnan(host(lg)[[0, 2]]).any()
    # A target on a masked entry: infinite loss, as on the CPU.
    q = np.array([[0.5, 0.5, 0.0, 0.0], [0.25] * 4, [0.0, 0.5, 0.0, 0.5]])
    lg, gg = loss_and_grad(m, dev(z), dev(q))
    lc, gc = loss_and_grad(m, z, q)
    np.testing.assert_allclose(host(lg), lc, rtol=1e-12)
    np.testing.assert_allclose(host(gg), gc, atol=1e-12, rtol=0)
    assert host(lg)[0] == inf


def test_loss_per_row_alpha_every_ignored_row():
    z = RNG.normal(size=(4, 5))
    alpha = np.array([1.05, 1.5, 2.0, 3.0])
    y = np.array([1, 0, 4, 2])
    lg, gg = sm.entmax_bisect_loss_and_grad(dev(z), dev(y), alpha, reduction="sum")
    lc, gc = sm.entmax_bisect_loss_and_grad(z, y, alpha, reduction="sum")
    np.testing.assert_allclose(host(lg), lc, rtol=1e-12)
    np.testing.assert_allclose(host(gg), gc, atol=1e-12, rtol=0)
    y = np.full(4, -1)
    lo = host(sm.entmax15_loss(dev(z), dev(y), reduction="mean", ignore_index=-1))
    assert np.isnan(lo) and np.isnan(sm.entmax15_loss(z, y, reduction="mean", ignore_index=-1))


def test_loss_bad_targets_checked_before_any_work():
    z = RNG.normal(size=(3, 4))
    out = cuda.to_device(np.full((3, 4), 7.0))
    with pytest.raises(ValueError, match="class index"):
        sm.entmax15_loss_grad(dev(z), dev(np.array([0, 4, 1])), out=out)
    with pytest.raises(ValueError, match="class index"):
        sm.entmax_bisect_loss(dev(z), dev(np.array([0, -3, 1])), 1.3)
    q = np.full((3, 4), 0.25)
    q[2, 1] = -0.25
    q[2, 2] = 0.75
    with pytest.raises(ValueError, match="negative"):
        sm.entmax_bisect_loss_grad(dev(z), dev(q), 2.5, out=out)
    q = np.full((3, 4), 0.25)
    q[1, 0] = 0.5
    with pytest.raises(ValueError, match="sum"):
        sm.entmax15_loss(dev(z), dev(q))
    assert (host(out) == 7.0).all()


# --------------------------------------------------------------------------- default blocks
# (rows, K) at 256 threads: groups of 8 threads (32 rows per block), two-warp groups (4 rows
# per block, block-wide votes), one row per block held in registers.
SHAPES_256 = {"rows_per_block": (40, 37), "two_warps": (6, 300), "block_row": (2, 1100)}


@pytest.mark.parametrize("case", list(SHAPES_256))
def test_default_block(tpb, case):
    n, K = SHAPES_256[case]
    n = n if tpb > 8 else min(n, 4)
    z = RNG.normal(size=(n, K)) * 2
    z[0, 3] = z[0, 5]  # a tie
    alpha = RNG.choice(ALPHAS, size=n)
    p = host(sm.entmax_bisect(dev(z), alpha))
    np.testing.assert_allclose(p, sm.entmax_bisect(z, alpha), atol=1e-12, rtol=0)
    tau, k = sm.entmax_bisect_threshold(dev(z), alpha)
    tc, kc = sm.entmax_bisect_threshold(z, alpha)
    np.testing.assert_allclose(host(tau), tc, atol=1e-12, rtol=0)
    np.testing.assert_array_equal(host(k), kc)
    z32 = z.astype(np.float32)
    np.testing.assert_allclose(host(sm.entmax15(dev(z32))), sm.entmax15(z32), atol=1e-6, rtol=0)
    if case != "rows_per_block":
        v = RNG.normal(size=z.shape)
        np.testing.assert_allclose(host(sm.entmax_bisect_jvp(dev(p), dev(v), alpha)),
                                   sm.entmax_bisect_jvp(p, v, alpha), atol=1e-12, rtol=0)
        y = RNG.integers(0, K, n)
        y[-1] = -100
        kw = dict(reduction="mean", ignore_index=-100)
        lg, gg = sm.entmax15_loss_and_grad(dev(z), dev(y), **kw)
        lc, gc = sm.entmax15_loss_and_grad(z, y, **kw)
        np.testing.assert_allclose(host(lg), lc, rtol=1e-12)
        np.testing.assert_allclose(host(gg), gc, atol=1e-12, rtol=0)


# --------------------------------------------------------------------------- GPU branch
# test_gpu's ``gpu_branch`` fixture loads cuda_warp's GPU branch (shuffles, cross-warp
# partials, warp votes) with warp-synchronous intrinsics in the simulator; here the entmax
# kernels are re-created on it too, so reduce3_sum's butterfly and next_up/next_down's
# libdevice calls run the code a GPU runs.
from test_gpu import gpu_branch  # noqa: E402,F401  (a fixture)


@pytest.fixture
def gpu_branch_entmax(gpu_branch, monkeypatch):  # noqa: F811
    import importlib.util
    import sys
    from pathlib import Path

    import sparsemax_nb.backends as backends_pkg

    warp = sys.modules["sparsemax_nb.backends._cuda_warp_gpu"]
    warp.libdevice.nextafter = staticmethod(
        lambda x, y: float(np.nextafter(np.float64(x), np.float64(y)))
    )
    path = Path(backends_pkg.__file__).parent / "cuda_entmax.py"
    src = path.read_text()
    src = src.replace("from .cuda_warp import", "from sparsemax_nb.backends._cuda_warp_gpu import")
    src = src.replace("from .cuda_kernels import", "from sparsemax_nb.backends.cuda_kernels import")
    spec = importlib.util.spec_from_file_location("sparsemax_nb.backends.cuda_entmax", path)
    mod = importlib.util.module_from_spec(spec)
    exec(compile(src, str(path), "exec"), mod.__dict__)
    monkeypatch.setitem(sys.modules, "sparsemax_nb.backends.cuda_entmax", mod)
    monkeypatch.setattr(backends_pkg, "cuda_entmax", mod, raising=False)
    return gpu_branch


@pytest.mark.parametrize("tpb", [8, DEFAULT_TPB])
def test_gpu_branch_of_the_warp_helpers(gpu_branch_entmax, tpb):
    _gpu.set_block_size(tpb)
    # 8 threads: several rows per block (K = 20) and rows re-read (K = 100); 256 threads:
    # two-warp groups (cross-warp partials, block votes).
    shapes = [(5, 20), (3, 100)] if tpb == 8 else [(5, 300)]
    for n, K in shapes:
        z = RNG.normal(size=(n, K)) * 2
        z[0, 1] = z[0, 2]
        alpha = np.resize(np.array(ALPHAS), n)  # one alpha per row, cycling
        p = host(sm.entmax_bisect(dev(z), alpha))
        np.testing.assert_allclose(p, sm.entmax_bisect(z, alpha), atol=1e-12, rtol=0)
        _, k = sm.entmax_bisect_threshold(dev(z), alpha)
        np.testing.assert_array_equal(host(k), sm.entmax_bisect_threshold(z, alpha)[1])
        v = RNG.normal(size=z.shape)
        np.testing.assert_allclose(host(sm.entmax_bisect_jvp(dev(p), dev(v), alpha)),
                                   sm.entmax_bisect_jvp(p, v, alpha), atol=1e-12, rtol=0)
    y = np.array([0, 5, -1, 7])
    z = RNG.normal(size=(4, 40))
    kw = dict(reduction="mean", ignore_index=-1)
    lg, gg = sm.entmax15_loss_and_grad(dev(z), dev(y), **kw)
    lc, gc = sm.entmax15_loss_and_grad(z, y, **kw)
    np.testing.assert_allclose(host(lg), lc, rtol=1e-12)
    np.testing.assert_allclose(host(gg), gc, atol=1e-12, rtol=0)
    assert gpu_branch_entmax.calls["shfl"] > 0 and gpu_branch_entmax.calls["vote"] > 0


# --------------------------------------------------------------------------- bench code
def test_bench_and_check_code_paths_run_tiny():
    # The entmax rows of ``sparsemax-nb bench --device cuda`` and of its ``--check``, at
    # tiny sizes under the simulator (meaningless times).
    from sparsemax_nb.cli.bench import gpu as _bench_gpu

    res = _bench_gpu._measure(cuda, "simulator", rows=3, K=16, long_k=40, repeats=1)
    names = [r["name"] for r in res]
    assert {"entmax15", "entmax_bisect (alpha 1.3)", "entmax_bisect (alpha per row)",
            "entmax15_loss_and_grad"} <= set(names)
    checks = _bench_gpu.check_entmax_paths(cuda, _bench_gpu._ENTMAX_CASES["tiny"])
    assert len(checks) == 3 * len(_bench_gpu._ENTMAX_CASES["tiny"])
    assert {c["name"].split("/")[0] for c in checks} == {
        "entmax15", "entmax_bisect_1.3", "entmax_bisect_per_row"}
    assert all(c["ok"] and c["support_mismatches"] == 0 for c in checks), checks
    assert all(set(c["max_abs_err"]) == {"forward", "threshold", "jvp", "loss", "loss_grad"}
               for c in checks)


def test_float16_and_bool_inputs():
    z = (RNG.normal(size=(3, 9)) * 2).astype(np.float16)
    p = sm.entmax_bisect(dev(z), 1.3)
    assert p.dtype == np.float32
    np.testing.assert_allclose(host(p), sm.entmax_bisect(z, 1.3), atol=1e-6, rtol=0)
    zb = RNG.random((3, 5)) > 0.5
    np.testing.assert_allclose(host(sm.entmax15(dev(zb))), sm.entmax15(zb), atol=1e-12, rtol=0)


# --------------------------------------------------------------------------- PTX
PTX_CHECK = r'''
import sys, types as _t
from numba import cuda, types
sys.modules["numba.cuda.dispatcher"].get_current_device = (
    lambda: _t.SimpleNamespace(compute_capability=(8, 0))
)
import sparsemax_nb.backends.cuda_entmax as C

A = lambda t, n: types.Array(t, n, "C")
f16, f32, f64, b1, i64 = types.float16, types.float32, types.float64, types.boolean, types.int64
th = A(f64, 1)
sigs = {
    "k_ent_forward": [(A(f32, 3), A(f32, 3), th, i64, i64, i64),
                      (A(f64, 3), A(f64, 3), th, i64, i64, i64),
                      (A(f16, 3), A(f32, 3), th, i64, i64, i64),
                      (A(b1, 3), A(f64, 3), th, i64, i64, i64)],
    "k_ent_threshold": [(A(f32, 3), A(f32, 1), A(i64, 1), th, i64, i64, i64)],
    "k_ent_jvp": [(A(f32, 3), A(f64, 3), A(f64, 3), th, i64, i64, i64)],
    "k_ent_loss_labels": [(A(f32, 3), A(i64, 1), i64, f64, A(f32, 1), A(f32, 3), b1, th,
                           i64, i64, i64)],
    "k_ent_loss_dist": [(A(f64, 3), A(f64, 3), f64, A(f64, 1), A(f64, 3), b1, th, i64, i64,
                         i64)],
}
for name, ss in sigs.items():
    for sig in ss:
        ptx, _ = cuda.compile_ptx(getattr(C, name).py_func, sig, cc=(8, 0))
        # The per-thread row cache must stay in registers (no local-memory arrays).
        assert ".local" not in ptx, name
        if name != "k_ent_jvp":
            # x = (alpha - 1)(z - m) is rounded on its own (not fused into x - v).
            assert "mul.rn.f64" in ptx, name
print("ok")
'''


@pytest.mark.slow
def test_kernels_compile_for_a_real_gpu():
    """Type inference, lowering and NVVM for sm_80, without a GPU (needs NVVM and NVRTC,
    e.g. ``pip install nvidia-nvvm nvidia-cuda-nvrtc``; skipped otherwise)."""
    import subprocess
    import sys
    from pathlib import Path

    pathfinder = pytest.importorskip("cuda.pathfinder")
    for lib in ("nvvm", "nvrtc"):
        try:
            pathfinder.load_nvidia_dynamic_lib(lib)
        except Exception:
            pytest.skip(f"lib{lib} not found: cannot build PTX here")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run(
        [sys.executable, "-c", PTX_CHECK], env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]
