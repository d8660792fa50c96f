"""A mapping added as one module and one registry line reaches the host backends.

``sparsemax_temperature`` (``sparsemax(z / T)``) is called through the same private
operations as the public sparsemax functions, on NumPy and on Dask arrays, and checked
against sparsemax of the scaled scores and against the naive references.
"""

import numpy as np
import pytest

import naive
from sparsemax_nb import api

M = "sparsemax_temperature"


def _z(shape=(6, 9), seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("T", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("method", ["sort", "select"])
def test_forward_threshold_match_sparsemax_of_scaled_scores(T, method):
    z = _z()
    p = api._forward(M, z, -1, None, method, T, None)
    np.testing.assert_allclose(p, naive.sparsemax(z / T), atol=1e-12)
    tau, k = api._threshold(M, z, -1, method, T, None)
    rt, rk = naive.threshold(z / T)
    np.testing.assert_allclose(tau, rt, atol=1e-12)
    np.testing.assert_array_equal(k, rk)


def test_per_row_temperature_and_axis():
    z = _z((3, 5, 4))
    T = np.array([0.5, 1.0, 2.0, 4.0])  # one per row of the batch (3, 4) along axis 1
    p = api._forward(M, z, 1, None, "auto", T, None)
    want = np.moveaxis(naive.sparsemax(np.moveaxis(z / T[None, None, :], 1, -1)), -1, 1)
    np.testing.assert_allclose(p, want, atol=1e-12)


def test_jvp_and_loss_gradient_by_finite_differences():
    z = _z((4, 7), 3) * 2
    T = 1.7
    y = np.array([0, 3, 6, 2])
    loss, grad = api._loss(M, z, y, -1, "none", None, "auto", T, True, None, None)
    np.testing.assert_allclose(loss, naive.loss(z / T, y), atol=1e-12)
    eps = 1e-6
    for i in range(z.shape[1]):
        d = np.zeros_like(z)
        d[:, i] = eps
        fd = (api._loss(M, z + d, y, -1, "none", None, "auto", T, False, None, None)[0]
              - api._loss(M, z - d, y, -1, "none", None, "auto", T, False, None, None)[0]) / (2 * eps)
        np.testing.assert_allclose(grad[:, i], fd, atol=1e-6)
    p = api._forward(M, z, -1, None, "auto", T, None)
    v = _z((4, 7), 4)
    jv = api._jvp(M, p, v, -1, None, T, None)
    for i in range(z.shape[1]):
        d = np.zeros_like(z)
        d[:, i] = eps
        fd = (api._forward(M, z + d, -1, None, "auto", T, None)
              - api._forward(M, z - d, -1, None, "auto", T, None)) / (2 * eps)
        # J is symmetric: (J v)_i = sum_j dp_j/dz_i v_j
        np.testing.assert_allclose(jv[:, i], (fd * v).sum(axis=1), atol=1e-6)


def test_dask_backend_picks_it_up():
    da = pytest.importorskip("dask.array")
    z = _z((8, 6))
    p = api._forward(M, da.from_array(z, chunks=(3, 2)), -1, None, "auto", 2.5, None)
    np.testing.assert_allclose(p.compute(), naive.sparsemax(z / 2.5), atol=1e-12)


def test_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        api._forward(M, _z(), -1, None, "auto", 0.0, None)
