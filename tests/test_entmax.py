"""The entmax family: 1.5-entmax and alpha-entmax against slow longdouble references
(tests/naive.py), adversarial rows, identities with sparsemax, the softmax limit, the
Jacobian and the Fenchel-Young loss, properties, and the other backends."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import naive
import sparsemax_nb as sm

ALPHAS = [1.05, 1.3, 1.5, 2.0, 2.5, 4.0]
METHODS = ["sort", "select"]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _adversarial(K=40):
    """Rows that trip thresholds: ties, order, scale, masking, slow-Newton spacings."""
    rows = {
        "equal": np.zeros(K),
        "ascending": np.arange(K, dtype=float),
        "descending": np.arange(K, dtype=float)[::-1] / 7,
        "two-ties": np.r_[np.ones(K // 2), np.zeros(K - K // 2)],
        "halving": -(2.0 ** -np.arange(K)),
        "halving-scaled": -(2.0 ** -np.arange(K)) * 3,
        "even-fine": np.linspace(0, 1e-3, K),
        "even-wide": np.linspace(0, 10, K),
        "huge": _rng(1).standard_normal(K) * 1e300,
        "huge-offset": 1e308 + np.zeros(K) + np.r_[0, _rng(2).standard_normal(K - 1)] * 1e292,
        "tiny": _rng(3).standard_normal(K) * 1e-300,
        "masked": np.where(np.arange(K) % 3 == 0, -np.inf, _rng(4).standard_normal(K)),
        "one-left": np.r_[0.5, np.full(K - 1, -np.inf)],
        "one-big": np.r_[100.0, np.zeros(K - 1)],
        "near-threshold": np.r_[2.0, np.full(K - 1, 0.0) + 1e-15 * np.arange(K - 1)],
    }
    return rows


def _check_rows(got, ref, atol):
    assert got.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got, ref, rtol=0, atol=atol)


# --------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_entmax15_against_reference(method, dtype, atol):
    for K, scale in [(1, 1.0), (2, 1.0), (5, 3.0), (17, 0.1), (100, 1.0), (300, 10.0), (64, 100.0)]:
        z = (_rng(K).standard_normal((6, K)) * scale).astype(dtype)
        p = sm.entmax15(z, method=method)
        assert p.dtype == dtype
        _check_rows(p, naive.entmax15(z), atol)
        tau, k = sm.entmax15_threshold(z, method=method)
        rt, rk = naive.entmax15_threshold(z)
        np.testing.assert_allclose(tau, rt, rtol=0, atol=atol * max(1.0, scale))
        np.testing.assert_array_equal(k, rk)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_entmax_bisect_against_reference(alpha, dtype, atol):
    for K, scale in [(1, 1.0), (3, 1.0), (17, 0.3), (100, 2.0), (250, 10.0)]:
        z = (_rng(K + 1).standard_normal((4, K)) * scale).astype(dtype)
        p = sm.entmax_bisect(z, alpha)
        assert p.dtype == dtype
        _check_rows(p, naive.entmax_bisect(z, alpha), atol)
        tau, k = sm.entmax_bisect_threshold(z, alpha)
        rt, rk = naive.entmax_bisect_threshold(z, alpha)
        np.testing.assert_allclose(tau, rt, rtol=0, atol=atol * max(1.0, scale))
        np.testing.assert_array_equal(k, rk)


@pytest.mark.parametrize("name", list(_adversarial()))
def test_adversarial_rows(name):
    z = _adversarial()[name]
    ref15 = naive.entmax15(z)
    for method in METHODS:
        _check_rows(sm.entmax15(z, method=method), ref15, 1e-12)
    for alpha in (1.3, 1.5, 2.0, 3.0):
        _check_rows(sm.entmax_bisect(z, alpha), naive.entmax_bisect(z, alpha), 1e-12)
    with np.errstate(over="ignore"):
        z32 = z.astype(np.float32)
    if np.all(np.isfinite(z32) | np.isneginf(z)):
        _check_rows(sm.entmax15(z32), naive.entmax15(z32), 1e-6)
        _check_rows(sm.entmax_bisect(z32, 1.3), naive.entmax_bisect(z32, 1.3), 1e-6)


@pytest.mark.parametrize("alpha", [1.01, 1.3, 2.0, 4.0])
def test_flat_long_rows(alpha):
    """Many tiny outputs: for alpha > 2 the threshold is near 0 and must keep its digits."""
    z = np.r_[0.0, _rng(8).standard_normal(4999) * 1e-3]
    _check_rows(sm.entmax_bisect(z, alpha), naive.entmax_bisect(z, alpha), 1e-12)
    _check_rows(sm.entmax_bisect(np.zeros(3000), alpha), np.full(3000, 1 / 3000), 1e-15)


def test_long_rows_every_method_agrees():
    z = _rng(7).standard_normal((3, 20000))
    z[1] = np.linspace(0, 3, 20000)  # many entries in the support
    a = sm.entmax15(z, method="sort")
    b = sm.entmax15(z, method="select")
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(sm.entmax_bisect(z, 1.5), a, rtol=0, atol=1e-14)


def _entmax15_hard_rows(K):
    """Rows that are slow for Newton or degenerate for a pivot search, permuted (or
    sorted on purpose): the same kinds as sparsemax's adversarial rows."""
    rng = _rng(50)
    i = np.arange(K, dtype=float)
    rows = {
        "even": -i * (4.0 / K),
        "even-fine": -i * 1e-5,
        "ascending": i / K * 3,
        "descending": (i / K * 3)[::-1],
        "geometric": -(2.0 ** -i[:60]),
        "geometric-up": -(2.0 ** (i[:60] - 30)),
        "many-ties": np.repeat(rng.standard_normal(K // 50 + 1), 50)[:K],
        "all-support": np.r_[np.zeros(K // 2), np.full(K - K // 2, -1e-3)],
        "equal": np.zeros(K),
        "one-big": np.r_[5.0, np.zeros(K - 1)],
        "normal": rng.standard_normal(K),
    }
    return {k: (v if k in ("ascending", "descending") else rng.permutation(v))
            for k, v in rows.items()}


@pytest.mark.parametrize("K", [9, 1000, 100000])
def test_entmax15_linear_time_paths_on_hard_rows(K):
    """The select path (Newton's passes, and the pivot finish it falls back on, called
    here on every candidate) against the sorted finish, and for K <= 1000 the reference."""
    from sparsemax_nb.mappings import entmax15 as E15

    for name, z in _entmax15_hard_rows(K).items():
        ref = sm.entmax15(z, method="sort")
        tr, kr = sm.entmax15_threshold(z, method="sort")
        if K <= 1000:
            _check_rows(ref, naive.entmax15(z), 1e-12)
        _check_rows(sm.entmax15(z, method="select"), ref, 1e-12)
        t, k = sm.entmax15_threshold(z, method="select")
        assert k == kr, name
        assert abs(t - tr) <= 1e-12
        m = float(z.max())
        t_pivot, k_pivot = E15._finish(z, m, m, -2.0, np.empty(z.size))
        assert k_pivot == kr, name
        assert abs(0.5 * m + t_pivot - tr) <= 1e-12, name
        z32 = z.astype(np.float32)
        _check_rows(sm.entmax15(z32), sm.entmax15(z32.astype(np.float64), method="sort"), 1e-6)


def test_entmax15_float32_dense_supports():
    """Float32 rows with thousands of entries in the support: Newton's last step is below
    the rounding of the float32 sums and can land past tau (then the pivot search
    finishes between the last two points), or the support test is ill-conditioned (then
    decided in float64 around the least entry)."""
    rng = _rng(56)
    for z in ((rng.standard_normal((12, 30000)) * 0.01).astype(np.float32),
              rng.random((12, 30000)).astype(np.float32),
              np.linspace(0, 0.05, 20000, dtype=np.float32)[None]):
        z64 = z.astype(np.float64)
        _check_rows(sm.entmax15(z), sm.entmax15(z64, method="sort"), 1e-6)
        t, k = sm.entmax15_threshold(z)
        tr, kr = sm.entmax15_threshold(z64, method="sort")
        np.testing.assert_array_equal(k, kr)
        np.testing.assert_allclose(t, tr, rtol=0, atol=1e-6)
        _check_rows(sm.entmax15(z64), sm.entmax15(z64, method="sort"), 1e-12)


def test_entmax15_pivot_finish_ties_and_orders():
    """The pivot search alone on candidate sets that defeat median-of-three pivots."""
    from sparsemax_nb.mappings import entmax15 as E15

    for x in (np.zeros(33), -np.arange(1000.0) / 400, -(np.arange(1000.0) / 400)[::-1],
              np.r_[0.0, np.full(500, -0.01), np.full(499, -0.5)],
              -np.abs(_rng(51).standard_normal(5000)) / 5):
        buf = np.sort(x)[::-1].copy()
        t_sort, k_sort = E15._sorted_finish(buf.copy(), buf.size)
        for order in (buf, buf[::-1], _rng(52).permutation(buf)):
            t, k = E15._support_pivot(order.copy(), order.size)
            assert k == k_sort
            assert abs(t - t_sort) <= 1e-15


def test_entmax15_loss_alpha15_special_form():
    """The alpha = 1.5 loss (square roots and cubes) against the generic alpha-entmax loss
    at alpha = 1.5 and the reference, with masked scores, labels on and off the support,
    targets with zeros and a target equal to the output (loss 0, no cancellation)."""
    z = _rng(53).standard_normal((12, 30)) * 2
    z[3, ::4] = -np.inf
    z[4, 5:] = -np.inf
    y = _rng(54).integers(0, 30, 12)
    y[3] = 1  # not masked
    y[4] = 2
    y[5] = int(np.argmin(z[5]))  # off the support
    q = _rng(55).random(z.shape) ** 3
    q[:, ::2] = 0
    q[3, ::4] = 0  # no mass on the masked entries
    q[4] = 0
    q[4, :5] = 0.2
    q /= q.sum(-1, keepdims=True)
    for t in (y, q):
        L, G = sm.entmax15_loss_and_grad(z, t)
        assert np.isfinite(L).all() and np.isfinite(G).all()
        np.testing.assert_allclose(L, naive.entmax_loss(z, t, 1.5), rtol=0, atol=1e-12)
        Lb, Gb = sm.entmax_bisect_loss_and_grad(z, t, 1.5)
        np.testing.assert_allclose(L, Lb, rtol=0, atol=1e-12)
        np.testing.assert_allclose(G, Gb, rtol=0, atol=1e-14)
    p = sm.entmax15(z)
    L0 = sm.entmax15_loss(z, p)
    assert np.all(L0 >= 0) and np.all(L0 <= 1e-15)
    # mass on a masked entry: an infinite loss, never NaN
    q2 = q.copy()
    q2[3, 0] = 0.5
    q2[3] /= q2[3].sum()
    L2 = sm.entmax15_loss(z, q2)
    assert L2[3] == np.inf and np.isfinite(np.delete(L2, 3)).all()
    zl = z.copy()
    zl[6, y[6]] = -np.inf  # the label itself masked
    L3 = sm.entmax15_loss(zl, y)
    assert L3[6] == np.inf and not np.isnan(L3).any()
    # float32 scores: within float32 rounding of the float64 loss
    np.testing.assert_allclose(sm.entmax15_loss(z.astype(np.float32), y),
                               naive.entmax_loss(z.astype(np.float32), y, 1.5), rtol=0, atol=1e-6)


def test_non_finite_rows():
    z = np.array([[1.0, np.nan, 0.0], [np.inf, 0.0, 1.0], [-np.inf] * 3, [0.0, -np.inf, 1.0]])
    for p in (sm.entmax15(z), sm.entmax_bisect(z, 1.3)):
        assert np.isnan(p[:3]).all()
        assert p[3, 1] == 0.0 and abs(p[3].sum() - 1) < 1e-15
    tau, k = sm.entmax15_threshold(z)
    assert np.isnan(tau[:3]).all() and list(k) == [0, 0, 0, 2]


# --------------------------------------------------------------------------- identities
def test_alpha_2_is_sparsemax():
    z = _rng(11).standard_normal((50, 37)) * 3
    np.testing.assert_allclose(sm.entmax_bisect(z, 2.0), sm.sparsemax(z), rtol=0, atol=4e-16)
    np.testing.assert_allclose(sm.entmax_bisect_threshold(z, 2.0)[0], sm.sparsemax_threshold(z)[0],
                               rtol=0, atol=1e-15)
    np.testing.assert_array_equal(sm.entmax_bisect_threshold(z, 2.0)[1], sm.sparsemax_threshold(z)[1])
    q = sm.sparsemax(z[::-1])
    np.testing.assert_allclose(sm.entmax_bisect_loss(z, q, 2.0), sm.sparsemax_loss(z, q), rtol=1e-13,
                               atol=1e-15)
    p = sm.sparsemax(z)
    v = _rng(12).standard_normal(z.shape)
    np.testing.assert_allclose(sm.entmax_bisect_jvp(p, v, 2.0), sm.sparsemax_jvp(p, v), atol=1e-15)


def test_alpha_15_is_entmax15():
    z = _rng(13).standard_normal((50, 37)) * 3
    # two algorithms, each exact to rounding: a few ulps apart
    np.testing.assert_allclose(sm.entmax_bisect(z, 1.5), sm.entmax15(z), rtol=0, atol=2e-15)
    t1, k1 = sm.entmax_bisect_threshold(z, 1.5)
    t2, k2 = sm.entmax15_threshold(z)
    np.testing.assert_allclose(t1, t2, rtol=0, atol=2e-15)
    np.testing.assert_array_equal(k1, k2)
    y = _rng(14).integers(0, 37, 50)
    np.testing.assert_allclose(sm.entmax_bisect_loss(z, y, 1.5), sm.entmax15_loss(z, y), rtol=1e-14)
    p = sm.entmax15(z)
    v = _rng(15).standard_normal(z.shape)
    np.testing.assert_allclose(sm.entmax_bisect_jvp(p, v, 1.5), sm.entmax15_jvp(p, v), atol=1e-15)


@pytest.mark.parametrize("eps", [1e-2, 1e-4, 1e-6, 1e-9])
def test_alpha_to_1_is_softmax(eps):
    z = _rng(16).standard_normal((20, 50)) * 5
    z[0] *= 100  # scores that overflow a naive exp(z)
    z[1, :10] = -np.inf
    e = np.exp(z - z.max(-1, keepdims=True))
    soft = e / e.sum(-1, keepdims=True)
    with np.errstate(all="raise"):
        p = sm.entmax_bisect(z, 1 + eps)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-12)
    # p_i = (1 + eps x_i - eps tau)^(1/eps) -> exp(x_i - tau): the gap is O(eps).
    np.testing.assert_allclose(p, soft, rtol=0, atol=60 * eps)
    if eps >= 1e-6:
        _check_rows(p[2:5], naive.entmax_bisect(z[2:5], 1 + eps), 1e-12)


def test_alpha_per_row_and_errors():
    z = _rng(17).standard_normal((4, 3, 9))
    alpha = np.array([1.2, 1.5, 2.0])  # broadcasts over the batch shape (4, 3)
    p = sm.entmax_bisect(z, alpha)
    for j, a in enumerate(alpha):
        np.testing.assert_allclose(p[:, j], sm.entmax_bisect(z[:, j], a), atol=1e-15)
    full = np.linspace(1.1, 3.0, 12).reshape(4, 3)
    _check_rows(sm.entmax_bisect(z, full), naive.entmax_bisect(z, full), 1e-12)
    # along axis 0, the batch shape is (3, 9)
    a0 = np.linspace(1.1, 2.5, 9)
    _check_rows(sm.entmax_bisect(z, a0, axis=0), naive.entmax_bisect(z, np.broadcast_to(a0, (3, 9)), axis=0),
                1e-12)
    z0 = z.copy()
    for bad in [1.0, 0.5, np.nan, np.inf, -2.0, [1.5, 1.0, 2.0]]:
        with pytest.raises(ValueError, match="alpha must be finite and > 1"):
            sm.entmax_bisect(z, bad, out=z)
    with pytest.raises(ValueError, match="alpha of shape"):
        sm.entmax_bisect(z, [1.5, 2.0])
    with pytest.raises(TypeError, match="alpha must be real"):
        sm.entmax_bisect(z, 1.5 + 0j)
    np.testing.assert_array_equal(z, z0)  # nothing of the caller's modified


# --------------------------------------------------------------------------- Jacobian
@pytest.mark.parametrize("alpha", [1.5, 1.2, 2.0, 3.0])
def test_jvp_against_matrix_and_finite_differences(alpha):
    z = _rng(18).standard_normal((8, 12)) * 2
    f = (lambda x: sm.entmax15(x)) if alpha == 1.5 else (lambda x: sm.entmax_bisect(x, alpha))
    jv = (lambda p, v: sm.entmax15_jvp(p, v)) if alpha == 1.5 else (lambda p, v: sm.entmax_bisect_jvp(p, v, alpha))
    p = f(z)
    v = _rng(19).standard_normal(z.shape)
    got = jv(p, v)
    np.testing.assert_allclose(got, naive.entmax_jvp(p, v, alpha), atol=1e-12)
    h = 1e-6
    fd = (f(z + h * v) - f(z - h * v)) / (2 * h)
    np.testing.assert_allclose(got, fd, atol=1e-6)
    # symmetric: u.(J v) = v.(J u)
    u = _rng(20).standard_normal(z.shape)
    np.testing.assert_allclose((u * got).sum(-1), (v * jv(p, u)).sum(-1), atol=1e-12)
    assert np.isnan(jv(np.zeros((1, 4)), np.ones((1, 4)))).all()


# --------------------------------------------------------------------------- loss
def _loss_fns(alpha):
    if alpha == 1.5:
        return sm.entmax15, sm.entmax15_loss, sm.entmax15_loss_grad, sm.entmax15_loss_and_grad
    return (lambda z: sm.entmax_bisect(z, alpha),
            lambda z, t, **kw: sm.entmax_bisect_loss(z, t, alpha, **kw),
            lambda z, t, **kw: sm.entmax_bisect_loss_grad(z, t, alpha, **kw),
            lambda z, t, **kw: sm.entmax_bisect_loss_and_grad(z, t, alpha, **kw))


@pytest.mark.parametrize("alpha", [1.5, 1.1, 1.3, 2.0, 3.0])
def test_loss_against_reference_and_gradient(alpha):
    fwd, loss, grad, both = _loss_fns(alpha)
    z = _rng(21).standard_normal((10, 9)) * 2
    y = _rng(22).integers(0, 9, 10)
    q = _rng(23).random((10, 9))
    q[:, ::3] = 0
    q /= q.sum(-1, keepdims=True)
    for t in (y, q):
        L = loss(z, t)
        np.testing.assert_allclose(L, naive.entmax_loss(z, t, alpha), rtol=1e-11, atol=1e-13)
        assert np.all(L >= -1e-15)
        qq = t if t.dtype.kind == "f" else np.eye(9)[t]
        np.testing.assert_allclose(grad(z, t), fwd(z) - qq, atol=1e-15)
        # finite differences of the loss along random directions
        for seed in range(3):
            v = _rng(30 + seed).standard_normal(z.shape)
            h = 1e-6
            fd = (loss(z + h * v, t) - loss(z - h * v, t)) / (2 * h)
            np.testing.assert_allclose(fd, (grad(z, t) * v).sum(-1), atol=2e-7)
        Lb, Gb = both(z, t, reduction="mean")
        assert Lb == pytest.approx(L.mean(), rel=1e-14)
        np.testing.assert_allclose(Gb, grad(z, t) / 10, atol=1e-16)
    # L = 0 iff the mapping hits the target
    p = fwd(z)
    np.testing.assert_allclose(loss(z, p), 0.0, atol=1e-13)


@pytest.mark.parametrize("alpha", [1.5, 1.3])
def test_loss_ignore_index_reduction_masking(alpha):
    _, loss, grad, both = _loss_fns(alpha)
    z = _rng(24).standard_normal((6, 5))
    y = np.array([0, 2, -100, 4, -100, 1])
    L = loss(z, y, ignore_index=-100)
    assert L[2] == 0 and L[4] == 0
    keep = y != -100
    np.testing.assert_allclose(L[keep], naive.entmax_loss(z[keep], y[keep], alpha), rtol=1e-12)
    assert loss(z, y, ignore_index=-100, reduction="mean") == pytest.approx(L[keep].mean(), rel=1e-14)
    assert loss(z, y, ignore_index=-100, reduction="sum") == pytest.approx(L.sum(), rel=1e-14)
    g = grad(z, y, ignore_index=-100, reduction="mean")
    assert np.all(g[~keep] == 0)
    # masked scores: no NaN anywhere; infinite loss only where the target has mass
    zm = z.copy()
    zm[:, 3] = -np.inf
    yy = np.array([0, 1, 2, 4, 0, 3])
    Lm, Gm = both(zm, yy)
    assert not np.isnan(Lm).any() and not np.isnan(Gm).any()
    assert np.isinf(Lm[5]) and np.isfinite(Lm[:5]).all()
    np.testing.assert_allclose(Lm[:5], naive.entmax_loss(zm[:5], yy[:5], alpha), rtol=1e-12)
    q = np.full((6, 5), 0.25)
    q[:, 3] = 0
    Lq = loss(zm, q)
    assert np.isfinite(Lq).all()
    np.testing.assert_allclose(Lq, naive.entmax_loss(zm, q, alpha), rtol=1e-12)


def test_loss_float32_and_axis():
    z = _rng(25).standard_normal((7, 4, 6)).astype(np.float32)
    y = _rng(26).integers(0, 4, (7, 6))
    L = sm.entmax15_loss(z, y, axis=1)
    assert L.dtype == np.float32 and L.shape == (7, 6)
    np.testing.assert_allclose(L, naive.entmax_loss(z, y, 1.5, axis=1), rtol=1e-5, atol=1e-6)
    L2 = sm.entmax_bisect_loss(z, y, 1.3, axis=1)
    np.testing.assert_allclose(L2, naive.entmax_loss(z, y, 1.3, axis=1), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- layouts
def test_axis_out_strides_and_dtypes():
    z = _rng(27).standard_normal((5, 6, 7))
    for axis in range(-3, 3):
        _check_rows(sm.entmax15(z, axis=axis), naive.entmax15(z, axis=axis), 1e-12)
        _check_rows(sm.entmax_bisect(z, 1.7, axis=axis), naive.entmax_bisect(z, 1.7, axis=axis), 1e-12)
    zf = np.asfortranarray(z)[:, ::-1, ::2]
    _check_rows(sm.entmax15(zf), naive.entmax15(np.array(zf)), 1e-12)
    out = np.empty((7, 6, 5)).T
    assert sm.entmax_bisect(z, 1.3, out=out) is out
    _check_rows(out, naive.entmax_bisect(z, 1.3), 1e-12)
    zz = z.copy()
    sm.entmax15(zz, out=zz)  # in place
    _check_rows(zz, naive.entmax15(z), 1e-12)
    assert sm.entmax15(np.array([1, 2, 3])).dtype == np.float64
    assert sm.entmax15(np.ones(3, np.float16)).dtype == np.float32
    assert sm.entmax15(np.zeros((3, 0))).shape == (3, 0)
    with pytest.raises(ValueError, match="method"):
        sm.entmax15(z, method="bisect")
    with pytest.raises(TypeError):
        sm.entmax_bisect(z.astype(complex))


def test_large_call_uses_threads_and_agrees():
    z = _rng(28).standard_normal((600, 512)).astype(np.float32)  # above the serial cut-off
    p = sm.entmax15(z)
    np.testing.assert_array_equal(p[:5], sm.entmax15(z[:5]))
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
    pb = sm.entmax_bisect(z, 1.3)
    np.testing.assert_array_equal(pb[:5], sm.entmax_bisect(z[:5], 1.3))


# --------------------------------------------------------------------------- properties
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
rows = st.integers(1, 40).flatmap(lambda K: arrays(np.float64, (K,), elements=finite))
alphas = st.sampled_from([1.5, 1.2, 2.0, 3.0, 1.01])


def _fwd(z, alpha, method="select"):
    return sm.entmax15(z, method=method) if alpha == 1.5 else sm.entmax_bisect(z, alpha)


@given(rows, alphas)
def test_on_the_simplex_and_reference(z, alpha):
    p = _fwd(z, alpha)
    assert np.all(p >= 0)
    assert abs(p.sum() - 1) <= 4 * z.size * np.finfo(float).eps
    ref = naive.entmax15(z) if alpha == 1.5 else naive.entmax_bisect(z, alpha)
    np.testing.assert_allclose(p, ref, rtol=0, atol=1e-12)
    if alpha == 1.5:
        np.testing.assert_allclose(sm.entmax15(z, method="sort"), p, rtol=0, atol=1e-14)


@given(rows, finite, alphas)
def test_shift_invariance(z, c, alpha):
    np.testing.assert_allclose(_fwd(z + c, alpha), _fwd(z, alpha), rtol=0, atol=1e-9)


@given(rows, st.randoms(use_true_random=False), alphas)
def test_permutation_equivariance(z, rnd, alpha):
    perm = np.array(rnd.sample(range(z.size), z.size))
    np.testing.assert_allclose(_fwd(z[perm], alpha), _fwd(z, alpha)[perm], rtol=0, atol=1e-14)


@given(rows, alphas)
def test_kkt_conditions(z, alpha):
    """On the support (alpha - 1) z_i - p_i^(alpha - 1) = tau; off it (alpha - 1) z_i <= tau."""
    p = _fwd(z, alpha)
    tau, k = sm.entmax15_threshold(z) if alpha == 1.5 else sm.entmax_bisect_threshold(z, alpha)
    S = p > 0
    assert k >= S.sum() >= 1
    a1 = alpha - 1
    scale = 1e-12 * (1 + a1 * np.abs(z).max())
    np.testing.assert_allclose(a1 * z[S] - p[S] ** a1, tau, rtol=0, atol=scale)
    assert np.all(a1 * z[~S] <= tau + scale)


# --------------------------------------------------------------------------- other backends
def test_dask_backend_picks_the_mappings_up():
    da = pytest.importorskip("dask.array")
    z = _rng(29).standard_normal((30, 11))
    z[4, ::2] = -np.inf
    dz = da.from_array(z, chunks=(7, 11))
    np.testing.assert_array_equal(sm.entmax15(dz).compute(), sm.entmax15(z))
    np.testing.assert_array_equal(sm.entmax_bisect(dz, 1.3).compute(), sm.entmax_bisect(z, 1.3))
    alpha = np.linspace(1.1, 3, 30)
    np.testing.assert_array_equal(sm.entmax_bisect(dz, alpha).compute(), sm.entmax_bisect(z, alpha))
    t, k = sm.entmax_bisect_threshold(dz, alpha)
    t2, k2 = sm.entmax_bisect_threshold(z, alpha)
    np.testing.assert_array_equal(t.compute(), t2)
    np.testing.assert_array_equal(k.compute(), k2)
    y = _rng(30).integers(0, 11, 30)
    L, G = sm.entmax15_loss_and_grad(dz, da.from_array(y, chunks=7), reduction="mean")
    L2, G2 = sm.entmax15_loss_and_grad(z, y, reduction="mean")
    assert float(L.compute()) == pytest.approx(float(L2), rel=1e-14)
    np.testing.assert_array_equal(G.compute(), G2)
    p = sm.entmax15(z)
    v = _rng(31).standard_normal(z.shape)
    np.testing.assert_array_equal(sm.entmax15_jvp(da.from_array(p, chunks=(7, 11)), v).compute(),
                                  sm.entmax15_jvp(p, v))


def test_cuda_backend_refuses_a_mapping_it_lacks():
    """Mappings without device kernels are refused by name (entmax has its own, tested in
    tests/test_gpu_entmax.py)."""
    cuda = pytest.importorskip("numba.cuda")
    from sparsemax_nb import api

    d = cuda.to_device(np.zeros((2, 3)))
    with pytest.raises(NotImplementedError, match="sparsemax_temperature"):
        api._forward("sparsemax_temperature", d, -1, None, "auto", 2.0, None)


# --------------------------------------------------------------------------- Numba front-ends
def _bad_rows(dtype=np.float64):
    z = _rng(40).standard_normal((9, 11)).astype(dtype)
    z[1, 2] = np.nan
    z[2] = -np.inf
    z[3, 1] = np.inf
    z[4, ::2] = -np.inf
    z[5, 0] = 1e38 if dtype == np.float32 else 1e308
    return z


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_entmax15_gufuncs_bitwise(dtype):
    from sparsemax_nb.numba import gufuncs as g

    z = _bad_rows(dtype)
    assert g.entmax15.signature == "(n)->(n)"
    np.testing.assert_array_equal(g.entmax15(z), sm.entmax15(z, method="select"))
    tau, k = g.entmax15_threshold(z)
    t2, k2 = sm.entmax15_threshold(z, method="select")
    np.testing.assert_array_equal(tau, t2)
    np.testing.assert_array_equal(k, k2)
    p = sm.entmax15(z)
    v = _rng(41).standard_normal(z.shape).astype(dtype)
    np.testing.assert_array_equal(g.entmax15_jvp(p, v), sm.entmax15_jvp(p, v))
    zz = z[4:].copy()
    q = _rng(42).random(zz.shape).astype(dtype)
    q[:, ::2] = 0
    q /= q.sum(-1, keepdims=True)
    L, G = g.entmax15_loss_and_grad(zz, q)
    L2, G2 = sm.entmax15_loss_and_grad(zz, q)
    np.testing.assert_array_equal(L, L2)
    np.testing.assert_array_equal(G, G2)
    y = np.array([0, 1, 2, 3, 4])
    L, G = g.entmax15_loss_label_and_grad(zz, y)
    L2, G2 = sm.entmax15_loss_and_grad(zz, y)
    np.testing.assert_array_equal(L, L2)
    np.testing.assert_array_equal(G, G2)
    np.testing.assert_array_equal(g.entmax15_loss_label(zz, y), L2)


def test_entmax15_inside_njit():
    from numba import njit

    @njit
    def run(z, p, v, y):
        a = sm.entmax15(z)
        t, k = sm.entmax15_threshold(z, method="sort")
        j = sm.entmax15_jvp(p, v)
        L, G = sm.entmax15_loss_and_grad(z, y, reduction="mean")
        return a, t, k, j, L, G

    z = _rng(43).standard_normal((6, 9))
    z[2, ::2] = -np.inf
    p = sm.entmax15(z)
    v = _rng(44).standard_normal(z.shape)
    y = np.array([0, 1, 3, 3, 4, 5])
    a, t, k, j, L, G = run(z, p, v, y)
    np.testing.assert_array_equal(a, sm.entmax15(z))
    t2, k2 = sm.entmax15_threshold(z, method="sort")
    np.testing.assert_array_equal(t, t2)
    np.testing.assert_array_equal(k, k2)
    np.testing.assert_array_equal(j, sm.entmax15_jvp(p, v))
    L2, G2 = sm.entmax15_loss_and_grad(z, y, reduction="mean")
    assert L == pytest.approx(L2, rel=1e-14)
    np.testing.assert_array_equal(G, G2)


# --------------------------------------------------------------------------- bench section
def test_bench_entmax_section(tmp_path, capsys):
    """The bench's entmax section: rows of the bench's shape (never a timing asserted)."""
    import json

    from sparsemax_nb.cli import main

    path = tmp_path / "e.json"
    assert main(["bench", "--tiny", "--only", "entmax", "--no-progress", "--repeat", "1",
                 "--json", str(path)]) == 0
    rows = json.loads(path.read_text())["rows"]
    names = {r["kernel"] for r in rows}
    assert {"entmax15[select]", "entmax15[sort]", "entmax_bisect[1.3]", "copyto", "softmax"} <= names
    for r in rows:
        assert r["case"].startswith("entmax") and r["median_s"] > 0 and r["ratio_copyto"] > 0
    assert "x copyto" in capsys.readouterr().out


# --------------------------------------------------------------------------- attention
@pytest.mark.parametrize("alpha", [1.5, 1.3, 3.0])
def test_attention_with_alpha(alpha):
    from sparsemax_nb.apps.attention import sparsemax_attention, sparsemax_attention_vjp

    rng = _rng(50)
    q = rng.standard_normal((2, 4, 3))
    k = rng.standard_normal((2, 6, 3))
    v = rng.standard_normal((2, 6, 5))
    mask = np.ones((4, 6), bool)
    mask[1, :4] = False
    out, w = sparsemax_attention(q, k, v, mask, scale=0.7, alpha=alpha)
    S = 0.7 * q @ k.transpose(0, 2, 1)
    S[:, ~mask] = -np.inf
    ref_w = naive.entmax_bisect(S, alpha)
    np.testing.assert_allclose(w, ref_w, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out, ref_w @ v, rtol=0, atol=1e-12)
    g = rng.standard_normal(out.shape)
    gq, gk, gv = sparsemax_attention_vjp(q, k, v, w, g, scale=0.7, alpha=alpha)
    # The chain rule with the public Jacobian: dS = J(w) (g v^T), dq = 0.7 dS k, ...
    dS = sm.entmax_bisect_jvp(w, g @ v.transpose(0, 2, 1), alpha)
    np.testing.assert_allclose(gq, 0.7 * dS @ k, atol=1e-12)
    np.testing.assert_allclose(gk, 0.7 * dS.transpose(0, 2, 1) @ q, atol=1e-12)
    np.testing.assert_allclose(gv, w.transpose(0, 2, 1) @ g, atol=1e-12)
    # and finite differences of <g, output> along a direction of q
    dq = rng.standard_normal(q.shape)
    h = 1e-6
    fp = (sparsemax_attention(q + h * dq, k, v, mask, scale=0.7, alpha=alpha)[0] * g).sum()
    fm = (sparsemax_attention(q - h * dq, k, v, mask, scale=0.7, alpha=alpha)[0] * g).sum()
    assert (fp - fm) / (2 * h) == pytest.approx((gq * dq).sum(), abs=1e-6)
    with pytest.raises(ValueError, match="alpha must be finite and > 1"):
        sparsemax_attention(q, k, v, alpha=1.0)
