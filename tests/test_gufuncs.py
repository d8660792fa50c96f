"""The generalized ufuncs of sparsemax_nb.gufuncs against the public API (bitwise)."""

import numpy as np
import pytest

import naive
import sparsemax_nb as sm
from sparsemax_nb.numba import gufuncs as g

# NumPy turns floating-point flags left by a ufunc loop into warnings: there must be none.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

M = dict(method="select")  # the method the gufuncs use


def _rows(dtype=np.float64, shape=(13, 9), seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape).astype(dtype)
    z[0] = 0.0
    z[1, 2] = np.nan
    z[2, :] = -np.inf
    z[3, 1] = np.inf
    z[4, ::2] = -np.inf
    z[5, 0] = 1e38 if dtype == np.float32 else 1e308
    return z


def _dist(shape, dtype, seed=1):
    rng = np.random.default_rng(seed)
    q = rng.random(shape)
    q[..., 0] = 0.0
    q /= q.sum(axis=-1, keepdims=True)
    return q.astype(dtype)


def test_are_real_gufuncs():
    for name in g.__all__:
        f = getattr(g, name)
        assert isinstance(f, np.ufunc), name
        assert f.signature is not None
    assert g.sparsemax.signature == "(n)->(n)"
    assert g.sparsemax_threshold.signature == "(n)->(),()"
    assert "sparsemax" in dir(g)
    with pytest.raises(AttributeError):
        g.nothing_here


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_and_threshold_bitwise(dtype):
    z = _rows(dtype)
    p = g.sparsemax(z)
    assert p.dtype == dtype
    np.testing.assert_array_equal(p, sm.sparsemax(z, **M))
    tau, k = g.sparsemax_threshold(z)
    t2, k2 = sm.sparsemax_threshold(z, **M)
    assert tau.dtype == dtype and k.dtype == np.int64
    np.testing.assert_array_equal(tau, t2)
    np.testing.assert_array_equal(k, k2)


@pytest.mark.parametrize(
    "dtype, result",
    [(np.float16, np.float32), (np.bool_, np.float64), (np.int8, np.float64),
     (np.uint8, np.float64), (np.int16, np.float64), (np.int32, np.float64),
     (np.int64, np.float64)],
)
def test_dtype_rules_follow_spec(dtype, result):
    z = (np.arange(12).reshape(3, 4) % 3).astype(dtype)
    p = g.sparsemax(z)
    assert p.dtype == result
    np.testing.assert_array_equal(p, sm.sparsemax(z, **M))
    tau, k = g.sparsemax_threshold(z)
    assert tau.dtype == result


def test_complex_refused():
    with pytest.raises(TypeError):
        g.sparsemax(np.ones(3, complex))


def test_axes_axis_out_and_broadcasting():
    z = _rows(np.float64, (9, 9, 5))
    want = sm.sparsemax(z, axis=1, **M)
    np.testing.assert_array_equal(g.sparsemax(z, axes=[(1,), (1,)]), want)
    np.testing.assert_array_equal(g.sparsemax(z, axis=1), want)
    out = np.empty_like(z)
    r = g.sparsemax(z, out=out, axis=1)
    assert r is out
    np.testing.assert_array_equal(out, want)
    # in place, and a non-contiguous (reversed, strided) input
    zc = z.copy()
    g.sparsemax(zc, out=zc)
    np.testing.assert_array_equal(zc, sm.sparsemax(z, **M))
    zr = z[::-1, :, ::-2]
    np.testing.assert_array_equal(g.sparsemax(zr), sm.sparsemax(zr, **M))
    tau, k = g.sparsemax_threshold(z, axes=[(1,), (), ()])
    t2, k2 = sm.sparsemax_threshold(z, axis=1, **M)
    np.testing.assert_array_equal(tau, t2)
    np.testing.assert_array_equal(k, k2)
    # broadcasting of batch dimensions in a two-input gufunc
    p = sm.sparsemax(z[0])
    v = np.random.default_rng(3).standard_normal((2, 1, 9, 5))
    got = g.sparsemax_jvp(p, v)
    want = sm.sparsemax_jvp(np.broadcast_to(p, v.shape), v)
    np.testing.assert_array_equal(got, want)


