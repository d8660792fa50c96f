"""The generalized ufuncs of sparsemax_nb.gufuncs against the public API (bitwise)."""

import numpy as np
import pytest

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
