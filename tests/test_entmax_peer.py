"""The entmax family against the ``entmax`` package (PyTorch), where both are installed.

An optional peer: skipped when ``torch`` or ``entmax`` is missing (CI installs neither). The
peer's values are its own float64 computations: ``entmax15`` sorts, ``entmax_bisect`` bisects
for ``n_iter`` steps, so the bisection comparisons allow the peer's tolerance
(``2^-n_iter`` of its bracket). Both are also held to a longdouble reference (tests/naive.py),
which is how the closing figures "ours vs theirs" are stated.
"""

import numpy as np
import pytest

import naive
import sparsemax_nb as sm

torch = pytest.importorskip("torch")
entmax = pytest.importorskip("entmax")


def _scores(seed, shape=(24, 37), scale=2.0):
    z = np.random.default_rng(seed).standard_normal(shape) * scale
    z[3, :5] = z[3, 5]  # ties at the top
    z[4] = np.sort(z[4])  # a sorted row
    z[5, ::3] = -np.inf  # masked entries
    return z


def _grad_of(fn, z, v):
    zt = torch.tensor(z, requires_grad=True)
    out = fn(zt)
    (g,) = torch.autograd.grad(out, zt, torch.tensor(v))
    return out.detach().numpy(), g.numpy()


def test_entmax15_values_and_jvp_match_peer():
    z = _scores(0)
    z[5, ::3] = -1e30  # the peer has no -inf rule of its own: mask with a huge negative
    v = np.random.default_rng(1).standard_normal(z.shape)
    p_ref, g_ref = _grad_of(lambda t: entmax.entmax15(t, dim=-1), z, v)
    p = sm.entmax15(z)
    np.testing.assert_allclose(p, p_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sm.entmax15_jvp(p, v), g_ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("alpha", [1.1, 1.3, 1.5, 2.0, 3.0])
def test_entmax_bisect_values_and_jvp_match_peer(alpha):
    z = _scores(2)
    z[5, ::3] = -1e30
    v = np.random.default_rng(3).standard_normal(z.shape)
    p_ref, g_ref = _grad_of(
        lambda t: entmax.entmax_bisect(t, alpha=alpha, dim=-1, n_iter=100), z, v
    )
    p = sm.entmax_bisect(z, alpha)
    np.testing.assert_allclose(p, p_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(sm.entmax_bisect_jvp(p, v, alpha), g_ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("alpha", [1.25, 1.5])
def test_losses_and_gradients_match_peer(alpha):
    """Tsallis Fenchel-Young losses with integer labels: the peer's loss (which is the same
    ``Omega*(z) - z_y`` for one-hot targets) and its gradient ``p - e_y``."""
    from entmax.losses import entmax15_loss, entmax_bisect_loss

    z = _scores(4)[:, :20]
    z[5, ::3] = -1e30
    y = np.random.default_rng(5).integers(0, z.shape[1], z.shape[0])
    y[5] = 1  # a label on an unmasked entry
    zt = torch.tensor(z, requires_grad=True)
    yt = torch.tensor(y)
    if alpha == 1.5:
        ref = entmax15_loss(zt, yt)
        ours, grad = sm.entmax15_loss_and_grad(z, y)
    else:
        ref = entmax_bisect_loss(zt, yt, alpha, 100)
        ours, grad = sm.entmax_bisect_loss_and_grad(z, y, alpha)
    (g_ref,) = torch.autograd.grad(ref.sum(), zt)
    np.testing.assert_allclose(ours, ref.detach().numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(grad, g_ref.numpy(), rtol=0, atol=1e-9)


def test_ours_at_least_as_exact_as_peer():
    """Against the longdouble reference: ours to rounding, the peer to its bisection
    tolerance (the figures the closing note quotes come from the bench's peers case)."""
    z = _scores(6, (16, 200))
    z[5, ::3] = -1e30
    for alpha in (1.3, 1.5):
        ref = naive.entmax_bisect(z, alpha)
        ours = sm.entmax_bisect(z, alpha)
        theirs = entmax.entmax_bisect(torch.tensor(z), alpha=alpha, dim=-1).numpy()
        err_ours = np.abs(ours - ref).max()
        err_theirs = np.abs(theirs - ref).max()
        assert err_ours <= 4 * np.finfo(np.float64).eps
        assert err_ours <= err_theirs + 4 * np.finfo(np.float64).eps


@pytest.mark.parametrize("alpha", [1.2, 1.5, 2.5])
def test_alpha_gradient_matches_peer(alpha):
    """``entmax_bisect_alpha_vjp`` against the peer's autograd gradient for a per-row alpha."""
    z = _scores(7, (8, 15))
    z[5, ::3] = -1e30
    g = np.random.default_rng(8).standard_normal(z.shape)
    at = torch.full((z.shape[0], 1), alpha, dtype=torch.float64, requires_grad=True)
    p_ref = entmax.entmax_bisect(torch.tensor(z), alpha=at, dim=-1, n_iter=100)
    (ga_ref,) = torch.autograd.grad(p_ref, at, torch.tensor(g))
    ours = sm.entmax_bisect_alpha_vjp(sm.entmax_bisect(z, alpha), g, alpha)
    np.testing.assert_allclose(ours, ga_ref.numpy()[:, 0], rtol=0, atol=1e-8)
