"""The sparsemax loss, its gradient, the Jacobian-vector product and labels_to_proportions."""

import json
import os

import numpy as np
import pytest

import naive
import sparsemax_nb as sm

VECTORS = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vectors.json")))
METHODS = ["sort", "select"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", VECTORS["loss"], ids=lambda c: f"{c['z']}-{c.get('label', 'q')}")
def test_loss_vectors(case, method):
    z = np.array(case["z"])
    target = case["label"] if "label" in case else np.array(case["q"])
    loss = sm.sparsemax_loss(z, target, method=method)
    assert abs(float(loss) - case["loss"]) <= 1e-12
    if "grad" in case:
        np.testing.assert_allclose(sm.sparsemax_loss_grad(z, target), case["grad"], atol=1e-12)


def _dist(rng, shape, sparse=True):
    q = rng.random(shape)
    if sparse:
        q[rng.random(shape) < 0.5] = 0
        q[..., 0] += 0.1
    return q / q.sum(-1, keepdims=True)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_against_reference(method, dtype):
    rng = np.random.default_rng(0)
    z = (rng.standard_normal((40, 13)) * 2).astype(dtype)
    labels = rng.integers(0, 13, 40)
    q = _dist(rng, (40, 13)).astype(dtype)
    t = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(sm.sparsemax_loss(z, labels, method=method), naive.loss(z, labels), rtol=t, atol=t)
    np.testing.assert_allclose(sm.sparsemax_loss(z, q, method=method), naive.loss(z, q), rtol=t, atol=t)


def test_three_forms_of_the_loss():
    rng = np.random.default_rng(1)
    for _ in range(30):
        K = rng.integers(1, 20)
        z = rng.standard_normal(K) * rng.uniform(0.1, 4)
        q = _dist(rng, (K,))
        p = naive.sparsemax(z)
        L = float(sm.sparsemax_loss(z, q))
        form2 = 0.5 * np.sum((z - q) ** 2) - 0.5 * np.sum((z - p) ** 2)
        form3 = z @ p - 0.5 * p @ p + 0.5 * q @ q - q @ z
        assert L == pytest.approx(form2, abs=1e-12)
        assert L == pytest.approx(form3, abs=1e-12)
        assert L >= 0.5 * np.sum((p - q) ** 2) - 1e-15


@pytest.mark.parametrize("t", np.linspace(-3, 3, 25))
def test_binary_modified_huber(t):
    z = np.array([t / 2, -t / 2])
    expected = 0.0 if t >= 1 else (-t if t <= -1 else (t - 1) ** 2 / 4)
    assert float(sm.sparsemax_loss(z, 0)) == pytest.approx(expected, abs=1e-12)


def test_separation_margin():
    rng = np.random.default_rng(2)
    for _ in range(50):
        z = rng.standard_normal(6)
        k = int(rng.integers(0, 6))
        others = np.delete(z, k).max()
        L = float(sm.sparsemax_loss(z, k))
        if z[k] >= 1 + others + 1e-9:
            assert L == 0.0
        elif z[k] < 1 + others - 1e-9:
            assert L > 0.0
    z = np.array([0.0, 1.5, 0.5])  # exactly on the margin
    assert float(sm.sparsemax_loss(z, 1)) == 0.0


def test_loss_gradient_finite_differences():
    rng = np.random.default_rng(3)
    h = 1e-6
    for _ in range(20):
        K = int(rng.integers(2, 12))
        z = rng.standard_normal(K) * 1.5
        q = _dist(rng, (K,))
        for target in (q, int(rng.integers(0, K))):
            g = sm.sparsemax_loss_grad(z, target)
            fd = np.empty(K)
            for i in range(K):
                e = np.zeros(K)
                e[i] = h
                fd[i] = (sm.sparsemax_loss(z + e, target) - sm.sparsemax_loss(z - e, target)) / (2 * h)
            np.testing.assert_allclose(g, fd, atol=1e-7)


def test_jvp_finite_differences():
    rng = np.random.default_rng(4)
    h = 1e-7
    for _ in range(30):
        K = int(rng.integers(1, 15))
        z = rng.standard_normal(K) * 2
        v = rng.standard_normal(K)
        p = sm.sparsemax(z)
        fd = (sm.sparsemax(z + h * v) - sm.sparsemax(z - h * v)) / (2 * h)
        np.testing.assert_allclose(sm.sparsemax_jvp(p, v), fd, atol=1e-6)
        np.testing.assert_allclose(sm.sparsemax_jvp(p, v), naive.jvp(p, v), atol=1e-12)


def test_jvp_is_the_vjp():
    rng = np.random.default_rng(5)
    z = rng.standard_normal(9)
    p = sm.sparsemax(z)
    J = np.stack([sm.sparsemax_jvp(p, e) for e in np.eye(9)], axis=1)
    np.testing.assert_allclose(J, J.T, atol=1e-15)
    u, v = rng.standard_normal((2, 9))
    assert u @ sm.sparsemax_jvp(p, v) == pytest.approx(sm.sparsemax_jvp(p, u) @ v, abs=1e-12)


def test_jvp_undefined_rows_are_nan():
    out = sm.sparsemax_jvp([[0.0, 0.0], [np.nan, np.nan], [0.5, 0.5]], np.ones((3, 2)))
    assert np.isnan(out[:2]).all()
    np.testing.assert_array_equal(out[2], [0.0, 0.0])


def test_fused_equals_separate():
    rng = np.random.default_rng(6)
    z = rng.standard_normal((30, 7))
    y = rng.integers(0, 7, 30)
    for red in ("none", "sum", "mean"):
        loss, grad = sm.sparsemax_loss_and_grad(z, y, reduction=red)
        np.testing.assert_array_equal(loss, sm.sparsemax_loss(z, y, reduction=red))
        np.testing.assert_array_equal(grad, sm.sparsemax_loss_grad(z, y, reduction=red))
    np.testing.assert_allclose(sm.sparsemax_loss_grad(z, y), sm.sparsemax(z) - np.eye(7)[y], atol=1e-15)


def test_loss_and_grad_runs_sparsemax_once(monkeypatch):
    from sparsemax_nb.backends import _threads

    calls = []
    real = _threads.run
    monkeypatch.setattr(_threads, "run", lambda get, name, *a, **kw: calls.append(name) or real(get, name, *a, **kw))
    sm.sparsemax_loss_and_grad(np.zeros((3, 4)), [0, 1, 2])
    assert calls == ["loss_labels"]


def test_ignore_index_and_reductions():
    rng = np.random.default_rng(7)
    z = rng.standard_normal((6, 5))
    y = np.array([0, -100, 4, 2, -100, 1])
    loss, grad = sm.sparsemax_loss_and_grad(z, y, ignore_index=-100)
    keep = y != -100
    assert np.all(loss[~keep] == 0) and np.all(grad[~keep] == 0)
    np.testing.assert_allclose(loss[keep], naive.loss(z[keep], y[keep]), atol=1e-12)
    mean, gmean = sm.sparsemax_loss_and_grad(z, y, ignore_index=-100, reduction="mean")
    assert float(mean) == pytest.approx(loss[keep].sum() / 4, abs=1e-12)
    np.testing.assert_allclose(gmean, grad / 4, atol=1e-15)
    total, gsum = sm.sparsemax_loss_and_grad(z, y, ignore_index=-100, reduction="sum")
    assert float(total) == pytest.approx(loss.sum(), abs=1e-12)
    np.testing.assert_array_equal(gsum, grad)
    # Every row ignored: the mean is NaN (like PyTorch), the gradient zero.
    m, g = sm.sparsemax_loss_and_grad(z[:2], [-100, -100], ignore_index=-100, reduction="mean")
    assert np.isnan(m) and np.all(g == 0)


def test_ignore_index_inside_the_class_range():
    z = np.array([[1.0, 0.0], [0.0, 1.0]])
    loss = sm.sparsemax_loss(z, [1, 0], ignore_index=1)
    assert loss[0] == 0 and loss[1] > 0


def test_masking_never_gives_nan_loss():
    z = np.array([[0.0, -np.inf, 1.0, -np.inf], [2.0, -np.inf, -np.inf, -np.inf]])
    q = np.array([[0.5, 0.0, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0]])
    for target in (q, np.array([2, 0])):
        loss, grad = sm.sparsemax_loss_and_grad(z, target)
        assert np.isfinite(loss).all() and np.isfinite(grad).all()
    # Mass on a masked class: an infinite loss, not NaN.
    assert sm.sparsemax_loss(z, [1, 0])[0] == np.inf


def test_nan_rows_in_loss():
    z = np.array([[0.0, np.nan], [1.0, 0.0], [-np.inf, -np.inf]])
    loss, grad = sm.sparsemax_loss_and_grad(z, [0, 0, 1])
    assert np.isnan(loss[0]) and np.isnan(loss[2]) and np.isfinite(loss[1])
    assert np.isnan(grad[0]).all() and np.isfinite(grad[1]).all()
    assert np.isnan(sm.sparsemax_loss(z, [0, 0, 1], reduction="sum"))


def test_loss_along_other_axes():
    rng = np.random.default_rng(8)
    z = rng.standard_normal((4, 5, 6))
    y = rng.integers(0, 5, (4, 6))
    loss = sm.sparsemax_loss(z, y, axis=1)
    ref = naive.loss(np.moveaxis(z, 1, -1), y)
    np.testing.assert_allclose(loss, ref, atol=1e-12)
    g = sm.sparsemax_loss_grad(z, y, axis=1)
    onehot = np.moveaxis(np.eye(5)[y], -1, 1)
    np.testing.assert_allclose(g, sm.sparsemax(z, axis=1) - onehot, atol=1e-15)
    q = np.moveaxis(_dist(rng, (4, 6, 5)), -1, 1)
    np.testing.assert_allclose(sm.sparsemax_loss(z, q, axis=1), naive.loss(z, q, axis=1), atol=1e-12)


# --------------------------------------------------------------------------- bad targets
def test_bad_class_index_names_it():
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"class index 4 at batch position \(1,\)"):
        sm.sparsemax_loss(z, [0, 4, 7])
    with pytest.raises(ValueError, match="class index -1"):
        sm.sparsemax_loss(z, [0, -1, 2])
    with pytest.raises(ValueError, match="class index -1"):
        sm.sparsemax_loss(z, [0, -1, 2], ignore_index=-100)
    with pytest.raises(ValueError, match="batch shape"):
        sm.sparsemax_loss(z, [0, 1])
    with pytest.raises(ValueError, match="labels_to_proportions"):
        sm.sparsemax_loss(z, np.zeros((3, 4), int))


