"""The public functions called from a user's own @njit function."""

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

import sparsemax_nb as sm


def _z(shape, dtype=np.float64, seed=0):
    z = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    if z.ndim == 2:
        z[1, 2] = np.nan
        z[2, ::2] = -np.inf
        z[3, 0] = np.inf
    return z


@njit
def _forward(z):
    return sm.sparsemax(z)


@njit
def _forward_sort(z):
    return sm.sparsemax(z, axis=-1, method="sort")


@njit
def _forward_out(z, out):
    return sm.sparsemax(z, out=out, method="select")


@njit
def _threshold(z):
    return sm.sparsemax_threshold(z, method="sort")


@njit
def _jvp(p, v):
    return sm.sparsemax_jvp(p, v)


@njit
def _lg(z, t):
    return sm.sparsemax_loss_and_grad(z, t)


@njit
def _lg_mean_ignore(z, t):
    return sm.sparsemax_loss_and_grad(z, t, reduction="mean", ignore_index=-100)


@njit
def _lg_sum(z, t):
    return sm.sparsemax_loss_and_grad(z, t, axis=-1, reduction="sum")


@njit
def _forward_axis(z, axis):
    return sm.sparsemax(z, axis)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_and_threshold(dtype):
    z = _z((9, 7), dtype)
    p = _forward(z)
    assert p.dtype == dtype
    np.testing.assert_array_equal(p, sm.sparsemax(z))
    if dtype == np.float32:  # the rest once: every variant is one more compilation
        return
    np.testing.assert_array_equal(_forward_sort(z), sm.sparsemax(z, method="sort"))
    np.testing.assert_array_equal(_forward(z[3:, ::-2]), sm.sparsemax(z[3:, ::-2]))
    np.testing.assert_array_equal(_forward(z[4]), sm.sparsemax(z[4]))
    out = np.empty_like(z)
    assert _forward_out(z, out) is not None
    np.testing.assert_array_equal(out, sm.sparsemax(z))
    zc = z.copy()
    _forward_out(zc, zc)  # in place
    np.testing.assert_array_equal(zc, sm.sparsemax(z))
    tau, k = _threshold(z)
    t2, k2 = sm.sparsemax_threshold(z, method="sort")
    np.testing.assert_array_equal(tau, t2)
    np.testing.assert_array_equal(k, k2)
    assert tau.dtype == dtype
    t1, k1 = _threshold(z[5])
    assert t1 == t2[5] and k1 == k2[5]


