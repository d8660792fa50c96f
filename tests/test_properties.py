"""Property tests (hypothesis): the invariances and optimality conditions of section 2 of docs/contract.md."""

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import naive
import sparsemax_nb as sm

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
rows = st.integers(1, 40).flatmap(lambda K: arrays(np.float64, (K,), elements=finite))
batches = st.tuples(st.integers(1, 5), st.integers(1, 30)).flatmap(
    lambda s: arrays(np.float64, s, elements=finite)
)
methods = st.sampled_from(["sort", "select"])


@given(batches, methods)
def test_on_the_simplex(z, method):
    p = sm.sparsemax(z, method=method)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=4 * z.shape[-1] * np.finfo(float).eps)
    np.testing.assert_allclose(p, naive.sparsemax(z), atol=1e-12)


@given(rows, finite, methods)
def test_shift_invariance(z, c, method):
    p = sm.sparsemax(z, method=method)
    np.testing.assert_allclose(sm.sparsemax(z + c, method=method), p, atol=1e-9)


@given(rows, st.randoms(use_true_random=False), methods)
def test_permutation_equivariance(z, rnd, method):
    perm = list(range(z.size))
    rnd.shuffle(perm)
    perm = np.array(perm)
    np.testing.assert_allclose(sm.sparsemax(z[perm], method=method), sm.sparsemax(z, method=method)[perm], atol=1e-12)


@given(rows, methods)
def test_idempotent_on_the_simplex(z, method):
    p = sm.sparsemax(z, method=method)
    np.testing.assert_allclose(sm.sparsemax(p, method=method), p, atol=1e-12)


@given(rows, methods)
def test_kkt_conditions(z, method):
    """p = max(z - tau, 0): on the support z_i - p_i = tau, off it z_i <= tau."""
    p = sm.sparsemax(z, method=method)
    tau, k = sm.sparsemax_threshold(z, method=method)
    S = p > 0
    assert k == S.sum() >= 1
    scale = 1e-12 * (1 + np.abs(z).max())
    np.testing.assert_allclose(z[S] - p[S], tau, atol=scale)
    assert np.all(z[~S] <= tau + scale)


@given(rows)
def test_order_and_lipschitz(z):
    """z_i <= z_j implies 0 <= p_j - p_i <= z_j - z_i."""
    p = sm.sparsemax(z)
    o = np.argsort(z)
    dz, dp = np.diff(z[o]), np.diff(p[o])
    assert np.all(dp >= -1e-12)
    assert np.all(dp <= dz + 1e-9)


@given(rows, st.data())
def test_loss_is_nonnegative_and_bounds(z, data):
    K = z.size
    k = data.draw(st.integers(0, K - 1))
    q = np.zeros(K)
    q[k] = 1
    L = float(sm.sparsemax_loss(z, k))
    p = sm.sparsemax(z)
    assert L >= 0.5 * np.sum((p - q) ** 2) - 1e-9 * (1 + np.abs(z).max())
    others = np.delete(z, k)
    if K > 1:
        assume(abs(z[k] - 1 - others.max()) > 1e-6)
        assert (L == 0) == (z[k] >= 1 + others.max())


@given(st.integers(1, 40).flatmap(lambda K: arrays(np.float64, (2, K), elements=finite)))
def test_jvp_matches_matrix(zv):
    z, v = zv
    p = sm.sparsemax(z)
    np.testing.assert_allclose(sm.sparsemax_jvp(p, v), naive.jvp(p, v), atol=1e-9)


def test_uniform_at_zero():
    for K in (1, 2, 5, 100):
        np.testing.assert_allclose(sm.sparsemax(np.zeros(K)), np.full(K, 1 / K), atol=1e-15)
