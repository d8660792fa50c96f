"""The GPU backend against the CPU path and tests/naive.py.

Runs under Numba's CUDA simulator by default (tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1):
every simulated thread is a Python thread, so sizes and blocks are tiny. Most tests set the
block size to 8 threads (ITEMS = 8 entries per thread in registers), so K > 64 exercises the
re-reading path of rows longer than a block's registers, and K <= 4 puts several rows in a
block. The ``test_default_block_*`` tests run every launch path at the default block size
(256 threads) too, with shapes that give groups of 8 threads (32 rows per block), of two
warps (4 rows per block), of the whole block with the row in registers, of the whole block
re-reading the row, and long rows of three chunks. ``NUMBA_ENABLE_CUDASIM=0 pytest
tests/test_gpu.py`` runs the same tests on a real GPU.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.exceptions import AxisError

cuda = pytest.importorskip("numba.cuda")

import naive  # noqa: E402
import sparsemax_nb as sm  # noqa: E402
from sparsemax_nb.backends import cuda as _gpu  # noqa: E402
from sparsemax_nb.backends import cuda_kernels as _cuda  # noqa: E402

if not cuda.is_available():  # pragma: no cover - NUMBA_ENABLE_CUDASIM=0 without a GPU
    pytest.skip("no CUDA device and the simulator is off", allow_module_level=True)

VECTORS = Path(__file__).resolve().parent / "data" / "vectors.json"

RNG = np.random.default_rng(1234)
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


DEFAULT_TPB = _gpu._TPB[0]


@pytest.fixture(autouse=True)
def small_blocks():
    old = _gpu.set_block_size(8)
    yield
    _gpu.set_block_size(old)


@pytest.fixture(params=[8, DEFAULT_TPB], ids=lambda t: f"tpb{t}")
def tpb(request):
    """Both block sizes: 8 threads, and the default the library ships with."""
    _gpu.set_block_size(request.param)
    return request.param


def dev(a):
    return cuda.to_device(np.ascontiguousarray(a))


def host(a):
    return a.copy_to_host()


def tol(dt):
    return 1e-6 if np.dtype(dt) == np.float32 else 1e-12


# --------------------------------------------------------------------------- forward
def test_vectors():
    if not VECTORS.exists():
        pytest.skip("vectors.json not found")
    v = json.loads(VECTORS.read_text())
    for case in v["sparsemax"]:
        z = np.array(case["z"], np.float64)
        p = host(sm.sparsemax(dev(z)))
        np.testing.assert_allclose(p, case["p"], atol=1e-12)
        tau, k = sm.sparsemax_threshold(dev(z))
        assert abs(float(host(tau)) - case["tau"]) < 1e-12
        assert int(host(k)) == case["support_size"]
    for case in v["non_finite"]:
        z = np.array([float(x) for x in case["z"]])
        p = host(sm.sparsemax(dev(z)))
        np.testing.assert_array_equal(p, np.array([float(x) for x in case["p"]]))
    for case in v["loss"]:
        z = np.array(case["z"], np.float64)[None]
        if "label" in case:
            t = np.array([case["label"]], np.int64)
        else:
            t = np.array(case["q"], np.float64)[None]
        loss, grad = sm.sparsemax_loss_and_grad(dev(z), dev(t))
        assert abs(float(host(loss)[0]) - case["loss"]) < 1e-12
        if "grad" in case:
            np.testing.assert_allclose(host(grad)[0], case["grad"], atol=1e-12)


@pytest.mark.parametrize("K", [1, 2, 3, 5, 64, 65, 150])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_and_threshold_vs_cpu_and_naive(K, dtype):
    z = (RNG.normal(size=(3, K)) * 2).astype(dtype)
    p = sm.sparsemax(dev(z))
    assert isinstance(p, type(dev(z)))
    assert p.dtype == dtype and p.shape == z.shape
    ph = host(p)
    np.testing.assert_allclose(ph, naive.sparsemax(z), atol=tol(dtype), rtol=0)
    np.testing.assert_allclose(ph, sm.sparsemax(z), atol=tol(dtype), rtol=0)
    tau, k = sm.sparsemax_threshold(dev(z))
    tn, kn = naive.threshold(z)
    np.testing.assert_allclose(host(tau), tn, atol=tol(dtype), rtol=0)
    np.testing.assert_array_equal(host(k), kn)
    assert host(tau).dtype == dtype and host(k).dtype == np.int64


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_every_axis(axis):
    z = RNG.normal(size=(2, 3, 4))
    p = host(sm.sparsemax(dev(z), axis=axis))
    np.testing.assert_allclose(p, naive.sparsemax(z, axis=axis), atol=1e-12, rtol=0)
    tau, k = sm.sparsemax_threshold(dev(z), axis=axis)
    tn, kn = naive.threshold(z, axis=axis)
    np.testing.assert_allclose(host(tau), tn, atol=1e-12, rtol=0)
    np.testing.assert_array_equal(host(k), kn)
    v = RNG.normal(size=z.shape)
    pn = sm.sparsemax(z, axis=axis)
    np.testing.assert_allclose(
        host(sm.sparsemax_jvp(dev(pn), dev(v), axis=axis)),
        naive.jvp(pn, v, axis=axis),
        atol=1e-12,
        rtol=0,
    )


@pytest.mark.parametrize(
    "dtype, result",
    [(np.float16, np.float32), (np.int32, np.float64), (np.int64, np.float64),
     (np.bool_, np.float64), (np.uint8, np.float64)],
)
def test_dtype_rules(dtype, result):
    z = (RNG.normal(size=(2, 5)) * 3).astype(dtype)
    p = host(sm.sparsemax(dev(z)))
    assert p.dtype == result
    np.testing.assert_allclose(p, sm.sparsemax(z), atol=tol(result), rtol=0)


def test_bad_dtype_and_axis_and_method():
    with pytest.raises(TypeError, match="complex"):
        sm.sparsemax(dev(np.zeros((2, 3), np.complex128)))
    with pytest.raises(AxisError):
        sm.sparsemax(dev(np.zeros((2, 3))), axis=2)
    with pytest.raises(AxisError):
        sm.sparsemax_threshold(dev(np.zeros((2, 3))), axis=-3)
    with pytest.raises(ValueError, match="method"):
        sm.sparsemax(dev(np.zeros((2, 3))), method="heap")


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # the simulator's NumPy scalars
def test_non_finite_rows_and_huge_values():
    inf, nan = math.inf, math.nan
    z = np.array(
        [
            [0.0, 0.0, -inf, 1.0],
            [-inf, -inf, -inf, -inf],
            [1.0, nan, 0.0, 2.0],
            [1.0, inf, 0.0, 2.0],
            [1e308, -1e308, 1e308 - 1e292, 5.0],
            [-inf, 3.0, -inf, -inf],
        ]
    )
    p = host(sm.sparsemax(dev(z)))
    np.testing.assert_array_equal(p, sm.sparsemax(z))
    assert p[0, 2] == 0.0 and np.isnan(p[1:4]).all()
    tau, k = sm.sparsemax_threshold(dev(z))
    tc, kc = sm.sparsemax_threshold(z)
    np.testing.assert_array_equal(host(tau), tc)
    np.testing.assert_array_equal(host(k), kc)
    z32 = np.array([[3e38, -3e38, 1e38, 3e38], [1e38, 1e38, 0.0, -1e38]], np.float32)
    np.testing.assert_array_equal(host(sm.sparsemax(dev(z32))), sm.sparsemax(z32))
    # The loss of a NaN row is NaN, of a masked entry never NaN.
    loss = host(sm.sparsemax_loss(dev(z), dev(np.array([3, 0, 0, 0, 0, 1]))))
    np.testing.assert_array_equal(np.isnan(loss), [False, True, True, True, False, False])
    np.testing.assert_allclose(loss, sm.sparsemax_loss(z, np.array([3, 0, 0, 0, 0, 1])))


def test_adversarial_michelot_row_takes_the_bisection_guard():
    # d_i = -2^-i: Michelot's fixed point drops one entry per pass; the bisection steps
    # still end it (checked against the float64 reference).
    K = 70
    z = np.concatenate([-(2.0 ** -np.arange(1, K)), [0.0]])[None]
    z = np.vstack([z, z[:, ::-1] * 0.5])
    np.testing.assert_allclose(host(sm.sparsemax(dev(z))), naive.sparsemax(z), atol=1e-12)
    _, k = sm.sparsemax_threshold(dev(z))
    np.testing.assert_array_equal(host(k), naive.threshold(z)[1])


def test_ties_constant_rows_and_k1():
    z = np.array([[5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 1.0, 1.0], [2.0, 1.0, 0.1, -7.0]])
    np.testing.assert_allclose(host(sm.sparsemax(dev(z))), naive.sparsemax(z), atol=1e-12)
    z1 = RNG.normal(size=(4, 1))
    np.testing.assert_array_equal(host(sm.sparsemax(dev(z1))), np.ones((4, 1)))
    tau, k = sm.sparsemax_threshold(dev(z1))
    np.testing.assert_allclose(host(tau), z1[:, 0] - 1.0)
    np.testing.assert_array_equal(host(k), 1)


def test_empty_shapes():
    p = sm.sparsemax(dev(np.zeros((3, 0))))
    assert p.shape == (3, 0)
    tau, k = sm.sparsemax_threshold(dev(np.zeros((3, 0))))
    assert np.isnan(host(tau)).all() and (host(k) == 0).all()
    assert sm.sparsemax(dev(np.zeros((0, 4)))).shape == (0, 4)


# --------------------------------------------------------------------------- out= and kinds
def test_out_and_in_place():
    z = RNG.normal(size=(3, 6))
    out = cuda.device_array((3, 6), np.float64)
    r = sm.sparsemax(dev(z), out=out)
    assert r is out
    np.testing.assert_allclose(host(out), sm.sparsemax(z), atol=1e-12)
    zd = dev(z)
    sm.sparsemax(zd, out=zd)
    np.testing.assert_allclose(host(zd), sm.sparsemax(z), atol=1e-12)
    # jvp and the loss gradient in place.
    p = sm.sparsemax(z)
    v = RNG.normal(size=z.shape)
    vd = dev(v)
    sm.sparsemax_jvp(dev(p), vd, out=vd)
    np.testing.assert_allclose(host(vd), sm.sparsemax_jvp(p, v), atol=1e-12)
    zd = dev(z)
    y = np.array([0, 5, 2])
    sm.sparsemax_loss_grad(zd, dev(y), out=zd)
    np.testing.assert_allclose(host(zd), sm.sparsemax_loss_grad(z, y), atol=1e-12)


def test_out_validated_before_any_work():
    z = dev(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        sm.sparsemax(z, out=cuda.device_array((3, 2)))
    with pytest.raises(TypeError, match="dtype"):
        sm.sparsemax(z, out=cuda.device_array((2, 3), np.float32))
    with pytest.raises(TypeError, match="GPU array"):
        sm.sparsemax(z, out=np.empty((2, 3)))
    big = cuda.to_device(np.full((2, 6), 7.0))
    with pytest.raises(ValueError, match="C-contiguous"):
        sm.sparsemax(z, out=big[:, ::2])
    np.testing.assert_array_equal(host(big), 7.0)


def test_mixing_host_and_device_is_a_type_error():
    z = np.zeros((2, 3))
    with pytest.raises(TypeError, match="host"):
        sm.sparsemax_loss(dev(z), np.array([0, 1]))
    with pytest.raises(TypeError, match="host"):
        sm.sparsemax_loss(z, dev(np.array([0, 1])))
    with pytest.raises(TypeError, match="host"):
        sm.sparsemax_jvp(dev(z), z)
    with pytest.raises(TypeError, match="host"):
        sm.sparsemax(z, out=cuda.device_array((2, 3)))


def test_strided_device_input_is_copied():
    z = RNG.normal(size=(4, 10))
    zd = dev(z)[:, ::2]
    np.testing.assert_allclose(host(sm.sparsemax(zd)), sm.sparsemax(z[:, ::2]), atol=1e-12)


def test_stream_argument():
    z = RNG.normal(size=(2, 5))
    s = cuda.stream()
    p = sm.sparsemax(dev(z), stream=s)
    s.synchronize()
    np.testing.assert_allclose(host(p), sm.sparsemax(z), atol=1e-12)
    loss = sm.sparsemax_loss(dev(z), dev(np.array([0, 1])), reduction="sum", stream=s)
    s.synchronize()
    np.testing.assert_allclose(host(loss), sm.sparsemax_loss(z, [0, 1], reduction="sum"))
    # A stream with host arrays is a TypeError; the CPU path is otherwise unchanged.
    with pytest.raises(TypeError, match="stream"):
        sm.sparsemax(z, stream=s)
    with pytest.raises(TypeError, match="stream"):
        sm.labels_to_proportions([[1, 0]], stream=s)


@pytest.mark.parametrize("ldtype", [np.uint8, np.int32, np.uint64])
def test_label_dtypes(ldtype):
    z = RNG.normal(size=(3, 5))
    y = np.array([4, 0, 2], ldtype)
    np.testing.assert_allclose(
        host(sm.sparsemax_loss(dev(z), dev(y))), sm.sparsemax_loss(z, y), atol=1e-12
    )


# --------------------------------------------------------------------------- jvp
def test_jvp_nan_and_empty_support_rows():
    p = np.array([[0.0, 0.5, 0.5], [0.0, 0.0, 0.0], [np.nan, 0.5, 0.5], [1.0, 0.0, 0.0]])
    v = RNG.normal(size=p.shape)
    r = host(sm.sparsemax_jvp(dev(p), dev(v)))
    np.testing.assert_array_equal(np.isnan(r), np.isnan(sm.sparsemax_jvp(p, v)))
    np.testing.assert_allclose(r, sm.sparsemax_jvp(p, v), atol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        sm.sparsemax_jvp(dev(p), dev(v[:, :2]))
    r32 = sm.sparsemax_jvp(dev(p.astype(np.float32)), dev(v.astype(np.float32)))
    assert r32.dtype == np.float32


# --------------------------------------------------------------------------- loss
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_labels_vs_cpu(reduction, dtype):
    z = RNG.normal(size=(5, 7)).astype(dtype)
    y = np.array([0, 6, 3, -100, 2])
    kw = dict(reduction=reduction, ignore_index=-100)
    loss, grad = sm.sparsemax_loss_and_grad(dev(z), dev(y), **kw)
    lc, gc = sm.sparsemax_loss_and_grad(z, y, **kw)
    assert host(loss).dtype == dtype and host(loss).shape == np.shape(lc)
    np.testing.assert_allclose(host(loss), lc, atol=tol(dtype) * 10, rtol=tol(dtype))
    np.testing.assert_allclose(host(grad), gc, atol=tol(dtype), rtol=0)
    np.testing.assert_allclose(host(sm.sparsemax_loss(dev(z), dev(y), **kw)), lc, rtol=tol(dtype))
    np.testing.assert_allclose(
        host(sm.sparsemax_loss_grad(dev(z), dev(y), **kw)), gc, atol=tol(dtype)
    )
    if reduction == "none":
        keep = y != -100
        np.testing.assert_allclose(
            host(loss)[keep], naive.loss(z[keep], y[keep]), atol=10 * tol(dtype), rtol=0
        )


def test_loss_every_ignored_row_mean_is_nan():
    z = dev(RNG.normal(size=(2, 3)))
    y = dev(np.array([-1, -1]))
    loss, grad = sm.sparsemax_loss_and_grad(z, y, reduction="mean", ignore_index=-1)
    assert np.isnan(host(loss))
    np.testing.assert_array_equal(host(grad), 0.0)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_loss_dist_every_axis(axis):
    z = RNG.normal(size=(3, 4, 5))
    q = RNG.random(size=z.shape)
    q[q < 0.4] = 0.0
    np.moveaxis(q, axis, -1)[..., 0] += 0.5  # no empty row
    q /= q.sum(axis=axis, keepdims=True)
    loss, grad = sm.sparsemax_loss_and_grad(dev(z), dev(q), axis=axis)
    lc, gc = sm.sparsemax_loss_and_grad(z, q, axis=axis)
    np.testing.assert_allclose(host(loss), lc, atol=1e-12, rtol=1e-12)
    np.testing.assert_allclose(host(grad), gc, atol=1e-12)
    np.testing.assert_allclose(host(loss), naive.loss(z, q, axis=axis), atol=1e-12)
    y = RNG.integers(0, z.shape[axis], size=np.delete(z.shape, axis % 3))
    np.testing.assert_allclose(
        host(sm.sparsemax_loss(dev(z), dev(y), axis=axis)), sm.sparsemax_loss(z, y, axis=axis),
        atol=1e-12,
    )


def test_loss_long_rows_masked_entries():
    K = 90  # longer than the 8 x 8 entries a block keeps in registers
    z = RNG.normal(size=(2, K))
    z[:, ::7] = -np.inf
    y = np.array([1, 3])
    lc, gc = sm.sparsemax_loss_and_grad(z, y, reduction="sum")
    loss, grad = sm.sparsemax_loss_and_grad(dev(z), dev(y), reduction="sum")
    np.testing.assert_allclose(float(host(loss)), lc, rtol=1e-12)
    np.testing.assert_allclose(host(grad), gc, atol=1e-12)
    q = np.zeros_like(z)
    q[:, 1] = 0.5
    q[:, 7] = 0.5  # mass on a masked entry: infinite loss, never NaN
    loss = host(sm.sparsemax_loss(dev(z), dev(q)))
    assert np.isinf(loss).all()


def test_loss_bad_targets():
    z = dev(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"class index 4 at batch position \(1,\)"):
        sm.sparsemax_loss(z, dev(np.array([0, 4, -2])))
    with pytest.raises(ValueError, match=r"class index -1 at batch position \(2,\)"):
        sm.sparsemax_loss(z, dev(np.array([0, -100, -1])), ignore_index=-100)
    with pytest.raises(ValueError, match="batch shape"):
        sm.sparsemax_loss(z, dev(np.array([0, 1])))
    q = np.full((3, 4), 0.25)
    q[2, 0] = -0.25
    q[2, 1] = 0.75
    with pytest.raises(ValueError, match=r"position \(2,\) has a negative"):
        sm.sparsemax_loss(z, dev(q))
    q = np.full((3, 4), 0.25)
    q[1, 0] = 0.5
    with pytest.raises(ValueError, match=r"position \(1,\) sums to"):
        sm.sparsemax_loss(z, dev(q))
    with pytest.raises(ValueError, match="ignore_index"):
        sm.sparsemax_loss(z, dev(np.full((3, 4), 0.25)), ignore_index=0)
    with pytest.raises(TypeError, match="bool"):
        sm.sparsemax_loss(z, dev(np.ones((3, 4), bool)))
    with pytest.raises(ValueError, match="reduction"):
        sm.sparsemax_loss(z, dev(np.array([0, 1, 2])), reduction="max")


# --------------------------------------------------------------------------- labels
def test_labels_to_proportions():
    y = np.array([[1, 0, 1, 0], [0, 0, 0, 1]], np.int8)
    q = sm.labels_to_proportions(dev(y))
    np.testing.assert_allclose(host(q), sm.labels_to_proportions(y))
    np.testing.assert_allclose(
        host(sm.labels_to_proportions(dev(y.T), axis=0)), sm.labels_to_proportions(y.T, axis=0)
    )
    assert host(sm.labels_to_proportions(dev(y.astype(np.float32)))).dtype == np.float32
    with pytest.raises(ValueError, match="no label"):
        sm.labels_to_proportions(dev(np.array([[1, 0], [0, 0]])))
    with pytest.raises(ValueError, match=r"0 or 1; y\(1, 0\) = .*2"):
        sm.labels_to_proportions(dev(np.array([[1, 0], [2, 0]])))


# --------------------------------------------------------------------------- block sizes
@pytest.mark.parametrize("tpb", [1, 4, 32])
def test_block_sizes(tpb):
    _gpu.set_block_size(tpb)
    z = RNG.normal(size=(3, 40))
    np.testing.assert_allclose(host(sm.sparsemax(dev(z))), naive.sparsemax(z), atol=1e-12)
    y = np.array([0, 39, 7])
    np.testing.assert_allclose(
        host(sm.sparsemax_loss(dev(z), dev(y))), sm.sparsemax_loss(z, y), atol=1e-12
    )


def test_bad_block_size():
    with pytest.raises(ValueError, match="power of two"):
        _gpu.set_block_size(6)


# --------------------------------------------------------------------------- no device
def test_without_a_device_import_works_and_gpu_calls_raise():
    code = """
