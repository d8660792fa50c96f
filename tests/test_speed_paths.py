"""The fast paths of the CPU backend give the bits of the row-by-row code they replace.

Short rows run LANES rows at a time in vector lanes, the loss with labels of short rows
has its own driver, the drivers are built per path (short rows, sort), dense rows start
Newton from a sampled guess, and the median of medians runs on an explicit stack. Each is
checked here against the per-row functions (bitwise) or the float64 reference.
"""

import numpy as np
import pytest

# NumPy turns floating-point flags left by a gufunc loop into warnings: there must be none.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

import naive
import sparsemax_nb as sm
from sparsemax_nb import _checks
from sparsemax_nb.backends import cpu
from sparsemax_nb.mappings import sparsemax as S
from sparsemax_nb.numba import gufuncs as g


def _short_rows(n, K, dtype, seed):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, K)) * rng.choice([0.01, 0.1, 1.0, 10.0], (n, 1))).astype(dtype)
    z[0] = 0.0
    z[1, K // 2] = np.nan
    z[2] = -np.inf
    z[3, -1] = np.inf
    z[4, ::2] = -np.inf
    z[5, 0] = 1e38 if dtype == np.float32 else 1e308
    z[6] = np.round(z[6])  # ties
    z[7] = -0.0
    return z


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [2, 3, 7, 16, 33, 64])
def test_block_rows_equal_rows_alone(K, dtype):
    # 37 rows: two full blocks of 16 lanes and a partial one.
    z = _short_rows(37, K, dtype, K)
    p = sm.sparsemax(z)
    tau, k = sm.sparsemax_threshold(z)
    for i in range(z.shape[0]):
        np.testing.assert_array_equal(p[i], sm.sparsemax(z[i]))
        t1, k1 = sm.sparsemax_threshold(z[i])
        np.testing.assert_array_equal(tau[i], t1)
        assert k[i] == k1
    # the gufuncs (one row at a time) and the sort method: the same bits
    np.testing.assert_array_equal(p, g.sparsemax(z))
    np.testing.assert_array_equal(p, sm.sparsemax(z, method="sort"))
    tg, kg = g.sparsemax_threshold(z)
    np.testing.assert_array_equal(tau, tg)
    np.testing.assert_array_equal(k, kg)
    ok = ~np.isnan(p).any(axis=1)
    assert ok.sum() == z.shape[0] - 3  # rows 1, 2, 3
    np.testing.assert_allclose(p[ok], naive.sparsemax(z[ok].astype(np.float64)),
                               atol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_short_and_row_builds_agree(dtype):
    z = np.ascontiguousarray(_short_rows(40, 12, dtype, 3))
    th = np.zeros(1)
    for parallel in (False, True):
        a = np.empty_like(z)
        b = np.empty_like(z)
        cpu.get("sparsemax", "forward", parallel, True)(z, a, _checks.SELECT, th, 3)
        cpu.get("sparsemax", "forward", parallel, False)(z, b, _checks.SELECT, th, 3)
        np.testing.assert_array_equal(a, b)
        c = np.empty_like(z)
        cpu.get("sparsemax", "forward", parallel, False, False)(z, c, _checks.SELECT, th, 2)
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [2, 9, 64, 65, 300])
def test_loss_labels_short_and_long(K, dtype):
    z = _short_rows(37, K, dtype, 7)
    y = np.arange(37) % K
    y[4] = 1  # a -inf target entry: an infinite loss
    loss, grad = sm.sparsemax_loss_and_grad(z, y)
    l1, g1 = g.sparsemax_loss_label_and_grad(z, y)
    np.testing.assert_array_equal(loss, l1)
    np.testing.assert_array_equal(grad, g1)
    np.testing.assert_array_equal(loss, sm.sparsemax_loss(z, y))
    # the loss does not depend on where the gradient goes: in place, and a fresh array
    zc = z.copy()
    sm.sparsemax_loss_grad(zc, y, out=zc)
    np.testing.assert_array_equal(zc, grad)
    m, gm = sm.sparsemax_loss_and_grad(z[8:], y[8:], reduction="mean")
    zc = z[8:].copy()
    gi = sm.sparsemax_loss_grad(zc, y[8:], reduction="mean", out=zc)
    assert gi is zc
    np.testing.assert_array_equal(zc, gm)
    assert m == sm.sparsemax_loss(z[8:], y[8:], reduction="mean")
    ok = np.isfinite(z).all(axis=1)
    np.testing.assert_allclose(loss[ok], naive.loss(z[ok].astype(np.float64), y[ok]),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_loss_labels_ignore_index_short_rows():
    z = _short_rows(20, 5, np.float64, 2)[8:]
    y = np.array([0, -100, 4, 2, -100, 1, 3, 3, -100, 0, 1, 2])
    loss, grad = sm.sparsemax_loss_and_grad(z, y, ignore_index=-100)
    keep = y != -100
    assert np.all(loss[~keep] == 0) and np.all(grad[~keep] == 0)
    np.testing.assert_allclose(loss[keep], naive.loss(z[keep], y[keep]), atol=1e-12)


def _kinds(K, rng):
    i = np.arange(K)
    return {
        "normal 0.01": rng.standard_normal(K) * 0.01,
        "normal 0.1": rng.standard_normal(K) * 0.1,
        "normal 3": rng.standard_normal(K) * 3,
        "sorted": i / K,
        "geometric": np.ldexp(1.0, -i),
        "equal": np.zeros(K),
        # the sample (every 16th entry) sees only the top, or only the bottom
        "sample high": np.where(i % 16 == 0, 5.0 + i * 1e-3, rng.standard_normal(K) * 0.01),
        "sample low": np.where(i % 16 == 0, -5.0, rng.standard_normal(K) * 0.01),
        "sample masked": np.where(i % 16 == 0, -np.inf, rng.standard_normal(K)),
        "two clusters": rng.permutation(
            np.r_[np.ones(K // 2), np.zeros(K - K // 2)] + rng.standard_normal(K) * 1e-3),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [255, 256, 1000, 5003])
def test_sampled_start(K, dtype):
    rng = np.random.default_rng(K)
    for name, row in _kinds(K, rng).items():
        z = row.astype(dtype)
        p = sm.sparsemax(z)
        ref = naive.sparsemax(z.astype(np.float64))
        np.testing.assert_allclose(p, ref, atol=2e-6 if dtype == np.float32 else 1e-12,
                                   err_msg=name)
        tau, k = sm.sparsemax_threshold(z)
        rt, rk = naive.threshold(z.astype(np.float64))
        assert abs(int(k) - int(rk)) <= (0 if dtype == np.float64 else 2), name
        np.testing.assert_array_equal(p, g.sparsemax(z))


def test_kth_largest_on_its_stack():
    rng = np.random.default_rng(0)
    for n in [1, 2, 5, 16, 17, 81, 400, 3001]:
        for a in (rng.standard_normal(n), np.round(rng.standard_normal(n)), np.zeros(n),
                  np.arange(n, dtype=np.float64), np.arange(n, 0, -1.0)):
            want = np.sort(a)[::-1]
            for k in sorted({0, n // 3, n // 2, n - 1}):
                b = a.copy()
                assert S._kth_largest(b, 0, n, k) == want[k]
                np.testing.assert_array_equal(np.sort(b), np.sort(a))
            # the worst-case finish of select agrees with the sort-based threshold
            b = a.copy()
            s, c = S._support_pivot(b, n)
            assert c >= 1
            t_sort, k_sort = S._tau_sort(a.copy(), n)
            assert c == k_sort
            assert (s - 1.0) / c == pytest.approx(t_sort, abs=1e-12)