def test_bad_distributions_name_the_row():
    z = np.zeros((3, 4))
    q = np.full((3, 4), 0.25)
    bad = q.copy()
    bad[2] = [0.5, 0.5, 0.5, -0.5]
    with pytest.raises(ValueError, match=r"\(2,\) has a negative"):
        sm.sparsemax_loss(z, bad)
    bad = q.copy()
    bad[1, 0] = 0.3
    with pytest.raises(ValueError, match=r"\(1,\) sums to"):
        sm.sparsemax_loss(z, bad)
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"\(1,\)"):
        sm.sparsemax_loss(z, bad)
    ok = q.copy()
    ok[0, 0] += 3e-6  # within 1e-6 * K
    sm.sparsemax_loss(z, ok)
    with pytest.raises(ValueError, match="shape"):
        sm.sparsemax_loss(z, q[:, :3])
    with pytest.raises(ValueError, match="ignore_index"):
        sm.sparsemax_loss(z, q, ignore_index=0)
    with pytest.raises(TypeError, match="labels_to_proportions"):
        sm.sparsemax_loss(z, q.astype(bool))


def test_labels_to_proportions():
    y = np.array([[1, 0, 1], [0, 1, 0]])
    np.testing.assert_allclose(sm.labels_to_proportions(y), [[0.5, 0, 0.5], [0, 1, 0]])
    np.testing.assert_allclose(sm.labels_to_proportions(y.T, axis=0), [[0.5, 0], [0, 1], [0.5, 0]])
    assert sm.labels_to_proportions(y.astype(bool)).dtype == np.float64
    assert sm.labels_to_proportions(y.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match=r"batch position \(1,\) has no label"):
        sm.labels_to_proportions([[1, 0], [0, 0]])
    with pytest.raises(ValueError, match="0 or 1"):
        sm.labels_to_proportions([[2, 0]])
    q = sm.labels_to_proportions(y)
    loss = sm.sparsemax_loss(np.array([[5.0, -5.0, 5.0], [0, 3, 0]]), q)
    np.testing.assert_allclose(loss, [0.0, 0.0], atol=1e-12)
