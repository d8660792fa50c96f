"""Regression tests for the reliability probe's findings: each failed before its fix."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from numpy.exceptions import AxisError

import sparsemax_nb as sm

ROOT = Path(__file__).resolve().parents[1]


def _run(code, env_extra=None, timeout=240):
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------- out= overlap
def test_loss_grad_out_overlapping_the_target():
    buf = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    q, out = buf[:2], buf[1:]
    want = sm.sparsemax(np.zeros((2, 3))) - q.copy()
    got = sm.sparsemax_loss_grad(np.zeros((2, 3)), q, out=out)
    assert got is out
    np.testing.assert_allclose(got, want, atol=1e-15)


def test_jvp_out_overlapping_p_shifted():
    buf = np.array([[0.0, 0.25, 0.75], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    p, out = buf[:2], buf[1:]
    v = np.array([[1.0, 2.0, 4.0], [3.0, 1.0, 0.0]])
    want = sm.sparsemax_jvp(p.copy(), v)
    np.testing.assert_allclose(sm.sparsemax_jvp(p, v, out=out), want, atol=1e-15)


# --------------------------------------------------------------------------- bits
def test_loss_bits_do_not_depend_on_the_gradient_buffer():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((64, 1000)).astype(np.float32)
    y = rng.integers(0, 1000, 64)
    q = sm.labels_to_proportions((rng.random((64, 1000)) < 0.01) | (np.arange(1000) == 0))
    for target in (y, q.astype(np.float32)):
        ref = sm.sparsemax_loss(z, target)
        l1, _ = sm.sparsemax_loss_and_grad(z, target)
        zc = z.copy()
        g2 = sm.sparsemax_loss_grad(zc, target, out=zc)  # gradient written over z
        l3 = sm.sparsemax_loss(z, target)
        np.testing.assert_array_equal(l1, ref)
        np.testing.assert_array_equal(l3, ref)
        np.testing.assert_array_equal(g2, sm.sparsemax_loss_grad(z, target))


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("axis", [None, 1.0, (0, 1), "1", True])
def test_axis_of_the_wrong_type_names_axis(axis):
    with pytest.raises(TypeError, match="axis"):
        sm.sparsemax(np.zeros((2, 3)), axis=axis)
    with pytest.raises(TypeError, match="axis"):
        sm.sparsemax_threshold(np.zeros((2, 3)), axis=axis)


def test_axis_numpy_integer_accepted_and_range_still_axiserror():
    np.testing.assert_array_equal(sm.sparsemax(np.zeros((2, 3)), axis=np.int64(0)), 0.5)
    with pytest.raises(AxisError):
        sm.sparsemax(np.zeros((2, 3)), axis=2)


def test_masked_array_refused():
    z = np.ma.masked_array([1.0, 100.0, 0.5], mask=[False, True, False])
    with pytest.raises(TypeError, match="masked"):
        sm.sparsemax(z)
    np.testing.assert_allclose(sm.sparsemax(z.filled(-np.inf)), [0.75, 0.0, 0.25])


def test_longdouble_refused():
    if np.dtype(np.longdouble).itemsize <= 8:
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(TypeError, match="longdouble|float128|float96"):
        sm.sparsemax(np.ones(3, np.longdouble))


def test_scipy_sparse_named():
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="scipy.sparse"):
        sm.sparsemax(sparse.csr_matrix(np.eye(3)))


def test_messages_show_plain_numbers():
    with pytest.raises(ValueError) as e:
        sm.sparsemax_loss(np.zeros((1, 3)), np.array([[1.0, 1.0, 0.0]]))
    assert "np.float64" not in str(e.value) and "2.0" in str(e.value)
    with pytest.raises(ValueError) as e:
        sm.labels_to_proportions(np.array([[2.0, 0.0]]))
    assert "np." not in str(e.value)
    with pytest.raises(ValueError) as e:
        sm.sparsemax(np.zeros(3), method=np.str_("fast"))
    assert "np." not in str(e.value)


@pytest.mark.parametrize("bad", [True, np.bool_(False), 1.5, "1"])
def test_ignore_index_must_be_an_integer(bad):
    with pytest.raises(TypeError, match="ignore_index"):
        sm.sparsemax_loss(np.zeros((2, 3)), np.array([0, 1]), ignore_index=bad)


def test_dask_ignore_index_not_truncated():
    da = pytest.importorskip("dask.array")
    z = da.zeros((4, 3), chunks=2)
    with pytest.raises(TypeError, match="ignore_index"):
        sm.sparsemax_loss(z, da.zeros(4, dtype=int, chunks=2), ignore_index=1.5)


def test_dask_unknown_chunk_sizes():
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(0)
    zn = rng.standard_normal((10, 4))
    yn = rng.integers(0, 4, 10)
    keep = np.arange(10) % 3 != 0
    z = da.from_array(zn, chunks=(5, 4))[da.from_array(keep, chunks=5)]
    y = da.from_array(yn, chunks=5)[da.from_array(keep, chunks=5)]
    assert np.isnan(z.shape[0])
    loss, grad = sm.sparsemax_loss_and_grad(z, y)
    want_loss, want_grad = sm.sparsemax_loss_and_grad(zn[keep], yn[keep])
    np.testing.assert_allclose(loss.compute(), want_loss, atol=1e-12)
    np.testing.assert_allclose(grad.compute(), want_grad, atol=1e-12)
    mean = sm.sparsemax_loss(z, y, reduction="mean").compute()
    assert float(mean) == pytest.approx(float(want_loss.mean()), abs=1e-12)
    p = sm.sparsemax(z)
    np.testing.assert_allclose(sm.sparsemax_jvp(p, z).compute(),
                               sm.sparsemax_jvp(sm.sparsemax(zn[keep]), zn[keep]), atol=1e-12)
    q = sm.labels_to_proportions(np.eye(4)[yn])
    qd = da.from_array(q, chunks=(5, 4))[da.from_array(keep, chunks=5)]
    np.testing.assert_allclose(sm.sparsemax_loss(z, qd).compute(), want_loss, atol=1e-12)


# --------------------------------------------------------------------------- processes
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_while_another_thread_compiles(tmp_path):
    """A child forked while a thread holds Numba's compiler lock used to hang forever."""
    code = """
        import os, threading, time
        import numpy as np
        import sparsemax_nb as sm
        z = np.random.default_rng(0).standard_normal((4, 50))
        sm.sparsemax(z)
        t = threading.Thread(target=sm.sparsemax, args=(z.astype(np.float32),))
        t.start()
        time.sleep(0.3)
        pid = os.fork()
        if pid == 0:
            tau, k = sm.sparsemax_threshold(z)
            os._exit(0 if k.min() >= 1 else 3)
        _, status = os.waitpid(pid, 0)
        t.join()
        print("child", os.waitstatus_to_exitcode(status))
    """
    r = _run(code, {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "child 0" in r.stdout


def test_import_without_a_writable_cache(tmp_path):
    """Import and compute, uncached with one warning, where no cache directory is writable.

    Each package folder gets a plain file named ``__pycache__`` (so Numba's in-tree cache
    cannot be made, even by root), and the user-wide and explicit locations are invalid.
    """
    import shutil

    dst = tmp_path / "site"
    shutil.copytree(ROOT / "sparsemax_nb", dst / "sparsemax_nb",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for d in [p for p in (dst / "sparsemax_nb").rglob("*") if p.is_dir()] + [dst / "sparsemax_nb"]:
        (d / "__pycache__").write_text("")
    code = """
        import warnings
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import sparsemax_nb as sm
        print(sm.sparsemax([1.0, 2.0]).tolist(), sum("cache" in str(x.message) for x in w))
    """
    env = {"PYTHONPATH": str(dst), "NUMBA_CACHE_DIR": "/dev/null/no-cache",
           "HOME": "/dev/null", "XDG_CACHE_HOME": "/dev/null", "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=300, env={**os.environ, **env}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["[0.0,", "1.0]", "1"]
