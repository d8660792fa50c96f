"""The gradient of alpha-entmax with respect to alpha (``entmax_bisect_alpha_vjp``).

Checked against central finite differences of the longdouble reference (tests/naive.py,
bisection to adjacent longdouble floats), which resolve ``d<g, p>/dalpha`` to about 1e-11,
and against float64 finite differences of our own forward where the reference is too slow.
"""

import numpy as np
import pytest

import naive
import sparsemax_nb as sm

LD = np.longdouble


def _rows(seed, shape=(5, 9), scale=2.0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape) * scale
    z[1, :3] = z[1, 3]  # ties
    z[2, ::2] = -np.inf  # masked entries
    g = rng.standard_normal(shape)
    return z, g


def _fd_reference(z, g, alpha, h):
    """Central difference of sum(g * p) in longdouble, per row."""
    z = np.asarray(z, dtype=np.float64)
    out = []
    for zr, gr in zip(z, g):
        def f(a):
            p, _, _ = naive._entmax_row(zr, a)
            return (np.asarray(gr, dtype=LD) * np.asarray(p, dtype=LD)).sum()

        out.append(float((f(LD(alpha) + LD(h)) - f(LD(alpha) - LD(h))) / (2 * LD(h))))
    return np.array(out)


@pytest.mark.parametrize("alpha", [1.05, 1.3, 1.5, 2.0, 2.5])
def test_alpha_vjp_matches_finite_differences(alpha):
    z, g = _rows(0)
    got = sm.entmax_bisect_alpha_vjp(sm.entmax_bisect(z, alpha), g, alpha)
    # The forward in float64 (rounded p) against the longdouble forward: the difference
    # quotient is taken in float64 here, step chosen for its ~1e-8 accuracy.
    h = 1e-5 * (alpha - 1)
    fd = ((g * sm.entmax_bisect(z, alpha + h)).sum(-1)
          - (g * sm.entmax_bisect(z, alpha - h)).sum(-1)) / (2 * h)
    np.testing.assert_allclose(got, fd, rtol=0, atol=1e-7 / (alpha - 1))
    assert got.shape == (5,)


def test_alpha_vjp_near_one_is_accurate():
    """As alpha -> 1 the naive form loses eps / (alpha - 1)^2; ours keeps its digits."""
    z, g = _rows(1, (3, 7))
    z[2, ::2] = 0.3  # the reference's bisection is slow on masked rows; plain row here
    for alpha in (1.001, 1.0 + 1e-5):
        got = sm.entmax_bisect_alpha_vjp(sm.entmax_bisect(z, alpha), g, alpha)
        # The reference rounds p to float64: a step of 1% of alpha - 1 keeps that rounding
        # (1e-16 / h) and the truncation (h^2) both under 1e-8 here; the naive form's error
        # at alpha = 1 + 1e-5 is about 1e-6.
        ref = _fd_reference(z, g, alpha, 1e-2 * (alpha - 1))
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-7)


def test_alpha_vjp_rows_axes_dtypes_and_per_row_alpha():
    z, g = _rows(2, (4, 6, 3))
    alpha = np.array([1.2, 1.5, 2.0, 3.0])[:, None]  # batch shape (4, 3) broadcast
    p = sm.entmax_bisect(z, alpha, axis=1)
    got = sm.entmax_bisect_alpha_vjp(p, g, alpha, axis=1)
    assert got.shape == (4, 3)
    for i in range(4):
        for j in range(3):
            a = float(alpha[i, 0])
            one = sm.entmax_bisect_alpha_vjp(p[i, :, j], g[i, :, j], a)
            assert one.shape == ()
            np.testing.assert_allclose(got[i, j], one, rtol=1e-15, atol=0)
    got32 = sm.entmax_bisect_alpha_vjp(p.astype(np.float32), g.astype(np.float32), alpha,
                                       axis=1)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, got, rtol=1e-4, atol=1e-5)


def test_alpha_vjp_bad_rows_and_errors():
    p = np.array([[0.5, 0.5, 0.0], [np.nan, 0.5, 0.5], [0.0, 0.0, 0.0]])
    g = np.ones_like(p)
    got = sm.entmax_bisect_alpha_vjp(p, g, 1.5)
    assert got[0] == pytest.approx(0.0, abs=1e-15)  # g constant on the simplex: no change
    assert np.isnan(got[1]) and np.isnan(got[2])
    with pytest.raises(ValueError, match="alpha"):
        sm.entmax_bisect_alpha_vjp(p, g, 1.0)
    with pytest.raises(ValueError, match="shape"):
        sm.entmax_bisect_alpha_vjp(p, g[:, :2], 1.5)
    before = p.copy()
    sm.entmax_bisect_alpha_vjp(p, g, 1.5)
    np.testing.assert_array_equal(p, before)


def test_alpha_vjp_dask_matches_numpy():
    da = pytest.importorskip("dask.array")
    z, g = _rows(3, (6, 8))
    p = sm.entmax_bisect(z, 1.4)
    lazy = sm.entmax_bisect_alpha_vjp(da.from_array(p, chunks=(2, 8)),
                                      da.from_array(g, chunks=(2, 8)), 1.4)
    np.testing.assert_array_equal(lazy.compute(), sm.entmax_bisect_alpha_vjp(p, g, 1.4))


def test_alpha_vjp_refused_on_device_arrays():
    cuda = pytest.importorskip("numba.cuda")
    d = cuda.to_device(np.full((2, 3), 1 / 3))
    with pytest.raises(NotImplementedError, match="alpha gradient"):
        sm.entmax_bisect_alpha_vjp(d, d, 1.5)


def test_alpha_vjp_tiny_and_subnormal_entries():
    """Entries far below the top (p down to subnormal at alpha near 1) take the closed
    form without overflow; the result matches finite differences."""
    z = np.array([[0.0, -0.3, -0.6, -0.9, -1.2], [0.0, -0.01, -30.0, -34.0, -35.0]])
    g = np.array([[1.0, -2.0, 0.5, 3.0, -1.0], [0.3, -0.2, 5.0, -4.0, 2.0]])
    for alpha in (1.02, 1.3):
        p = sm.entmax_bisect(z, alpha)
        got = sm.entmax_bisect_alpha_vjp(p, g, alpha)
        assert np.all(np.isfinite(got))
        h = 1e-5 * (alpha - 1)
        fd = ((g * sm.entmax_bisect(z, alpha + h)).sum(-1)
              - (g * sm.entmax_bisect(z, alpha - h)).sum(-1)) / (2 * h)
        np.testing.assert_allclose(got, fd, rtol=0, atol=1e-6)
    p = np.array([1.0 - 1e-300, 5e-324, 1e-310, 0.0])  # subnormal entries in p itself
    assert np.isfinite(sm.entmax_bisect_alpha_vjp(p, np.arange(4.0), 1.001))
