"""sparsemax and sparsemax_threshold on the CPU against the float64 reference."""

import json
import os

import numpy as np
import pytest

import naive
import sparsemax_nb as sm

METHODS = ["sort", "select", "auto"]
VECTORS = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vectors.json")))


def _num(x):
    return float(x) if not isinstance(x, str) else float(x.replace("inf", "inf"))


def tol(dtype):
    return 1e-12 if np.dtype(dtype) == np.float64 else 1e-6


def check_rows(z, method, dtype=np.float64, axis=-1):
    """Compare p, tau and the support size with the reference, section 5 of docs/contract.md."""
    z = np.asarray(z)
    p = sm.sparsemax(z, axis=axis, method=method)
    ref = naive.sparsemax(z, axis=axis)
    assert p.dtype == np.dtype(dtype)
    assert p.shape == z.shape
    np.testing.assert_allclose(p, ref, rtol=0, atol=tol(dtype))
    tau, k = sm.sparsemax_threshold(z, axis=axis, method=method)
    rtau, rk = naive.threshold(z, axis=axis)
    np.testing.assert_allclose(tau, rtau, rtol=tol(dtype), atol=tol(dtype))
    # The support agrees except for entries within rounding of tau.
    zf = np.moveaxis(np.asarray(z, np.float64), axis, -1)
    near = np.sum(np.abs(zf - rtau[..., None]) <= 1e-9 * (1 + np.abs(zf)), axis=-1)
    assert np.all(np.abs(k - rk) <= near)
    K = z.shape[axis]
    finite = np.all(np.isfinite(ref), axis=axis)
    sums = np.sum(p.astype(np.float64), axis=axis)
    eps = np.finfo(p.dtype).eps
    assert np.all(np.abs(sums[finite] - 1) <= 4 * K * eps)
    return p


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", VECTORS["sparsemax"], ids=lambda c: str(c["z"]))
def test_published_vectors(case, method):
    z = np.array(case["z"], dtype=np.float64)
    p = sm.sparsemax(z, method=method)
    np.testing.assert_allclose(p, case["p"], atol=1e-12)
    tau, k = sm.sparsemax_threshold(z, method=method)
    assert abs(float(tau) - case["tau"]) <= 1e-12
    assert int(k) == case["support_size"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", VECTORS["non_finite"], ids=lambda c: str(c["z"]))
def test_non_finite_vectors(case, method):
    z = np.array([float(v) for v in case["z"]])
    expect = np.array([float(v) for v in case["p"]])
    p = sm.sparsemax(z, method=method)
    np.testing.assert_array_equal(p, expect)  # NaN == NaN for assert_array_equal


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [1, 2, 3, 7, 64, 1000])
@pytest.mark.parametrize("scale", [0.1, 1.0, 3.0, 100.0])
def test_random_rows(method, dtype, K, scale):
    rng = np.random.default_rng(K * 7 + int(scale * 10))
    z = (rng.standard_normal((20, K)) * scale).astype(dtype)
    check_rows(z, method, dtype)


def adversarial_rows(K, rng):
    i = np.arange(K, dtype=np.float64)
    rows = {
        "sorted": i / K,
        "reversed": -i / K,
        "all_equal": np.full(K, 0.3),
        "geometric": -(2.0 ** -np.minimum(i, 1000)),
        "geometric_up": 2.0 ** -np.minimum(i, 1000),
        "two_clusters": np.where(i % 2 == 0, 0.0, -0.5) + 1e-9 * rng.standard_normal(K),
        "ties_at_tau": np.r_[1.0, np.zeros(K - 1)] if K > 1 else np.zeros(1),
        "many_ties": np.round(rng.standard_normal(K) * 2) / 2,
        "huge": rng.standard_normal(K) * 1e300,
        "tiny": rng.standard_normal(K) * 1e-300,
        "one_spike": np.r_[np.zeros(K - 1), 50.0],
        "masked": np.where(rng.random(K) < 0.5, -np.inf, rng.standard_normal(K)),
        "dense_narrow": rng.standard_normal(K) * 1e-3,
    }
    if K > 1:
        rows["masked"][0] = 0.0  # at least one finite entry
    return rows


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("K", [1, 2, 5, 33, 1000, 20000])
def test_adversarial_rows(method, K):
    rng = np.random.default_rng(K)
    for name, row in adversarial_rows(K, rng).items():
        try:
            check_rows(row[None, :], method)
        except AssertionError as e:  # pragma: no cover - a helpful message
            raise AssertionError(f"row {name!r}, K={K}: {e}") from None


