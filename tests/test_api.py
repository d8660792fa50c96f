"""Layouts, dtypes, ``out=`` and bad input: section 4 of docs/contract.md, row by row."""

import numpy as np
import pytest
from numpy.exceptions import AxisError

import naive
import sparsemax_nb as sm


def _arr(shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


# --------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("shape", [(7,), (4, 6), (3, 4, 5), (2, 3, 4, 5)])
def test_every_axis(shape):
    z = _arr(shape)
    for axis in range(-len(shape), len(shape)):
        p = sm.sparsemax(z, axis=axis)
        np.testing.assert_allclose(p, naive.sparsemax(z, axis=axis), atol=1e-12)
        assert p.flags.c_contiguous
        tau, k = sm.sparsemax_threshold(z, axis=axis)
        rt, rk = naive.threshold(z, axis=axis)
        np.testing.assert_allclose(tau, rt, atol=1e-12)
        np.testing.assert_array_equal(k, rk)
        v = _arr(shape, 1)
        np.testing.assert_allclose(sm.sparsemax_jvp(p, v, axis=axis), naive.jvp(p, v, axis=axis), atol=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda z: np.asfortranarray(z),
        lambda z: z[::-1, ::-2],
        lambda z: z[:, ::3],
        lambda z: z.astype(z.dtype.newbyteorder(">")),
        lambda z: z.T,
    ],
    ids=["fortran", "negative-strides", "step", "big-endian", "transposed"],
)
@pytest.mark.parametrize("axis", [0, 1])
def test_strides_and_byte_order(make, axis):
    z = make(_arr((30, 40)))
    p = sm.sparsemax(z, axis=axis)
    np.testing.assert_allclose(p, naive.sparsemax(np.array(z), axis=axis), atol=1e-12)
    assert p.dtype == np.float64 and p.dtype.isnative


def test_out_with_strides_and_byte_order():
    z = _arr((10, 12))
    for out in [np.empty((12, 10)).T, np.empty((10, 24))[:, ::2], np.empty((10, 12), ">f8")]:
        if out.dtype != np.float64:
            with pytest.raises(TypeError):
                sm.sparsemax(z, out=out)
            continue
        r = sm.sparsemax(z, out=out)
        assert r is out
        np.testing.assert_allclose(out, naive.sparsemax(z), atol=1e-12)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_in_place(axis):
    z = _arr((20, 30))
    ref = naive.sparsemax(z, axis=axis)
    r = sm.sparsemax(z, axis=axis, out=z)
    assert r is z
    np.testing.assert_allclose(z, ref, atol=1e-12)


def test_overlapping_out_is_safe():
    base = _arr((1, 41))[0]
    z = base[:-1].reshape(4, 10)
    ref = naive.sparsemax(z)
    out = base[1:].reshape(4, 10)  # shifted by one element: overlaps z
    sm.sparsemax(z, out=out)
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_jvp_and_grad_in_place():
    z = _arr((8, 9))
    p = sm.sparsemax(z)
    v = _arr((8, 9), 3)
    ref = naive.jvp(p, v)
    sm.sparsemax_jvp(p, v, out=v)
    np.testing.assert_allclose(v, ref, atol=1e-12)
    labels = np.arange(8) % 9
    g_ref = sm.sparsemax_loss_grad(z, labels)
    sm.sparsemax_loss_grad(z, labels, out=z)
    np.testing.assert_allclose(z, g_ref, atol=1e-15)


def test_empty_axis_and_empty_batch():
    z = np.empty((3, 0))
    assert sm.sparsemax(z).shape == (3, 0)
    tau, k = sm.sparsemax_threshold(z)
    assert tau.shape == (3,) and np.isnan(tau).all() and np.all(k == 0)
    assert sm.sparsemax_jvp(z, z).shape == (3, 0)
    z = np.empty((0, 5), np.float32)
    p = sm.sparsemax(z)
    assert p.shape == (0, 5) and p.dtype == np.float32
    assert sm.sparsemax_loss(z, np.empty(0, int)).shape == (0,)
    assert np.isnan(sm.sparsemax_loss(z, np.empty(0, int), reduction="mean"))


