"""The fast paths of alpha-entmax (``entmax_bisect``): the vectorisable exp and log of
``mappings/_fastmath.py`` against ``math``; long rows (the sampled start of the threshold
search, its put-back when the estimate lands above tau, the float32 stopping rule); the
outputs, Jacobian and loss taken on the support's list, against the slow longdouble
references of tests/naive.py. Speed itself is measured by the bench, not here."""

import math

import numpy as np
import pytest
from numba import njit

import naive
import sparsemax_nb as sm
from sparsemax_nb.mappings import _entmax as E
from sparsemax_nb.mappings import _fastmath as FM


def _rng(seed=0):
    return np.random.default_rng(seed)


def _check_rows(got, ref, atol):
    assert got.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got, ref, rtol=0, atol=atol)


# --------------------------------------------------------------------------- exp and log
@njit
def _fm_all(fn, x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = fn(x[i])
    return out


@njit
def _fm_exp(x):
    return FM.exp(x)


@njit
def _fm_log(x):
    return FM.log(x)


@njit
def _fm_log1p(x):
    return FM.log1p(x)


def _ulps(got, ref):
    """|got - ref| in ulps of ref (0 where equal, inf included)."""
    got = np.asarray(got)
    ref = np.asarray(ref)
    same = (got == ref) | (np.isnan(got) & np.isnan(ref))
    with np.errstate(invalid="ignore"):
        d = np.abs(got - ref) / np.spacing(np.abs(ref))
    return np.where(same, 0.0, d)


def _exp_args():
    r = _rng(1)
    return np.r_[r.uniform(-746, 710, 200_000), r.uniform(-1, 1, 100_000),
                 -r.exponential(1e-8, 20_000), r.uniform(-60, 0, 100_000),
                 # the ranges the powers produce: r log1p(w), r up to 1e9 (alpha -> 1)
                 3.3 * np.log1p(-r.uniform(0, 1, 50_000)), -(10.0 ** r.uniform(-300, 2.8, 50_000)),
                 [0.0, -0.0, 1e-300, -1e-300, 5e-324, 0.5 * math.log(2), -0.5 * math.log(2),
                  709.78, 709.782712893384, -708.39, -708.4, -744.4, -745.13, -745.14, -745.2,
                  -700.0, 700.0, -37.0, 37.0]]


def test_exp_against_math():
    x = _exp_args()
    got = _fm_all(_fm_exp, x)
    with np.errstate(over="ignore"):
        ref = np.exp(x)
    u = _ulps(got, ref)
    # subnormal results round twice at most (the spacing there is 2^-1074)
    assert u[ref >= 2.2250738585072014e-308].max() <= 1.0
    sub = ref < 2.2250738585072014e-308
    assert np.abs(got[sub] - ref[sub]).max() <= 2.0**-1074
    with np.errstate(over="ignore"):
        edge = _fm_all(_fm_exp, np.array([-np.inf, -746.0, -1e300, 0.0, 710.0, 1e300, np.inf]))
    assert list(edge) == [0.0, 0.0, 0.0, 1.0, np.inf, np.inf, np.inf]


def test_log_and_log1p_against_math():
    r = _rng(2)
    # log: (0, 1] (the jvp's p), subnormals, and the whole positive range
    x = np.r_[r.uniform(0, 1, 200_000), 10.0 ** r.uniform(-323.5, 308, 200_000),
              1 + r.uniform(-1e-8, 1e-8, 50_000), [5e-324, 1e-310, 2.2250738585072014e-308,
                                                    0.5, 1.0, 2.0, math.sqrt(0.5), math.sqrt(2),
                                                    1.7976931348623157e308]]
    assert _ulps(_fm_all(_fm_log, x), np.log(x)).max() <= 1.0
    assert _fm_all(_fm_log, np.array([0.0]))[0] == -np.inf
    # log1p: w in (-1, 0] (the powers' w), tiny w (alpha -> 1), around the reduction's
    # seams (1 + w near sqrt(1/2) / 2, sqrt(1/2), 1/2)
    w = np.r_[r.uniform(-1, 0, 200_000), -(10.0 ** r.uniform(-320, 0, 100_000)),
              -r.exponential(1e-6, 50_000), r.uniform(-0.7, -0.2, 100_000),
              np.nextafter(-1.0, 0.0), -1 + 2.0**-52, -0.5, np.nextafter(-0.5, 0), -1e-300,
              -5e-324, 0.0, math.sqrt(0.5) - 1, math.sqrt(0.5) / 2 - 1]
    assert _ulps(_fm_all(_fm_log1p, w), np.log1p(w)).max() <= 1.0
    # w > 0 is not used by the mappings; within 2 ulps there
    wp = np.r_[r.uniform(0, 1, 50_000), 10.0 ** r.uniform(-320, 300, 50_000)]
    assert _ulps(_fm_all(_fm_log1p, wp), np.log1p(wp)).max() <= 2.0
    assert _fm_all(_fm_log1p, np.array([-1.0]))[0] == -np.inf


# --------------------------------------------------------------------------- long rows
ALPHAS = [1.05, 1.3, 1.5, 1.7, 2.5]


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_long_rows_against_reference(alpha, dtype, atol):
    r = _rng(3)
    rows = [r.standard_normal(1000), r.standard_normal(4097) * 3, r.standard_normal(600) * 0.2,
            np.linspace(0, 5, 2000), r.standard_normal(2048) * 30]
    for z in rows:
        z = z.astype(dtype)[None]
        p = sm.entmax_bisect(z, alpha)
        _check_rows(p, naive.entmax_bisect(z, alpha), atol)
        tau, k = sm.entmax_bisect_threshold(z, alpha)
        rt, rk = naive.entmax_bisect_threshold(z, alpha)
        np.testing.assert_allclose(tau, rt, rtol=0, atol=atol * max(1.0, np.abs(z).max()))
        np.testing.assert_array_equal(k, rk)


@pytest.mark.parametrize("alpha", [1.1, 1.3, 1.6])
def test_float32_rows_round_the_float64_result(alpha):
    """float32 rows stop the search at 2^-40: the outputs are the float64 ones rounded."""
    z = _rng(4).standard_normal((64, 1024)).astype(np.float32)
    p32 = sm.entmax_bisect(z, alpha)
    p64 = sm.entmax_bisect(z.astype(np.float64), alpha)
    ulp = np.spacing(np.abs(p64).astype(np.float32))
    assert (np.abs(p32 - p64) <= ulp).all()
    np.testing.assert_array_equal(sm.entmax_bisect_threshold(z, alpha)[1],
                                  sm.entmax_bisect_threshold(z.astype(np.float64), alpha)[1])


def _v_of(z, alpha):
    """The reference threshold in the coordinates of _entmax (v = t + 1, L = -1)."""
    tau, _ = naive.entmax_bisect_threshold(z[None], alpha)
    return float(tau[0]) - (alpha - 1) * float(np.max(z)) + 1.0


def _sampled_v0(z, alpha):
    a1 = alpha - 1.0
    x = a1 * (z - z.max())
    x = x[x > -1.0]
    buf = np.empty(2 * len(z))
    buf[: len(x)] = x
    return E._sampled_start(buf, len(x), 1.0 / a1), len(x)


def test_sampled_start_on_both_sides_of_tau():
    """The start may land above tau (the saved candidates come back) or below it."""
    alpha = 1.3
    S = E.SAMPLE_STEP
    # above: the sample (every S-th candidate; here every entry is one) holds all the
    # large entries
    hi = _rng(5).standard_normal(2048) * 0.05
    hi[0:10 * S:S] = 3.0
    # below: the sample misses them all
    lo = hi.copy()
    lo[0:10 * S:S] = 0.0
    lo[3:10 * S + 3:S] = 3.0
    for z, above in [(hi, True), (lo, False)]:
        v0, n = _sampled_v0(z, alpha)
        assert n >= E.SAMPLE_FROM
        assert (v0 > _v_of(z, alpha)) == above
        for dtype, atol in [(np.float64, 1e-12), (np.float32, 1e-6)]:
            zz = z.astype(dtype)[None]
            _check_rows(sm.entmax_bisect(zz, alpha), naive.entmax_bisect(zz, alpha), atol)
            np.testing.assert_array_equal(sm.entmax_bisect_threshold(zz, alpha)[1],
                                          naive.entmax_bisect_threshold(zz, alpha)[1])


def test_long_adversarial_rows():
    r = _rng(6)
    K = 3000
    rows = {
        "masked": np.where(np.arange(K) % 3 == 0, -np.inf, r.standard_normal(K)),
        "ties": np.repeat(r.standard_normal(K // 10), 10),
        "two-levels": np.r_[np.ones(K // 2), np.zeros(K - K // 2)],
        "huge": r.standard_normal(K) * 1e300,
        "huge-offset": 1e308 + np.r_[0, r.standard_normal(K - 1)] * 1e292,
        "tiny": r.standard_normal(K) * 1e-300,
        "equal": np.zeros(K),
        "one-big": np.r_[100.0, np.zeros(K - 1)],
    }
    for name, z in rows.items():
        for alpha in (1.2, 1.3, 1.8, 3.0):
            _check_rows(sm.entmax_bisect(z[None], alpha), naive.entmax_bisect(z[None], alpha), 1e-12)
    bad = np.array([np.r_[np.nan, np.zeros(K - 1)], np.full(K, -np.inf)])
    assert np.isnan(sm.entmax_bisect(bad, 1.3)).all()


@pytest.mark.parametrize("eps", [1e-6, 1e-9])
def test_long_rows_near_softmax(eps):
    z = _rng(7).standard_normal((4, 2000)) * 4
    e = np.exp(z - z.max(-1, keepdims=True))
    soft = e / e.sum(-1, keepdims=True)
    with np.errstate(all="raise"):
        p = sm.entmax_bisect(z, 1 + eps)
        p32 = sm.entmax_bisect(z.astype(np.float32), 1 + eps)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(p, soft, rtol=0, atol=60 * eps)
    assert np.isfinite(p32).all()
    np.testing.assert_allclose(p32, sm.entmax_bisect(z.astype(np.float32).astype(np.float64), 1 + eps),
                               rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- jvp and loss
@pytest.mark.parametrize("alpha", [1.3, 1.7, 3.0])
@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_jvp_on_the_support_list(alpha, dtype, atol):
    z = (_rng(8).standard_normal((6, 700)) * 2).astype(dtype)
    p = sm.entmax_bisect(z, alpha)
    v = _rng(9).standard_normal(z.shape).astype(dtype)
    got = sm.entmax_bisect_jvp(p, v, alpha)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, naive.entmax_jvp(p, v, alpha), rtol=0, atol=atol)
    # off the support: exactly 0 (as 0 * (v - c), signed)
    assert (got[p == 0] == 0).all()
    # NaN rows, rows with no positive entry
    pp = p[:3].copy()
    pp[0, 5] = np.nan
    pp[1] = 0
    out = sm.entmax_bisect_jvp(pp, v[:3], alpha)
    assert np.isnan(out[:2]).all() and not np.isnan(out[2]).any()


def test_jvp_subnormal_weights():
    """p^(2 - alpha) of subnormal p (float64): the log scales them up first. (The relative
    error of exp(b log p) grows with |b log p|, ~500 here: any exp's does.)"""
    p = np.array([[0.5, 0.5 - 1e-300, 1e-300, 5e-324, 0.0]])
    v = np.array([[1.0, -2.0, 3.0, 0.5, 7.0]])
    for alpha in (1.3, 1.9):  # (alpha > 2 never gives a subnormal p)
        np.testing.assert_allclose(sm.entmax_bisect_jvp(p, v, alpha), naive.entmax_jvp(p, v, alpha),
                                   rtol=1e-12, atol=0)


@pytest.mark.parametrize("alpha", [1.3, 1.8, 3.0])
def test_loss_and_grad_on_the_support_list(alpha):
    z = _rng(10).standard_normal((5, 800)) * 2
    z[1, :400] = -np.inf
    y = _rng(11).integers(0, 800, 5)
    y[1] = 500
    y[2] = int(np.argmax(z[2]))  # the label on the support
    y[3] = int(np.argmin(z[3]))  # and off it
    L, G = sm.entmax_bisect_loss_and_grad(z, y, alpha)
    np.testing.assert_allclose(L, naive.entmax_loss(z, y, alpha), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(G, sm.entmax_bisect(z, alpha) - np.eye(800)[y], rtol=0, atol=1e-15)
    # the gradient written over z itself
    zz = z.copy()
    g2 = sm.entmax_bisect_loss_grad(zz, y, alpha, out=zz)
    assert g2 is zz
    np.testing.assert_array_equal(zz, G)
    # float32
    z32 = z.astype(np.float32)
    L32, G32 = sm.entmax_bisect_loss_and_grad(z32, y, alpha)
    np.testing.assert_allclose(L32, naive.entmax_loss(z32, y, alpha), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(G32, G, rtol=0, atol=1e-6)


@pytest.mark.parametrize("alpha", [1.3, 1.7, 3.0])
def test_listed_and_entrywise_paths_agree(alpha):
    """Rows with a support of at most 1/SPARSE of the row keep the entry-by-entry write
    and loss; the listed ones must give the same outputs and loss on any row (and the
    listed Jacobian, the only one for alpha outside 1.5 and 2, the API's)."""
    z = _rng(12).standard_normal((4, 1500)) * 3
    a1 = alpha - 1.0
    tau, k = sm.entmax_bisect_threshold(z, alpha)
    v = tau - a1 * z.max(-1) - E.offset(a1)
    p = sm.entmax_bisect(z, alpha)
    u = _rng(13).standard_normal(z.shape)
    for row in range(4):
        m = float(z[row].max())
        ws, ix, n = E.support_of(z[row], m, v[row], k[row], a1, E.offset(a1))
        assert n == k[row]
        E.powers(ws, n, 1 / a1, E.offset(a1))
        listed = np.zeros(z.shape[1])
        listed[ix[:n]] = ws[:n]
        np.testing.assert_allclose(listed, p[row], rtol=0, atol=1e-15)
        out = np.empty(z.shape[1])
        E._jvp_listed(p[row], u[row], out, 2.0 - alpha)
        np.testing.assert_allclose(out, sm.entmax_bisect_jvp(p[row], u[row], alpha), rtol=0, atol=1e-14)
        g = np.empty(z.shape[1])
        y = int(np.argmax(z[row]))
        L = E._loss_label_listed(z[row], y, m, v[row], k[row], a1, 1.0, g, True)
        L2, g2 = sm.entmax_bisect_loss_and_grad(z[row], y, alpha)
        assert L == pytest.approx(float(L2), rel=1e-13, abs=1e-15)
        np.testing.assert_allclose(g, g2, rtol=0, atol=1e-15)