def test_jvp():
    z = _z((8, 6))
    p = sm.sparsemax(z)
    v = _z((8, 6), seed=3)
    np.testing.assert_array_equal(_jvp(p, v), sm.sparsemax_jvp(p, v))
    np.testing.assert_array_equal(_jvp(p[6], v[6]), sm.sparsemax_jvp(p[6], v[6]))
    np.testing.assert_array_equal(
        _jvp(p.astype(np.float32), v), sm.sparsemax_jvp(p.astype(np.float32), v)
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_and_grad(dtype):
    z = _z((10, 5), dtype)
    y = np.arange(10) % 5
    L, G = _lg(z, y)
    L2, G2 = sm.sparsemax_loss_and_grad(z, y)
    np.testing.assert_array_equal(L, L2)
    np.testing.assert_array_equal(G, G2)
    q = np.random.default_rng(1).random((10, 5))
    q = (q / q.sum(axis=1, keepdims=True)).astype(dtype)
    L, G = _lg(z, q)
    L2, G2 = sm.sparsemax_loss_and_grad(z, q)
    np.testing.assert_array_equal(L, L2)
    np.testing.assert_array_equal(G, G2)
    if dtype == np.float32:  # the rest once: every variant is one more compilation
        return
    l1, g1 = _lg(z[7], 2)
    L1, G1 = sm.sparsemax_loss_and_grad(z[7], 2)
    assert l1 == L1
    np.testing.assert_array_equal(g1, G1)
    zf = np.nan_to_num(z, nan=0.0, posinf=1.0)
    L, G = _lg_sum(zf, q)
    L2, G2 = sm.sparsemax_loss_and_grad(zf, q, reduction="sum")
    np.testing.assert_allclose(L, L2, rtol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_array_equal(G, G2)
    y2 = y.copy()
    y2[[1, 4]] = -100
    L, G = _lg_mean_ignore(zf, y2)
    L2, G2 = sm.sparsemax_loss_and_grad(zf, y2, reduction="mean", ignore_index=-100)
    np.testing.assert_allclose(L, L2, rtol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_array_equal(G, G2)
    assert np.isnan(_lg_mean_ignore(zf, np.full(10, -100))[0])


def test_runtime_errors():
    z = _z((4, 3))
    with pytest.raises(ValueError, match="out of range"):
        _lg(z, np.array([0, 1, 3, 0]))
    q = np.full((4, 3), 0.5)
    with pytest.raises(ValueError, match="sum to 1"):
        _lg(z, q)
    with pytest.raises(ValueError, match="last axis"):
        _forward_axis(z, 0)
    np.testing.assert_array_equal(_forward_axis(z, 1), sm.sparsemax(z))


def test_typing_errors():
    @njit
    def bad_method(z):
        return sm.sparsemax(z, method="fast")

    @njit
    def bad_axis(z):
        return sm.sparsemax(z, axis=0)

    @njit
    def bad_reduction(z, y):
        return sm.sparsemax_loss_and_grad(z, y, reduction="avg")

    z = np.zeros((2, 3))
    with pytest.raises(TypingError, match="method"):
        bad_method(z)
    with pytest.raises((TypingError, ValueError), match="last axis"):
        bad_axis(z)  # a literal axis may be checked when typing or when running
    with pytest.raises(TypingError, match="reduction"):
        bad_reduction(z, np.zeros(2, np.int64))
    with pytest.raises(TypingError, match="1-D or 2-D"):
        _forward(np.zeros((2, 2, 2)))
    with pytest.raises(TypingError, match="1-D or 2-D"):
        _forward(np.zeros((2, 2), np.int64))


def test_python_calls_unaffected():
    # The overloads only register: the Python functions are the same objects.
    assert sm.sparsemax is sm.api.sparsemax
    np.testing.assert_array_equal(sm.sparsemax([-2.0, 0.0, 0.5]), [0.0, 0.25, 0.75])


# --------------------------------------------------------------------------- alpha-entmax
# alpha is one number inside @njit (per-row arrays: the Python API and the gufuncs).
@njit
def _eb(z, alpha):
    return sm.entmax_bisect(z, alpha)


@njit
def _eb_default(z):
    return sm.entmax_bisect(z)


@njit
def _eb_out(z, alpha, out):
    return sm.entmax_bisect(z, alpha=alpha, out=out)


@njit
def _eb_threshold(z, alpha):
    return sm.entmax_bisect_threshold(z, alpha, axis=-1)


@njit
def _eb_jvp(p, v, alpha):
    return sm.entmax_bisect_jvp(p, v, alpha)


@njit
def _eb_lg(z, t, alpha):
    return sm.entmax_bisect_loss_and_grad(z, t, alpha)


@njit
def _eb_lg_mean_ignore(z, t, alpha):
    return sm.entmax_bisect_loss_and_grad(z, t, alpha, reduction="mean", ignore_index=-100)


EB_ALPHAS = (1.1, 1.5, 2.0, 3.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_entmax_bisect_forward_and_threshold(dtype):
    import naive

    z = _z((9, 7), dtype)
    z[4, 1:] = -np.inf  # one entry left
    for a in EB_ALPHAS:
        p = _eb(z, a)
        assert p.dtype == dtype
        np.testing.assert_array_equal(p, sm.entmax_bisect(z, a))
        ref = naive.entmax_bisect(z.astype(np.float64), a)
        np.testing.assert_array_equal(np.isnan(p), np.isnan(ref))
        np.testing.assert_allclose(p, ref, rtol=0, atol=1e-6 if dtype == np.float32 else 1e-12)
        tau, k = _eb_threshold(z, a)
        t2, k2 = sm.entmax_bisect_threshold(z, a)
        assert tau.dtype == dtype
        np.testing.assert_array_equal(tau, t2)
        np.testing.assert_array_equal(k, k2)
    np.testing.assert_allclose(_eb(z, 2.0), sm.sparsemax(z), rtol=0,
                               atol=1e-7 if dtype == np.float32 else 4e-16)
    if dtype == np.float32:  # the rest once: every variant is one more compilation
        return
    np.testing.assert_array_equal(_eb_default(z), sm.entmax_bisect(z))  # alpha = 1.5
    np.testing.assert_array_equal(_eb(z, 2), sm.entmax_bisect(z, 2))  # an integer alpha
    np.testing.assert_array_equal(_eb(z[3:, ::-2], 1.3), sm.entmax_bisect(z[3:, ::-2], 1.3))
    np.testing.assert_array_equal(_eb(z[5], 1.3), sm.entmax_bisect(z[5], 1.3))
    np.testing.assert_array_equal(_eb(np.array([0.7]), 3.0), [1.0])  # K = 1
    t1, k1 = _eb_threshold(z[5], 1.3)
    t2, k2 = sm.entmax_bisect_threshold(z[5], 1.3)
    assert t1 == t2 and k1 == k2
    out = np.empty_like(z)
    _eb_out(z, 1.3, out)
    np.testing.assert_array_equal(out, sm.entmax_bisect(z, 1.3))
    zc = z.copy()
    _eb_out(zc, 1.3, zc)  # in place
    np.testing.assert_array_equal(zc, out)


def test_entmax_bisect_jvp():
    z = _z((8, 6))
    for a in (1.1, 3.0):
        p = sm.entmax_bisect(z, a)
        v = _z((8, 6), seed=3)
        np.testing.assert_array_equal(_eb_jvp(p, v, a), sm.entmax_bisect_jvp(p, v, a))
        np.testing.assert_array_equal(_eb_jvp(p[6], v[6], a), sm.entmax_bisect_jvp(p[6], v[6], a))
    p32 = sm.entmax_bisect(z, 1.3).astype(np.float32)
    np.testing.assert_array_equal(_eb_jvp(p32, v, 1.3), sm.entmax_bisect_jvp(p32, v, 1.3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_entmax_bisect_loss_and_grad(dtype):
    z = _z((10, 5), dtype)
    y = np.arange(10) % 5
    q = np.random.default_rng(1).random((10, 5))
    q = (q / q.sum(axis=1, keepdims=True)).astype(dtype)
    for a in EB_ALPHAS:
        L, G = _eb_lg(z, y, a)
        L2, G2 = sm.entmax_bisect_loss_and_grad(z, y, a)
        np.testing.assert_array_equal(L, L2)
        np.testing.assert_array_equal(G, G2)
        L, G = _eb_lg(z, q, a)
        L2, G2 = sm.entmax_bisect_loss_and_grad(z, q, a)
        np.testing.assert_array_equal(L, L2)
        np.testing.assert_array_equal(G, G2)
    if dtype == np.float32:
        return
    l1, g1 = _eb_lg(z[7], 2, 1.3)
    L1, G1 = sm.entmax_bisect_loss_and_grad(z[7], 2, 1.3)
    assert l1 == L1
    np.testing.assert_array_equal(g1, G1)
    zf = np.nan_to_num(z, nan=0.0, posinf=1.0)
    y2 = y.copy()
    y2[[1, 4]] = -100
    L, G = _eb_lg_mean_ignore(zf, y2, 1.3)
    L2, G2 = sm.entmax_bisect_loss_and_grad(zf, y2, 1.3, reduction="mean", ignore_index=-100)
    np.testing.assert_allclose(L, L2, rtol=1e-14)
    np.testing.assert_array_equal(G, G2)
    # the gradient against central differences of the loss (float64, plain rows)
    h = 1e-6
    zs = np.random.default_rng(4).standard_normal((10, 5)) * 2
    for a in (1.1, 3.0):
        _, G = _eb_lg(zs, q, a)
        fd = np.empty_like(zs)
        for j in range(zs.shape[1]):
            e = np.zeros_like(zs)
            e[:, j] = h
            fd[:, j] = (_eb_lg(zs + e, q, a)[0] - _eb_lg(zs - e, q, a)[0]) / (2 * h)
        np.testing.assert_allclose(G, fd, rtol=0, atol=1e-7)


def test_entmax_bisect_alpha_errors():
    z = _z((4, 3))
    z0 = z.copy()
    # the Python API's rule and message, without the value (Numba's messages are constant)
    with pytest.raises(ValueError) as api_err:
        sm.entmax_bisect(z, 0.5)
    rule = str(api_err.value).partition(", got")[0]
    assert rule == "alpha must be finite and > 1"
    for bad in (1.0, 0.5, -3.0, np.nan, np.inf):
        for call in (lambda: _eb(z, bad), lambda: _eb_threshold(z, bad),
                     lambda: _eb_jvp(z, z, bad), lambda: _eb_lg(z, np.arange(4) % 3, bad)):
            with pytest.raises(ValueError, match=rule):
                call()
        with pytest.raises(ValueError, match=rule):
            _eb_out(z, bad, z)
        np.testing.assert_array_equal(z, z0)  # nothing of the caller's modified

    @njit
    def array_alpha(z):
        return sm.entmax_bisect(z, np.full(4, 1.5))

    with pytest.raises(TypingError, match="one number for alpha"):
        array_alpha(z)

    @njit
    def method_given(z):
        return sm.entmax_bisect(z, 1.5, method="sort")  # alpha-entmax has no method

    with pytest.raises(TypingError):
        method_given(z)