def test_empty_core_dimension():
    z = np.empty((3, 0))
    assert g.sparsemax(z).shape == (3, 0)
    tau, k = g.sparsemax_threshold(z)
    assert np.isnan(tau).all() and (k == 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jvp_bitwise(dtype):
    z = _rows(dtype)
    p = sm.sparsemax(z)
    v = np.random.default_rng(2).standard_normal(z.shape).astype(dtype)
    np.testing.assert_array_equal(g.sparsemax_jvp(p, v), sm.sparsemax_jvp(p, v))
    p[6] = 0.0  # no support: NaN row, as the API
    np.testing.assert_array_equal(g.sparsemax_jvp(p, v), sm.sparsemax_jvp(p, v))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_distribution_bitwise(dtype):
    z = _rows(dtype)
    q = _dist(z.shape, dtype)
    z[9, 0] = -np.inf  # masked where q is 0: a finite loss
    loss = g.sparsemax_loss(z, q)
    assert np.isfinite(loss[9])
    assert loss.dtype == dtype
    np.testing.assert_array_equal(loss, sm.sparsemax_loss(z, q, **M))
    l2, gr = g.sparsemax_loss_and_grad(z, q)
    L, G = sm.sparsemax_loss_and_grad(z, q, **M)
    np.testing.assert_array_equal(l2, L)
    np.testing.assert_array_equal(gr, G)


def test_loss_invalid_target_rows_give_nan():
    z = _rows(np.float64)
    q = _dist(z.shape, np.float64)
    q[7, 0] = -0.5  # negative entry
    q[8] *= 2.0  # sums to 2
    loss, grad = g.sparsemax_loss_and_grad(z, q)
    assert np.isnan(loss[[7, 8]]).all() and np.isnan(grad[[7, 8]]).all()
    ok = np.r_[0, 4:7, 9:13]
    np.testing.assert_array_equal(loss[ok], sm.sparsemax_loss(z[ok], q[ok], **M))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_labels_bitwise(dtype):
    z = _rows(dtype)
    y = np.arange(z.shape[0]) % z.shape[1]
    y[4] = 1  # a -inf masked target: infinite loss, as the API
    loss = g.sparsemax_loss_label(z, y)
    np.testing.assert_array_equal(loss, sm.sparsemax_loss(z, y, **M))
    l2, gr = g.sparsemax_loss_label_and_grad(z, y.astype(np.int32))
    L, G = sm.sparsemax_loss_and_grad(z, y, **M)
    np.testing.assert_array_equal(l2, L)
    np.testing.assert_array_equal(gr, G)
    bad = y.copy()
    bad[9] = 99
    bad[10] = -1
    lb = g.sparsemax_loss_label(z, bad)
    assert np.isnan(lb[[9, 10]]).all()
    np.testing.assert_array_equal(lb[:9], loss[:9])


def test_vectors_json():
    import json
    import os

    with open(os.path.join(os.path.dirname(__file__), "data", "vectors.json")) as f:
        vec = json.load(f)
    for case in vec["sparsemax"]:
        z = np.asarray(case["z"], float)
        np.testing.assert_allclose(g.sparsemax(z), case["p"], atol=1e-12)
        tau, k = g.sparsemax_threshold(z)
        np.testing.assert_allclose(tau, case["tau"], atol=1e-12)
        assert k == case["support_size"]


def test_dask_array_calls_the_gufunc():
    da = pytest.importorskip("dask.array")
    z = _rows(np.float64, (40, 9))
    dz = da.from_array(z, chunks=(7, 9))
    got = da.apply_gufunc(g.sparsemax, "(n)->(n)", dz, output_dtypes=z.dtype).compute()
    np.testing.assert_array_equal(got, g.sparsemax(z))
    got = g.sparsemax(dz)  # NumPy's __array_ufunc__ protocol: dask handles gufuncs
    np.testing.assert_array_equal(np.asarray(got), g.sparsemax(z))


def test_xarray_apply_ufunc_recipe():
    xr = pytest.importorskip("xarray")
    pytest.importorskip("dask.array")
    z = _rows(np.float32, (6, 9, 4))
    da_ = xr.DataArray(z, dims=("time", "cls", "x")).chunk({"time": 2})
    p = xr.apply_ufunc(
        g.sparsemax, da_, input_core_dims=[["cls"]], output_core_dims=[["cls"]],
        dask="parallelized", output_dtypes=[da_.dtype],
    ).transpose(*da_.dims)
    np.testing.assert_array_equal(p.values, sm.sparsemax(z, axis=1, **M))
    tau, k = xr.apply_ufunc(
        g.sparsemax_threshold, da_, input_core_dims=[["cls"]],
        output_core_dims=[[], []], dask="parallelized", output_dtypes=[z.dtype, np.int64],
    )
    assert tau.dims == ("time", "x")
    t2, k2 = sm.sparsemax_threshold(z, axis=1, **M)
    np.testing.assert_array_equal(tau.values, t2)
    np.testing.assert_array_equal(k.values, k2)


# --------------------------------------------------------------------------- alpha-entmax
# alpha is a core input of signature (): a scalar or one value per row, broadcast by NumPy.
ALPHAS = (1.1, 1.5, 2.0, 3.0)
EB_TOL = {np.float32: 1e-6, np.float64: 1e-12}


def _alphas(n):
    return np.resize(np.array(ALPHAS), n)


def test_entmax_bisect_signatures():
    assert g.entmax_bisect.signature == "(n),()->(n)"
    assert g.entmax_bisect_threshold.signature == "(n),()->(),()"
    assert g.entmax_bisect_jvp.signature == "(n),(n),()->(n)"
    assert g.entmax_bisect_loss.signature == "(n),(n),()->()"
    assert g.entmax_bisect_loss_and_grad.signature == "(n),(n),()->(),(n)"
    assert g.entmax_bisect_loss_label.signature == "(n),(),()->()"
    assert g.entmax_bisect_loss_label_and_grad.signature == "(n),(),()->(),(n)"
    import sparsemax_nb.gufuncs as alias

    assert "entmax_bisect" in dir(g) and "entmax_bisect" in alias.__all__
    assert alias.entmax_bisect is g.entmax_bisect


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_entmax_bisect_forward_and_threshold(dtype):
    z = _rows(dtype)
    alpha = _alphas(z.shape[0])
    p = g.entmax_bisect(z, alpha)
    assert p.dtype == dtype
    np.testing.assert_array_equal(p, sm.entmax_bisect(z, alpha))
    # against the longdouble bisection of tests/naive.py (NaN rows where it has them)
    ref = naive.entmax_bisect(z.astype(np.float64), alpha)
    np.testing.assert_array_equal(np.isnan(p), np.isnan(ref))
    np.testing.assert_allclose(p, ref, rtol=0, atol=EB_TOL[dtype])
    tau, k = g.entmax_bisect_threshold(z, alpha)
    t2, k2 = sm.entmax_bisect_threshold(z, alpha)
    assert tau.dtype == dtype and k.dtype == np.int64
    np.testing.assert_array_equal(tau, t2)
    np.testing.assert_array_equal(k, k2)
    rt, rk = naive.entmax_bisect_threshold(z.astype(np.float64), alpha)
    np.testing.assert_array_equal(k, rk)
    fin = np.isfinite(rt)
    np.testing.assert_allclose(tau[fin], rt[fin], rtol=EB_TOL[dtype], atol=EB_TOL[dtype])
    assert (k[~fin] == 0).all() and np.isnan(tau[~fin]).all()
    # a scalar alpha, each of them. Row 5 spans 1e308: for alpha > 2 its scaled
    # differences (alpha - 1) (z - max z) overflow to -inf, off the support (the result is
    # exact), and NumPy reports the flag as it would for np.multiply: errstate governs it.
    for a in ALPHAS:
        with np.errstate(over="ignore" if a > 2 else "raise"):
            np.testing.assert_array_equal(g.entmax_bisect(z, a), sm.entmax_bisect(z, a))


def test_entmax_bisect_identities():
    z = np.random.default_rng(11).standard_normal((20, 17)) * 3
    z[3, ::3] = -np.inf
    np.testing.assert_allclose(g.entmax_bisect(z, 2.0), g.sparsemax(z), rtol=0, atol=4e-16)
    np.testing.assert_allclose(g.entmax_bisect(z, 1.5), g.entmax15(z), rtol=0, atol=2e-15)
    t2, k2 = g.entmax_bisect_threshold(z, 2.0)
    ts, ks = g.sparsemax_threshold(z)
    np.testing.assert_allclose(t2, ts, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(k2, ks)
    y = np.arange(20) % 17
    y[3] = 1  # a finite entry of the masked row
    np.testing.assert_allclose(g.entmax_bisect_loss_label(z, y, 2.0),
                               g.sparsemax_loss_label(z, y), rtol=1e-13, atol=1e-15)


def test_entmax_bisect_broadcasting_axes_out():
    z = _rows(np.float64, (6, 3, 9))
    z[5, 0] = 50.0  # not 1e308: along axis 1 alpha = 3 would overflow (see above)
    a3 = np.array([1.2, 2.0, 3.0])  # broadcasts over the batch shape (6, 3)
    np.testing.assert_array_equal(g.entmax_bisect(z, a3), sm.entmax_bisect(z, a3))
    a61 = np.resize(np.array(ALPHAS), (6, 1))
    np.testing.assert_array_equal(g.entmax_bisect(z, a61), sm.entmax_bisect(z, a61))
    # alpha broadcasts against z as any operand: here it adds a batch dimension
    a2 = np.array([1.3, 2.5]).reshape(2, 1, 1)
    p = g.entmax_bisect(z, a2)
    assert p.shape == (2, 6, 3, 9)
    for i in range(2):
        np.testing.assert_array_equal(p[i], sm.entmax_bisect(z, a2[i, 0, 0]))
    # along axis 1: the batch shape is (6, 9)
    a49 = np.resize(np.array(ALPHAS), (6, 9))
    want = sm.entmax_bisect(z, a49, axis=1)
    np.testing.assert_array_equal(g.entmax_bisect(z, a49, axes=[(1,), (), (1,)]), want)
    np.testing.assert_array_equal(g.entmax_bisect(z, a49, axis=1), want)
    tau, k = g.entmax_bisect_threshold(z, a49, axes=[(1,), (), (), ()])
    t2, k2 = sm.entmax_bisect_threshold(z, a49, axis=1)
    np.testing.assert_array_equal(tau, t2)
    np.testing.assert_array_equal(k, k2)
    out = np.empty_like(z)
    assert g.entmax_bisect(z, a3, out=out) is out
    np.testing.assert_array_equal(out, sm.entmax_bisect(z, a3))
    zc = z.copy()
    g.entmax_bisect(zc, a3, out=zc)  # in place
    np.testing.assert_array_equal(zc, out)
    zr = z[::-1, :, ::-2]  # reversed, strided
    np.testing.assert_array_equal(g.entmax_bisect(zr, a3), sm.entmax_bisect(zr, a3))


def test_entmax_bisect_dtypes_and_small_rows():
    z = (np.arange(12).reshape(3, 4) % 3).astype(np.int8)
    p = g.entmax_bisect(z, 1.3)
    assert p.dtype == np.float64
    np.testing.assert_array_equal(p, sm.entmax_bisect(z, 1.3))
    assert g.entmax_bisect(z.astype(np.float16), 1.3).dtype == np.float32
    # a float32 alpha is widened, as the public function widens it
    z32 = np.random.default_rng(5).standard_normal((5, 6)).astype(np.float32)
    a32 = np.float32(1.1)
    np.testing.assert_array_equal(g.entmax_bisect(z32, a32), sm.entmax_bisect(z32, a32))
    a32s = np.array([1.1, 1.3, 1.7, 2.2, 2.9], np.float32)
    np.testing.assert_array_equal(g.entmax_bisect(z32, a32s), sm.entmax_bisect(z32, a32s))
    with pytest.raises(TypeError):
        g.entmax_bisect(z32, 1.5 + 0j)
    # K = 1: p = 1, tau from the single entry; K = 0: NaN threshold, size 0
    z1 = np.array([[0.3], [-np.inf], [np.nan], [7.0]])
    a = np.array([1.1, 1.5, 2.0, 3.0])
    np.testing.assert_array_equal(g.entmax_bisect(z1, a), sm.entmax_bisect(z1, a))
    np.testing.assert_array_equal(g.entmax_bisect(z1, a)[[0, 3], 0], [1.0, 1.0])
    tau, k = g.entmax_bisect_threshold(z1, a)
    np.testing.assert_array_equal(k, [1, 0, 0, 1])
    np.testing.assert_array_equal(tau, sm.entmax_bisect_threshold(z1, a)[0])
    assert g.entmax_bisect(np.empty((3, 0)), 1.5).shape == (3, 0)
    tau, k = g.entmax_bisect_threshold(np.empty((3, 0)), 1.5)
    assert np.isnan(tau).all() and (k == 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_entmax_bisect_jvp(dtype):
    z = _rows(dtype)
    alpha = _alphas(z.shape[0])
    p = sm.entmax_bisect(z, alpha)
    v = np.random.default_rng(2).standard_normal(z.shape).astype(dtype)
    got = g.entmax_bisect_jvp(p, v, alpha)
    np.testing.assert_array_equal(got, sm.entmax_bisect_jvp(p, v, alpha))
    ok = ~np.isnan(p).any(axis=1)
    np.testing.assert_allclose(got[ok], naive.entmax_jvp(p[ok], v[ok], alpha[ok]), rtol=0,
                               atol=10 * EB_TOL[dtype])
    p[6] = 0.0  # no support: NaN row, as the API
    np.testing.assert_array_equal(g.entmax_bisect_jvp(p, v, alpha),
                                  sm.entmax_bisect_jvp(p, v, alpha))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_entmax_bisect_losses(dtype):
    z = _rows(dtype)
    alpha = _alphas(z.shape[0])
    q = _dist(z.shape, dtype)
    z[9, 0] = -np.inf  # masked where q is 0: a finite loss
    loss = g.entmax_bisect_loss(z, q, alpha)
    assert loss.dtype == dtype and np.isfinite(loss[9])
    np.testing.assert_array_equal(loss, sm.entmax_bisect_loss(z, q, alpha))
    l2, gr = g.entmax_bisect_loss_and_grad(z, q, alpha)
    L, G = sm.entmax_bisect_loss_and_grad(z, q, alpha)
    np.testing.assert_array_equal(l2, L)
    np.testing.assert_array_equal(gr, G)
    ok = ~np.isnan(L)
    ref = naive.entmax_loss(z[ok].astype(np.float64), q[ok].astype(np.float64), alpha[ok])
    np.testing.assert_allclose(L[ok], ref, rtol=10 * EB_TOL[dtype], atol=10 * EB_TOL[dtype])
    y = np.arange(z.shape[0]) % z.shape[1]
    y[4] = 2  # a -inf masked target: infinite loss, as the API
    loss = g.entmax_bisect_loss_label(z, y, alpha)
    np.testing.assert_array_equal(loss, sm.entmax_bisect_loss(z, y, alpha))
    assert loss[4] == np.inf
    l2, gr = g.entmax_bisect_loss_label_and_grad(z, y.astype(np.int32), alpha)
    L, G = sm.entmax_bisect_loss_and_grad(z, y, alpha)
    np.testing.assert_array_equal(l2, L)
    np.testing.assert_array_equal(gr, G)
    # invalid targets: NaN rows, the others unchanged
    bad = y.copy()
    bad[9] = 99
    bad[10] = -1
    lb = g.entmax_bisect_loss_label(z, bad, alpha)
    assert np.isnan(lb[[9, 10]]).all()
    np.testing.assert_array_equal(lb[:9], loss[:9])
    qb = q.copy()
    qb[7, 0] = -0.5
    qb[8] *= 2.0
    lq, gq = g.entmax_bisect_loss_and_grad(z, qb, alpha)
    assert np.isnan(lq[[7, 8]]).all() and np.isnan(gq[[7, 8]]).all()


def test_entmax_bisect_loss_grad_finite_differences():
    rng = np.random.default_rng(8)
    z = rng.standard_normal((4, 6)) * 2
    q = _dist(z.shape, np.float64)
    alpha = np.array(ALPHAS)
    _, grad = g.entmax_bisect_loss_and_grad(z, q, alpha)
    h = 1e-6
    fd = np.empty_like(z)
    for j in range(z.shape[1]):
        e = np.zeros_like(z)
        e[:, j] = h
        fd[:, j] = (g.entmax_bisect_loss(z + e, q, alpha) - g.entmax_bisect_loss(z - e, q, alpha)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=0, atol=1e-7)
    y = np.array([0, 5, 2, 3])
    _, grad = g.entmax_bisect_loss_label_and_grad(z, y, alpha)
    for j in range(z.shape[1]):
        e = np.zeros_like(z)
        e[:, j] = h
        fd[:, j] = (g.entmax_bisect_loss_label(z + e, y, alpha)
                    - g.entmax_bisect_loss_label(z - e, y, alpha)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=0, atol=1e-7)


def test_entmax_bisect_invalid_alpha_gives_nan_rows():
    # A gufunc cannot raise per row: an alpha that is not finite and > 1 gives a NaN row
    # (the public functions raise ValueError), and no floating-point warning.
    z = np.random.default_rng(9).standard_normal((8, 5))
    alpha = np.array([1.3, 1.0, 0.5, np.nan, np.inf, -np.inf, -2.0, 2.0])
    bad = np.arange(1, 7)
    good = np.array([0, 7])
    p = g.entmax_bisect(z, alpha)
    assert np.isnan(p[bad]).all()
    np.testing.assert_array_equal(p[good], sm.entmax_bisect(z[good], alpha[good]))
    tau, k = g.entmax_bisect_threshold(z, alpha)
    assert np.isnan(tau[bad]).all() and (k[bad] == 0).all()
    np.testing.assert_array_equal(tau[good], sm.entmax_bisect_threshold(z[good], alpha[good])[0])
    pp = sm.entmax_bisect(z, 1.5)
    v = np.ones_like(z)
    assert np.isnan(g.entmax_bisect_jvp(pp, v, alpha)[bad]).all()
    q = _dist(z.shape, np.float64)
    y = np.arange(8) % 5
    assert np.isnan(g.entmax_bisect_loss(z, q, alpha)[bad]).all()
    assert np.isnan(g.entmax_bisect_loss_label(z, y, alpha)[bad]).all()
    for f, t in ((g.entmax_bisect_loss_and_grad, q), (g.entmax_bisect_loss_label_and_grad, y)):
        loss, grad = f(z, t, alpha)
        assert np.isnan(loss[bad]).all() and np.isnan(grad[bad]).all()
        L, G = sm.entmax_bisect_loss_and_grad(z[good], t[good], alpha[good])
        np.testing.assert_array_equal(loss[good], L)
        np.testing.assert_array_equal(grad[good], G)
    for a in (1.0, np.nan):  # a scalar: every row
        assert np.isnan(g.entmax_bisect(z, a)).all()
    with pytest.raises(ValueError):  # the public function raises instead
        sm.entmax_bisect(z, alpha)


def test_entmax_bisect_dask():
    da = pytest.importorskip("dask.array")
    z = _rows(np.float64, (40, 9))
    alpha = np.resize(np.array(ALPHAS), 40)
    dz = da.from_array(z, chunks=(7, 9))
    dal = da.from_array(alpha, chunks=7)
    got = da.apply_gufunc(g.entmax_bisect, "(n),()->(n)", dz, dal, output_dtypes=z.dtype)
    np.testing.assert_array_equal(got.compute(), g.entmax_bisect(z, alpha))
    np.testing.assert_array_equal(np.asarray(g.entmax_bisect(dz, 1.3)), g.entmax_bisect(z, 1.3))