@pytest.mark.parametrize("method", ["sort", "select"])
def test_adversarial_float32(method):
    rng = np.random.default_rng(3)
    for name, row in adversarial_rows(3000, rng).items():
        if name in ("huge", "tiny"):
            continue  # outside float32's range; see test_huge_float32
        check_rows(row.astype(np.float32)[None, :], method, np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sort", "select"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_million(method, dtype):
    rng = np.random.default_rng(1)
    z = (rng.standard_normal((1, 10**6)) * 0.01).astype(dtype)  # a large support
    check_rows(z, method, dtype)
    z = (np.arange(10**6)[None, :] * 1e-6).astype(dtype)  # sorted
    check_rows(z, method, dtype)


def test_huge_float32():
    z = np.array([[3e38, 2.9e38, -3e38], [1e38, 1e38 - 2**103, 0]], dtype=np.float32)
    p = sm.sparsemax(z)
    ref = naive.sparsemax(z)
    np.testing.assert_allclose(p, ref, atol=1e-6)
    assert np.isfinite(p).all()


def test_huge_float64_both_signs():
    z = np.array([1.7e308, -1.7e308, 1.7e308 - 1e292 * 1.5, 1.0])
    for method in METHODS:
        p = sm.sparsemax(z, method=method)
        np.testing.assert_allclose(p, naive.sparsemax(z), atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_masked_rows_never_nan(method):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((50, 40))
    mask = rng.random(z.shape) < 0.7
    mask[:, 0] = False
    z[mask] = -np.inf
    p = sm.sparsemax(z, method=method)
    assert np.isfinite(p).all()
    assert np.all(p[mask] == 0)
    np.testing.assert_allclose(p, naive.sparsemax(z), atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_bad_rows_are_nan_and_others_unaffected(method):
    z = np.array(
        [
            [1.0, 2.0, 3.0],
            [-np.inf, -np.inf, -np.inf],
            [1.0, np.nan, 0.0],
            [1.0, np.inf, 0.0],
            [np.inf, np.inf, np.inf],
            [0.5, -np.inf, 0.5],
        ]
    )
    p = sm.sparsemax(z, method=method)
    assert np.isnan(p[1:5]).all()
    np.testing.assert_allclose(p[0], [0, 0, 1])
    np.testing.assert_allclose(p[5], [0.5, 0, 0.5])
    tau, k = sm.sparsemax_threshold(z, method=method)
    assert np.isnan(tau[1:5]).all() and np.all(k[1:5] == 0)
    assert k[0] == 1 and k[5] == 2


def test_methods_agree_on_many_shapes():
    rng = np.random.default_rng(5)
    for K in [1, 2, 9, 100, 4097]:
        z = rng.standard_normal((17, K)) * rng.uniform(0.01, 5)
        a = sm.sparsemax(z, method="sort")
        b = sm.sparsemax(z, method="select")
        np.testing.assert_allclose(a, b, atol=1e-13)


def test_parallel_and_serial_builds_agree():
    # Large enough to take the parallel build; a single row takes the serial one.
    rng = np.random.default_rng(6)
    z = rng.standard_normal((3000, 50))
    p = sm.sparsemax(z)
    for i in range(0, 3000, 499):
        np.testing.assert_array_equal(p[i], sm.sparsemax(z[i]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_single_rows_split_between_threads(dtype):
    """A row longer than BIG_ROW, alone, is split between threads; same result as serial."""
    from sparsemax_nb import _checks
    from sparsemax_nb.backends import cpu

    K = 1 << 17
    rng = np.random.default_rng(9)
    i = np.arange(K)
    rows = {
        "normal": rng.standard_normal(K),
        "dense": rng.standard_normal(K) * 1e-3,
        "sorted": i / K,
        "masked": np.where(i % 3 == 0, -np.inf, rng.standard_normal(K)),
        "nan": np.where(i == K - 1, np.nan, 0.0),
        "all_minus_inf": np.full(K, -np.inf),
        "ties": np.round(rng.standard_normal(K)),
    }
    for name, row in rows.items():
        z = row.astype(dtype)[None, :]
        p = sm.sparsemax(z)
        q = np.empty_like(z)
        cpu.get("sparsemax", "forward", False)(np.ascontiguousarray(z), q, _checks.SELECT, np.zeros(1), 1)
        np.testing.assert_allclose(p, q, atol=tol(dtype), err_msg=name)
        tau, k = sm.sparsemax_threshold(z)
        rt, rk = naive.threshold(z)
        np.testing.assert_allclose(tau, rt, atol=tol(dtype), err_msg=name)
        assert abs(int(k[0]) - int(rk[0])) <= (0 if name != "dense" else 2), name
