"""Sparse attention against a NumPy reference, and finite-difference checks of the vjp."""

import numpy as np
import pytest

import sparsemax_nb as sm
from sparsemax_nb.apps.attention import sparsemax_attention, sparsemax_attention_vjp
from sparsemax_nb.cli.bench._numpy_ref import numpy_sparsemax


def _ref(q, k, v, mask=None, scale=None):
    d = q.shape[-1]
    s = 1.0 / np.sqrt(d) if scale is None else scale
    S = np.matmul(q, np.swapaxes(k, -1, -2)) * s
    if mask is not None:
        S = np.where(mask, S, -np.inf)
    W = numpy_sparsemax(S)
    return W @ v, W


@pytest.mark.parametrize(
    "qs,ks,vs",
    [
        ((5, 4), (7, 4), (7, 3)),  # single example
        ((2, 5, 4), (2, 7, 4), (2, 7, 6)),  # batch
        ((2, 3, 5, 4), (2, 3, 7, 4), (2, 3, 7, 6)),  # batch, heads
        ((2, 3, 5, 4), (1, 3, 7, 4), (7, 6)),  # broadcast leading axes
    ],
)
def test_matches_numpy_reference(qs, ks, vs):
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=qs) * 2, rng.normal(size=ks) * 2, rng.normal(size=vs)
    out, w = sparsemax_attention(q, k, v)
    ro, rw = _ref(q, k, v)
    assert out.shape == ro.shape and w.shape == rw.shape
    np.testing.assert_allclose(w, rw, atol=1e-12)
    np.testing.assert_allclose(out, ro, atol=1e-12)
    assert (w == 0).any()  # exact zeros
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-12)


def test_weights_are_the_library_sparsemax():
    rng = np.random.default_rng(1)
    q, k, v = (rng.normal(size=(3, 6, 5)) for _ in range(3))
    _, w = sparsemax_attention(q, k, v, scale=0.7)
    np.testing.assert_array_equal(w > 0, sm.sparsemax(0.7 * q @ k.transpose(0, 2, 1)) > 0)


def test_float32_and_large_batch_parallel_path():
    rng = np.random.default_rng(2)
    q = rng.normal(size=(8, 4, 64, 16)).astype(np.float32)
    k = rng.normal(size=(8, 4, 64, 16)).astype(np.float32)
    v = rng.normal(size=(8, 4, 64, 8)).astype(np.float32)
    out, w = sparsemax_attention(q, k, v)
    assert out.dtype == np.float32 and w.dtype == np.float32
    ro, rw = _ref(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64))
    np.testing.assert_allclose(w, rw, atol=1e-5)
    np.testing.assert_allclose(out, ro, atol=1e-5)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the NumPy reference on a -inf row
def test_mask_and_all_masked_row():
    rng = np.random.default_rng(3)
    q, k, v = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 6, 3)), rng.normal(size=(2, 6, 2))
    mask = rng.random((4, 6)) > 0.4
    mask[:, 0] = True
    mask[2] = False  # query 2 attends to nothing
    out, w = sparsemax_attention(q, k, v, mask)
    ro, rw = _ref(q, k, v, mask)
    ok = np.ones(4, bool)
    ok[2] = False
    np.testing.assert_allclose(w[:, ok], rw[:, ok], atol=1e-12)
    np.testing.assert_allclose(out[:, ok], ro[:, ok], atol=1e-12)
    masked = np.broadcast_to(~mask, w.shape).copy()
    masked[:, 2] = False
    assert np.all(w[masked] == 0)  # masked keys get exactly 0
    assert np.isnan(w[:, 2]).all() and np.isnan(out[:, 2]).all()  # contract section 4: a NaN row
    g = np.ones_like(out)
    gq, gk, gv = sparsemax_attention_vjp(q, k, v, w, g)
    assert np.isnan(gq[:, 2]).all() and np.isfinite(gq[:, ok]).all()
    assert np.isfinite(gk).all() and np.isfinite(gv).all()


def test_bad_input():
    q = np.zeros((2, 3))
    with pytest.raises(ValueError, match="feature"):
        sparsemax_attention(q, np.zeros((4, 5)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="keys"):
        sparsemax_attention(q, np.zeros((4, 3)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="boolean"):
        sparsemax_attention(q, np.zeros((4, 3)), np.zeros((4, 2)), mask=np.ones((2, 4)))
    with pytest.raises(ValueError, match="broadcast"):
        sparsemax_attention(q, np.zeros((4, 3)), np.zeros((4, 2)), mask=np.ones((3, 4), bool))
    with pytest.raises(TypeError):
        sparsemax_attention(q.astype(complex), np.zeros((4, 3)), np.zeros((4, 2)))


def _fd_check(q, k, v, mask, scale):
    rng = np.random.default_rng(5)
    out, w = sparsemax_attention(q, k, v, mask, scale=scale)
    g = rng.normal(size=out.shape)
    grads = sparsemax_attention_vjp(q, k, v, w, g, scale=scale)

    def f():
        return float(np.sum(sparsemax_attention(q, k, v, mask, scale=scale)[0] * g))

    eps = 1e-6
    for a, ga in zip((q, k, v), grads):
        assert ga.shape == a.shape
        num = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            fp = f()
            a[idx] = old - eps
            fm = f()
            a[idx] = old
            num[idx] = (fp - fm) / (2 * eps)
        np.testing.assert_allclose(ga, num, atol=1e-6)


def test_vjp_finite_differences():
    rng = np.random.default_rng(4)
    q, k, v = rng.normal(size=(2, 4, 3)) * 2, rng.normal(size=(2, 5, 3)) * 2, rng.normal(size=(2, 5, 2))
    _fd_check(q, k, v, None, None)


def test_vjp_finite_differences_masked_and_broadcast():
    rng = np.random.default_rng(6)
    q = rng.normal(size=(2, 2, 3, 3)) * 2
    k = rng.normal(size=(1, 2, 5, 3)) * 2  # broadcast over the batch axis
    v = rng.normal(size=(5, 2))
    mask = rng.random((3, 5)) > 0.3
    mask[:, 1] = True
    _fd_check(q, k, v, mask, 0.8)


def test_bench_attention_quick():
    from sparsemax_nb.cli.bench.attention import bench_attention

    rows = bench_attention(quick=True)
    assert rows and {"sparsemax_s", "softmax_s", "ratio", "shape"} <= set(rows[0])
    assert rows[0]["ratio"] > 0