# --------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize(
    "dtype, result",
    [
        (np.float16, np.float32),
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.bool_, np.float64),
        (np.int8, np.float64),
        (np.int64, np.float64),
        (np.uint16, np.float64),
    ],
)
def test_dtype_rules(dtype, result):
    z = (np.arange(12).reshape(3, 4) % 3).astype(dtype)
    p = sm.sparsemax(z)
    assert p.dtype == result
    np.testing.assert_allclose(p, naive.sparsemax(z.astype(np.float64)), atol=1e-6)
    tau, k = sm.sparsemax_threshold(z)
    assert tau.dtype == result and k.dtype == np.int64
    assert sm.sparsemax_loss(z, np.zeros(3, int)).dtype == result
    assert sm.sparsemax_loss_grad(z, np.zeros(3, int)).dtype == result
    assert sm.sparsemax_jvp(p, z).dtype == np.promote_types(result, p.dtype)


def test_lists_and_scalars_rows():
    assert sm.sparsemax([[1, 2], [3, 3]]).tolist() == [[0.0, 1.0], [0.5, 0.5]]
    assert sm.sparsemax([5]).tolist() == [1.0]


@pytest.mark.parametrize(
    "z",
    [
        np.array([1 + 2j, 3]),
        np.array(["a", "b"]),
        np.array([object(), 1], dtype=object),
        np.array(["2020-01-01"], dtype="datetime64[D]"),
    ],
    ids=["complex", "str", "object", "datetime"],
)
def test_bad_dtypes_name_the_dtype(z):
    for fn in (sm.sparsemax, sm.sparsemax_threshold):
        with pytest.raises(TypeError, match=str(z.dtype).replace("[", r"\[")):
            fn(z)
    with pytest.raises(TypeError):
        sm.sparsemax_loss(z, 0)
    with pytest.raises(TypeError):
        sm.sparsemax_jvp(z, z)


def test_axis_errors():
    with pytest.raises(AxisError):
        sm.sparsemax(np.float64(3.0))
    with pytest.raises(AxisError):
        sm.sparsemax(np.zeros((2, 3)), axis=2)
    with pytest.raises(AxisError):
        sm.sparsemax_threshold(np.zeros((2, 3)), axis=-3)
    with pytest.raises(AxisError):
        sm.sparsemax_loss(np.zeros((2, 3)), [0, 0], axis=5)
    with pytest.raises(AxisError):
        sm.labels_to_proportions(1)


def test_bad_method_and_reduction():
    with pytest.raises(ValueError, match="method"):
        sm.sparsemax([1.0, 2.0], method="heap")
    with pytest.raises(ValueError, match="reduction"):
        sm.sparsemax_loss([1.0, 2.0], 0, reduction="avg")


def test_out_validated_before_any_work():
    z = _arr((4, 5))
    keep = z.copy()
    bad = [
        (np.empty((5, 4)), ValueError),
        (np.empty((4, 5), np.float32), TypeError),
        ([[0.0] * 5] * 4, TypeError),
    ]
    ro = np.zeros((4, 5))
    ro.flags.writeable = False
    bad.append((ro, ValueError))
    for out, exc in bad:
        before = np.array(out, copy=True)
        with pytest.raises(exc):
            sm.sparsemax(z, out=out)
        np.testing.assert_array_equal(np.asarray(out), before)
    np.testing.assert_array_equal(z, keep)
    with pytest.raises(ValueError):
        sm.sparsemax_loss_grad(z, [0, 1, 2, 3], out=np.empty((4, 4)))
    with pytest.raises(ValueError):
        sm.sparsemax_jvp(z, z, out=np.empty(3))


def test_failed_call_modifies_nothing():
    z = _arr((4, 5))
    out = np.full((4, 5), 7.0)
    keep = z.copy()
    with pytest.raises(ValueError):
        sm.sparsemax_loss_grad(z, [0, 1, 9, 3], out=out)  # bad class index
    with pytest.raises(ValueError):
        sm.sparsemax_loss_grad(z, np.full((4, 5), 0.3), out=out)  # rows do not sum to 1
    np.testing.assert_array_equal(out, 7.0)
    np.testing.assert_array_equal(z, keep)


def test_jvp_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        sm.sparsemax_jvp(np.ones((2, 3)), np.ones((3, 2)))


def test_threshold_reconstructs_sparsemax():
    z = _arr((50, 31), 2, 2.0)
    tau, k = sm.sparsemax_threshold(z)
    p = sm.sparsemax(z)
    np.testing.assert_allclose(p, np.maximum(z - tau[:, None], 0), atol=1e-12)
    np.testing.assert_array_equal(k, np.sum(p > 0, axis=1))