import numpy as np
import sparsemax_nb as sm
assert abs(sm.sparsemax([0.0, 1.0]).sum() - 1) < 1e-12

class Fake:
    shape = (2, 3)
    dtype = np.dtype(np.float64)
    __cuda_array_interface__ = {"shape": (2, 3), "typestr": "<f8", "data": (0, False), "version": 3}

try:
    sm.sparsemax(Fake())
except Exception as e:
    print(type(e).__name__, e)
from sparsemax_nb.cli.bench.gpu import bench_cuda
try:
    bench_cuda(quick=True)
except Exception as e:
    print(type(e).__name__, e)
"""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0", CUDA_VISIBLE_DEVICES="")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2, r.stdout
    for line in lines:
        assert line.startswith("NoCudaDeviceError") and "no CUDA device was found" in line


# --------------------------------------------------------------------------- long rows
@pytest.fixture
def long_rows():
    old = _gpu.set_long_rows(min_k=32, max_rows=32)
    yield
    _gpu.set_long_rows(**old)


@pytest.mark.parametrize("kind", ["normal", "uniform", "adversarial", "constant"])
def test_long_rows_several_blocks_per_row(long_rows, kind):
    # Chunks of 8 threads x 8 entries: K = 200 gives 4 blocks per row. "uniform" and
    # "constant" rows have every entry within 1 of the max, so the candidates do not fit
    # the buffer (64 slots) and the row's last block searches the whole row instead.
    K = 200
    if kind == "normal":
        z = RNG.normal(size=(3, K)) * 3
    elif kind == "uniform":
        z = RNG.random(size=(3, K))
    elif kind == "constant":
        z = np.full((3, K), 0.25)
    else:
        z = np.tile(-(2.0 ** -np.arange(K)) + 1, (3, 1))
    z[1, 17] = -np.inf
    z[2, 150] = np.nan
    p = host(sm.sparsemax(dev(z)))
    np.testing.assert_allclose(p, naive.sparsemax(z), atol=1e-12, rtol=0)
    assert np.isnan(p[2]).all() and p[1, 17] == 0.0
    tau, k = sm.sparsemax_threshold(dev(z))
    tn, kn = naive.threshold(z)
    np.testing.assert_allclose(host(tau), tn, atol=1e-12, rtol=0)
    np.testing.assert_array_equal(host(k), kn)


def test_long_rows_float32_huge_and_other_axis(long_rows):
    z = (RNG.normal(size=(2, 100)) * 1e37).astype(np.float32)
    z[0, 3] = 3e38
    np.testing.assert_allclose(host(sm.sparsemax(dev(z))), naive.sparsemax(z), atol=1e-6)
    z = RNG.normal(size=(70, 2))
    np.testing.assert_allclose(
        host(sm.sparsemax(dev(z), axis=0)), naive.sparsemax(z, axis=0), atol=1e-12
    )
    tau, k = sm.sparsemax_threshold(dev(z), axis=0)
    np.testing.assert_array_equal(host(k), naive.threshold(z, axis=0)[1])


# --------------------------------------------------------------------------- real-GPU build
PTX_CHECK = r'''
import os, sys, types as _t
os.environ["NUMBA_ENABLE_CUDASIM"] = "0"
from numba import cuda, types
# Device functions ask the (absent) current device for its compute capability.
sys.modules["numba.cuda.dispatcher"].get_current_device = (
    lambda: _t.SimpleNamespace(compute_capability=(8, 0))
)
import sparsemax_nb.backends.cuda_kernels as C

A = lambda t, n: types.Array(t, n, "C")
f32, f64, f16, b1, i32, i64 = (types.float32, types.float64, types.float16, types.boolean,
                               types.int32, types.int64)
sigs = {
    "k_forward": [(A(f32, 3), A(f32, 3), i64, i64, i64), (A(f64, 3), A(f64, 3), i64, i64, i64),
                  (A(f16, 3), A(f32, 3), i64, i64, i64), (A(b1, 3), A(f64, 3), i64, i64, i64)],
    "k_threshold": [(A(f32, 3), A(f32, 1), A(i64, 1), i64, i64, i64)],
    "k_forward_reg": [(A(f32, 1), A(f32, 1), i64, i64, i64, i64),
                      (A(f16, 1), A(f32, 1), i64, i64, i64, i64)],
    "k_threshold_reg": [(A(f32, 1), A(f32, 1), A(i64, 1), i64, i64, i64, i64)],
    "k_jvp": [(A(f32, 3), A(f64, 3), A(f64, 3), i64, i64, i64)],
    "k_loss_labels": [(A(f32, 3), A(i32, 1), i64, f64, A(f32, 1), A(f32, 3), b1, i64, i64, i64)],
    "k_loss_dist": [(A(f64, 3), A(f64, 3), f64, A(f64, 1), A(f64, 3), b1, i64, i64, i64)],
    "k_sum": [(A(f32, 1), f64, A(f32, 1))],
    "k_check_labels": [(A(i64, 1), i64, i64, A(i64, 1), A(i64, 1))],
    "k_check_dist": [(A(f32, 3), i64, i64, A(i64, 1), A(f64, 1))],
    "k_check_01": [(A(b1, 3), i64, i64, A(i64, 1), A(i64, 1))],
    "k_proportions": [(A(types.int8, 3), A(f64, 3), i64, i64)],
    "k_lr_gather": [(A(f32, 3), i64, i64, A(types.uint64, 2), A(i32, 2), A(f64, 2), A(f64, 2)),
                    (A(f64, 3), i64, i64, A(types.uint64, 2), A(i32, 2), A(f64, 2), A(f64, 2))],
    "k_lr_write": [(A(f32, 3), A(f32, 3), i64, i64, A(f64, 2))],
    "k_lr_tau": [(A(f64, 2), A(f32, 1), A(i64, 1))],
}
for name, ss in sigs.items():
    for sig in ss:
        ptx, _ = cuda.compile_ptx(getattr(C, name).py_func, sig, cc=(8, 0))
        # The per-thread row cache must stay in registers (no local-memory arrays).
        assert ".local" not in ptx, name
        if name in ("k_forward", "k_forward_reg", "k_threshold"):
            # The step's product is rounded on its own (not fused into s - c t).
            assert "mul.rn.f64" in ptx, name
        if name.endswith("_reg"):
            assert "shfl.sync" in ptx, name
print("ok")
'''


@pytest.mark.slow
def test_kernels_compile_for_a_real_gpu():
    """Type inference, lowering and NVVM for sm_80, without a GPU (needs NVVM and NVRTC,
    e.g. ``pip install nvidia-nvvm nvidia-cuda-nvrtc``; skipped otherwise)."""
    pathfinder = pytest.importorskip("cuda.pathfinder")
    for lib in ("nvvm", "nvrtc"):
        try:
            pathfinder.load_nvidia_dynamic_lib(lib)
        except Exception:
            pytest.skip(f"lib{lib} not found: cannot build PTX here")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run(
        [sys.executable, "-c", PTX_CHECK], env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


def test_bench_code_path_runs_tiny():
    from sparsemax_nb.cli.bench import gpu as _bench_gpu

    res = _bench_gpu._measure(cuda, "simulator", rows=3, K=16, long_k=40, repeats=1)
    names = [r["name"] for r in res]
    assert names[:4] == [
        "sparsemax", "sparsemax_threshold", "sparsemax_jvp", "sparsemax_loss_and_grad"
    ]
    assert all({"median_ms", "gbps", "copy_gbps", "ratio_to_copy"} <= set(r) for r in res)
    if not SIMULATOR:
        return
    with pytest.raises(_gpu.NoCudaDeviceError, match="simulator"):
        _bench_gpu.bench_cuda(quick=True)


# --------------------------------------------------------------------------- default blocks
# (rows, K) for each launch configuration at 256 threads (ITEMS = 8): groups of 8 threads
# (32 rows per block), groups of 64 threads (two warps, 4 rows per block, the block-wide
# vote), one row per block in registers (8 reduction levels), one row per block re-read
# from memory (K > 2048). At 8 threads the same shapes take the re-reading path.
SHAPES_256 = {"rows_per_block": (40, 37), "two_warps": (6, 300), "block_row": (2, 1100),
              "reread": (1, 2100), "reg_warp_per_row": (9, 1000), "reg_four_warps": (3, 4000)}
# float32 rows of 65 to 8192 entries take the register-resident kernels (32 entries per
# thread): a warp per row (8 rows per block, the last block partly empty), and four warps
# per row (two rows per block, block-wide votes). At 8 threads they take the others.
FLOAT32_CASES = ("rows_per_block", "reg_warp_per_row", "reg_four_warps")


@pytest.mark.parametrize("case", list(SHAPES_256))
def test_default_block_forward_threshold_jvp(tpb, case):
    n, K = SHAPES_256[case]
    n = n if tpb > 8 else min(n, 5)  # 8-thread blocks: one row per block, keep it short
    dtype = np.float32 if case in FLOAT32_CASES else np.float64
    z = (RNG.normal(size=(n, K)) * 2).astype(dtype)
    z[0, 3] = z[0, 5]  # a tie
    p = host(sm.sparsemax(dev(z)))
    np.testing.assert_allclose(p, naive.sparsemax(z), atol=tol(dtype), rtol=0)
    tau, k = sm.sparsemax_threshold(dev(z))
    tn, kn = naive.threshold(z)
    np.testing.assert_allclose(host(tau), tn, atol=tol(dtype), rtol=0)
    np.testing.assert_array_equal(host(k), kn)
    if case in ("two_warps", "reread"):
        v = RNG.normal(size=z.shape).astype(dtype)
        np.testing.assert_allclose(
            host(sm.sparsemax_jvp(dev(p), dev(v))), naive.jvp(p, v), atol=10 * tol(dtype)
        )


@pytest.mark.parametrize("case", ["two_warps", "block_row"])
def test_default_block_losses(tpb, case):
    n, K = SHAPES_256[case]
    z = RNG.normal(size=(n, K))
    y = RNG.integers(0, K, n)
    y[-1] = -100
    kw = dict(reduction="mean", ignore_index=-100)
    loss, grad = sm.sparsemax_loss_and_grad(dev(z), dev(y), **kw)
    lc, gc = sm.sparsemax_loss_and_grad(z, y, **kw)
    np.testing.assert_allclose(host(loss), lc, rtol=1e-12)
    np.testing.assert_allclose(host(grad), gc, atol=1e-12)
    keep = y != -100
    np.testing.assert_allclose(
        host(sm.sparsemax_loss(dev(z), dev(y), ignore_index=-100))[keep],
        naive.loss(z[keep], y[keep]), atol=1e-10,
    )
    q = RNG.random(size=z.shape)
    q[q < 0.8] = 0.0
    q[:, 0] += 0.1
    q /= q.sum(axis=1, keepdims=True)
    loss, grad = sm.sparsemax_loss_and_grad(dev(z), dev(q), reduction="sum")
    lc, gc = sm.sparsemax_loss_and_grad(z, q, reduction="sum")
    np.testing.assert_allclose(host(loss), lc, rtol=1e-12)
    np.testing.assert_allclose(host(grad), gc, atol=1e-12)


def test_default_block_long_rows(tpb):
    # Three chunks per row at 256 threads (2048 entries each): a N(0, 1) row (candidates fit
    # the buffer), a U(0, 1) row (they do not: the last block searches the whole row) and
    # a row with a NaN. At 8 threads the chunks are 64 entries (8 per row).
    old = _gpu.set_long_rows(min_k=32 if tpb == 8 else 4096, max_rows=32)
    try:
        K = 4200 if tpb > 8 else 500
        z = np.vstack([RNG.normal(size=K), RNG.random(size=K), RNG.normal(size=K)])
        z[2, K - 10] = np.nan
        p = host(sm.sparsemax(dev(z)))
        np.testing.assert_allclose(p, naive.sparsemax(z), atol=1e-12, rtol=0)
        assert np.isnan(p[2]).all()
        tau, k = sm.sparsemax_threshold(dev(z[1:2]))  # the dense row: the slowest here
        tn, kn = naive.threshold(z[1:2])
        np.testing.assert_allclose(host(tau), tn, atol=1e-12, rtol=0)
        np.testing.assert_array_equal(host(k), kn)
    finally:
        _gpu.set_long_rows(**old)


# --------------------------------------------------------------------------- launch safety
class _Interrupt(BaseException):
    pass


def test_long_rows_interrupted_call_leaves_nothing_stale(long_rows, monkeypatch):
    # The gather kernel runs (counters, keys and candidates filled), then the call is
    # interrupted before the write kernel, as a KeyboardInterrupt during a first compile
    # would. The next call on the same stream (same cached scratch) must be exact.
    z_a = RNG.random(size=(2, 200)) + 5.0
    z_b = RNG.normal(size=(2, 200))
    real = _cuda.k_lr_write

    class Stop:
        def __getitem__(self, cfg):
            def launch(*args):
                raise _Interrupt()
            return launch

    monkeypatch.setattr(_cuda, "k_lr_write", Stop())
    with pytest.raises(_Interrupt):
        sm.sparsemax(dev(z_a))
    monkeypatch.setattr(_cuda, "k_lr_write", real)
    keys, ctr, _, _ = next(reversed(_gpu._scratch_cache.d.values()))
    assert host(ctr)[:2, _cuda.C_DONE].tolist() == [4, 4]  # really left dirty
    np.testing.assert_allclose(host(sm.sparsemax(dev(z_b))), naive.sparsemax(z_b), atol=1e-12)
    tau, k = sm.sparsemax_threshold(dev(z_b))
    np.testing.assert_array_equal(host(k), naive.threshold(z_b)[1])


def test_long_rows_many_rows_fit_the_grid(monkeypatch):
    # More than 65535 long rows: the launch grid is one-dimensional (rows x chunks in x),
    # whose limit is 2^31 - 1, never gridDim.y's 65535. The kernels are recorded, not run
    # (70000 simulated blocks would take minutes); the small tests above run the same code.
    old = _gpu.set_long_rows(min_k=32, max_rows=1 << 20)
    grids = []

    class Record:
        def __getitem__(self, cfg):
            grids.append(cfg)
            return lambda *args: None

    monkeypatch.setattr(_cuda, "k_lr_gather", Record())
    monkeypatch.setattr(_cuda, "k_lr_write", Record())
    try:
        n, K = 70000, 100
        sm.sparsemax(cuda.device_array((n, K)))
    finally:
        _gpu.set_long_rows(**old)
    assert len(grids) == 2
    B = -(-K // (8 * _cuda.ITEMS))
    for grid, block, _ in grids:
        assert grid == n * B and isinstance(grid, int) and block == 8
    with pytest.raises(ValueError, match="grid"):
        _gpu._lr_grid(2**20, 2**12)


def test_stream_waits_for_the_producer_stream(monkeypatch):
    # With stream=, the kernels must wait (an event, no host sync) for the stream that
    # wrote the input. The simulator runs everything synchronously, so the ordering is
    # checked on the calls made: record on the producer, wait on the consumer.
    calls = []

    class Ev:
        def record(self, stream=0):
            calls.append(("record", stream))

        def wait(self, stream=0):
            calls.append(("wait", stream))

    monkeypatch.setattr(cuda, "event", lambda *a, **k: Ev())
    s1 = cuda.stream()
    s2 = cuda.stream()
    z = RNG.normal(size=(3, 6))
    zd = cuda.to_device(z, stream=s1).bind(s1)  # a Numba array remembers its stream
    p = sm.sparsemax(zd, stream=s2)
    assert ("record", s1) in calls and ("wait", s2) in calls
    assert calls.index(("record", s1)) < calls.index(("wait", s2))
    np.testing.assert_allclose(host(p), sm.sparsemax(z), atol=1e-12)
    calls.clear()
    sm.sparsemax(zd, stream=s1)  # same stream: nothing to wait for
    assert calls == []
    calls.clear()
    sm.sparsemax(zd)  # no stream=: the work is on the default stream, no event
    assert calls == []


# --------------------------------------------------------------------------- the GPU check
def test_check_command_runs_tiny_under_the_simulator(tmp_path, monkeypatch):
    # ``sparsemax-nb bench --device cuda --check`` on a GPU; here its code at tiny sizes
    # (no GPU test run, meaningless times), and once with a broken reference to show a
    # wrong result is reported.
    from sparsemax_nb.cli.bench import gpu as _bench_gpu

    path = tmp_path / "check.json"
    doc = _bench_gpu.check_cuda(str(path), run_tests=False, _cuda_mod=cuda, _tiny=True)
    saved = json.loads(path.read_text())
    assert saved["ok"] is True and doc["ok"] is True
    names = [c["name"] for c in saved["checks"]]
    assert {"rows_per_warp", "two_warps", "axis0", "long_normal", "long_uniform"} <= set(names)
    assert all(c["ok"] and c["support_mismatches"] == 0 for c in saved["checks"])
    assert saved["timings"][0]["name"] == "sparsemax"
    real = _bench_gpu._ref_sparsemax64
    monkeypatch.setattr(_bench_gpu, "_ref_sparsemax64", lambda z, axis: real(z, axis) * 0.5)
    bad = _bench_gpu.check_paths(cuda, _bench_gpu._CHECK_CASES["tiny"][:1])
    assert bad[0]["ok"] is False
    if not SIMULATOR:
        return  # on a GPU the full check is what runs these tests: no recursion
    with pytest.raises(_gpu.NoCudaDeviceError, match="simulator|NUMBA_ENABLE_CUDASIM"):
        _bench_gpu.check_cuda(str(tmp_path / "x.json"))
    import argparse

    from sparsemax_nb.cli.bench import cpu as _bench

    ap = argparse.ArgumentParser()
    _bench.add_arguments(ap)
    args = ap.parse_args(["--device", "cuda", "--check", "--json", str(tmp_path / "y.json")])
    assert args.check and _bench.main(args) == 2  # the simulator is not a GPU


# --------------------------------------------------------------------------- register path
def test_register_resident_float32_matches_cpu():
    # Float32 rows of 65..256 entries take the register-resident kernels at 8 threads
    # (32 float32 entries per thread, float32 Michelot passes, float64 finish). Rows built
    # to stress the float32 phase: exact ties, one-ulp near ties at the threshold, huge and
    # tiny scales, -inf entries, a NaN row, a constant row, an adversarial Michelot row.
    K = 200
    rows = [
        np.round(RNG.normal(size=K) * 4) / 4,
        RNG.random(K),
        RNG.normal(size=K) * 1e-6,
        RNG.normal(size=K) * 1e30,
        np.full(K, 3.0),
        -(2.0 ** -np.arange(K, dtype=np.float64) * 0.5),
    ]
    z = np.vstack(rows).astype(np.float32)
    # Near ties: the entries around the CPU's threshold nudged by one ulp each way.
    tau0, _ = sm.sparsemax_threshold(z[0])
    z[0, :6] = np.nextafter(np.float32(tau0), np.float32([-np.inf, np.inf] * 3))
    z[1, ::9] = -np.inf
    nanrow = RNG.normal(size=(1, K)).astype(np.float32)
    nanrow[0, 100] = np.nan
    z = np.vstack([z, nanrow])
    assert _gpu._reg_cfg(K, len(z), np.float32) is not None  # the path under test
    p = host(sm.sparsemax(dev(z)))
    pc = sm.sparsemax(z)
    np.testing.assert_array_equal(np.isnan(p), np.isnan(pc))
    np.testing.assert_allclose(p, pc, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(p > 0, pc > 0)  # the same support, entry by entry
    tau, k = sm.sparsemax_threshold(dev(z))
    tc, kc = sm.sparsemax_threshold(z)
    np.testing.assert_array_equal(host(k), kc)
    np.testing.assert_allclose(host(tau), tc, rtol=1e-6, atol=0)
    np.testing.assert_allclose(host(tau)[:-1], naive.threshold(z[:-1])[0], rtol=1e-6)


# --------------------------------------------------------------------------- GPU branch
# The simulator has no warp shuffles, so the kernels normally run cuda_warp's shared-memory
# fallback here. This fixture loads the *GPU* branch of cuda_warp instead (butterfly
# shuffles, cross-warp partials with double-buffered shared memory, warp votes, the
# libdevice bit casts) and gives the simulator warp intrinsics with warp-synchronous
# semantics: each lane of a warp waits at a per-warp barrier, exchanges its value, and
# waits again. The kernels of _cuda are then re-created on that branch, so the very source
# that runs on a GPU is checked against the references.
@pytest.fixture
def gpu_branch(monkeypatch):
    if not SIMULATOR:
        pytest.skip("the GPU runs the GPU branch itself")
    import importlib.util
    import threading

    import sparsemax_nb.backends as backends_pkg
    from numba.cuda.simulator import kernelapi

    lock = threading.Lock()
    warps = {}

    def warp_state():
        th = threading.current_thread()
        T = int(np.prod(th._manager._block_dim))
        w, lane = divmod(th.thread_id, 32)
        key = (id(th._manager), tuple(th.blockIdx), w)
        with lock:
            st = warps.get(key)
            if st is None:
                st = warps[key] = (threading.Barrier(min(32, T - 32 * w)), {})
        return st, lane

    def exchange(value):
        (bar, buf), lane = warp_state()
        buf[lane] = value
        bar.wait()
        out = dict(buf)
        bar.wait()
        return out, lane

    calls = {"shfl": 0, "vote": 0}

    def shfl_xor_sync(mask, value, lane_mask):
        calls["shfl"] += 1
        buf, lane = exchange(value)
        src = lane ^ int(lane_mask)
        assert (int(mask) >> lane) & 1
        return buf.get(src, value)  # a lane outside the warp: the caller's own value

    def all_sync(mask, pred):
        calls["vote"] += 1
        buf, _ = exchange(bool(pred))
        return int(all(buf.values()))

    monkeypatch.setattr(kernelapi.FakeCUDAModule, "shfl_xor_sync",
                        staticmethod(shfl_xor_sync), raising=False)
    monkeypatch.setattr(kernelapi.FakeCUDAModule, "all_sync",
                        staticmethod(all_sync), raising=False)

    class LibDevice:
        @staticmethod
        def dmul_rn(a, b):
            return float(np.float64(a) * np.float64(b))

        @staticmethod
        def double_as_longlong(x):
            return int(np.float64(x).view(np.int64))

        @staticmethod
        def longlong_as_double(i):
            return float(np.int64(i).view(np.float64))

    root = Path(backends_pkg.__file__).parent

    def load(name, path, edit):
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        src = edit(path.read_text())
        exec(compile(src, str(path), "exec"), mod.__dict__)
        return mod

    warp = load(
        "sparsemax_nb.backends._cuda_warp_gpu", root / "cuda_warp.py",
        lambda s: s.replace('SIM = bool(getattr(config, "ENABLE_CUDASIM", 0))', "SIM = False"),
    )
    assert not warp.SIM and warp.SH_SHAPE == (2, 3, 8)
    warp.libdevice = LibDevice
    monkeypatch.setitem(sys.modules, "sparsemax_nb.backends._cuda_warp_gpu", warp)
    kern = load(
        "sparsemax_nb.backends.cuda_kernels", root / "cuda_kernels.py",
        lambda s: s.replace("from .cuda_warp import",
                            "from sparsemax_nb.backends._cuda_warp_gpu import"),
    )
    monkeypatch.setitem(sys.modules, "sparsemax_nb.backends.cuda_kernels", kern)
    monkeypatch.setattr(backends_pkg, "cuda_kernels", kern)
    monkeypatch.setattr(_gpu, "_scratch_cache", threading.local())
    kern.calls = calls
    return kern


@pytest.mark.parametrize("tpb", [8, DEFAULT_TPB])
def test_gpu_branch_of_the_warp_helpers(gpu_branch, tpb):
    _gpu.set_block_size(tpb)
    # At 8 threads: several rows per group-of-lanes (float32 K = 100, register-resident;
    # float64 K = 37), rows re-read (K = 300), long rows (keys, running maximum, dense
    # bound). At 256 threads: a warp per row and a row over 4 warps (register-resident,
    # cross-warp partials, block votes), two-warp groups (K = 300), and the loss's
    # block-wide sum (k_sum). Each warp-synchronous lane is a Python thread here: the
    # 256-thread long rows are left to test_default_block_long_rows (fallback branch).
    shapes = [(np.float32, 5, 100), (np.float64, 9, 37), (np.float64, 3, 300)]
    if tpb > 8:
        shapes = [(np.float32, 3, 600), (np.float32, 2, 2100), (np.float64, 3, 300)]
    for dtype, n, K in shapes:
        z = (RNG.normal(size=(n, K)) * 2).astype(dtype)
        z[0, 1] = z[0, 2]
        p = host(sm.sparsemax(dev(z)))
        np.testing.assert_allclose(p, naive.sparsemax(z), atol=tol(dtype), rtol=0)
        tau, k = sm.sparsemax_threshold(dev(z))
        np.testing.assert_array_equal(host(k), naive.threshold(z)[1])
    z = RNG.normal(size=(4, 40))
    y = np.array([0, 5, -1, 7])
    loss, grad = sm.sparsemax_loss_and_grad(dev(z), dev(y), reduction="mean", ignore_index=-1)
    lc, gc = sm.sparsemax_loss_and_grad(z, y, reduction="mean", ignore_index=-1)
    np.testing.assert_allclose(host(loss), lc, rtol=1e-12)
    np.testing.assert_allclose(host(grad), gc, atol=1e-12)
    if tpb == 8:
        # Long rows: the keys (bit casts), the running maximum, the dense-chunk bound.
        old = _gpu.set_long_rows(min_k=32, max_rows=32)
        try:
            z = np.vstack([RNG.normal(size=300) * 3, RNG.random(300)])
            np.testing.assert_allclose(
                host(sm.sparsemax(dev(z))), naive.sparsemax(z), atol=1e-12
            )
        finally:
            _gpu.set_long_rows(**old)
    assert gpu_branch.calls["shfl"] > 0 and gpu_branch.calls["vote"] > 0
