"""``sparsemax-nb apply``: formats, blocks, atomic output, bad input."""

import os
import subprocess
import sys

import numpy as np
import pytest

import sparsemax_nb as sm
from sparsemax_nb.cli import main


def _run(*argv):
    return main(["apply", "--no-progress", *map(str, argv)])


def _z(shape=(37, 9), dtype=np.float64, seed=0):
    z = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return z


@pytest.mark.parametrize("block_mb", [32.0, 0.0005])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_npy_blocks_and_axes(tmp_path, block_mb, axis):
    z = _z((5, 40, 7))
    src, dst = tmp_path / "z.npy", tmp_path / "p.npy"
    np.save(src, z)
    assert _run(src, dst, "--axis", axis, "--block-mb", block_mb) == 0
    np.testing.assert_array_equal(np.load(dst), sm.sparsemax(z, axis=axis))
    assert sorted(os.listdir(tmp_path)) == ["p.npy", "z.npy"]  # no temporary left


def test_npy_fortran_order_and_dtype(tmp_path):
    z = np.asfortranarray(_z((30, 11), np.float32))
    src, dst = tmp_path / "z.npy", tmp_path / "p.npy"
    np.save(src, z)
    assert _run(src, dst, "--block-mb", 0.0001) == 0
    p = np.load(dst)
    assert p.dtype == np.float32 and p.flags.f_contiguous
    np.testing.assert_array_equal(p, sm.sparsemax(z))
    assert _run(src, dst, "--dtype", "float64", "--method", "sort") == 0
    p = np.load(dst)
    assert p.dtype == np.float64
    np.testing.assert_array_equal(p, sm.sparsemax(z.astype(np.float64), method="sort"))


def test_npy_integer_input_and_threshold_only(tmp_path):
    z = (np.arange(60).reshape(6, 10) % 7).astype(np.int16)
    src, dst = tmp_path / "z.npy", tmp_path / "t.npz"
    np.save(src, z)
    assert _run(src, dst, "--threshold-only", "--block-mb", 0.0001) == 0
    with np.load(dst) as f:
        assert sorted(f.files) == ["support_size", "tau"]
        tau, k = sm.sparsemax_threshold(z)
        np.testing.assert_array_equal(f["tau"], tau)
        np.testing.assert_array_equal(f["support_size"], k)
    zf = np.asfortranarray(_z((4, 6, 5)))
    np.save(src, zf)
    assert _run(src, dst, "--threshold-only", "--axis", 1, "--block-mb", 0.00001) == 0
    with np.load(dst) as f:
        np.testing.assert_array_equal(f["tau"], sm.sparsemax_threshold(zf, axis=1)[0])


def test_npz_each_array(tmp_path):
    a, b = _z((4, 5)), _z((3, 6), np.float32, 1)
    src, dst = tmp_path / "in.npz", tmp_path / "out.npz"
    np.savez(src, a=a, b=b)
    assert _run(src, dst) == 0
    with np.load(dst) as f:
        np.testing.assert_array_equal(f["a"], sm.sparsemax(a))
        np.testing.assert_array_equal(f["b"], sm.sparsemax(b))
    assert _run(src, dst, "--threshold-only") == 0
    with np.load(dst) as f:
        assert sorted(f.files) == ["a_support_size", "a_tau", "b_support_size", "b_tau"]
        np.testing.assert_array_equal(f["b_tau"], sm.sparsemax_threshold(b)[0])


def test_refuses_to_overwrite_input_unless_in_place(tmp_path, capsys):
    z = _z()
    src = tmp_path / "z.npy"
    np.save(src, z)
    assert _run(src, src) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--in-place" in err[0]
    np.testing.assert_array_equal(np.load(src), z)
    assert _run(src, src, "--in-place") == 0
    np.testing.assert_array_equal(np.load(src), sm.sparsemax(z))
    assert os.listdir(tmp_path) == ["z.npy"]


def _one_line_error(capsys, *argv):
    assert _run(*argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("sparsemax-nb apply: error:")
    assert "Traceback" not in captured.err
    return lines[0]


def test_bad_inputs_one_line_exit_2(tmp_path, capsys):
    dst = tmp_path / "out.npy"
    assert "no such file" in _one_line_error(capsys, tmp_path / "missing.npy", dst)
    txt = tmp_path / "text.npy"
    txt.write_text("hello, not an array\n")
    assert "not a readable .npy" in _one_line_error(capsys, txt, dst)
    s = tmp_path / "s.npy"
    np.save(s, np.array(["a", "b"]))
    assert "numeric" in _one_line_error(capsys, s, dst)
    c = tmp_path / "c.npy"
    np.save(c, np.ones(3, complex))
    assert "numeric" in _one_line_error(capsys, c, dst)
    o = tmp_path / "o.npy"
    np.save(o, np.array([1, "x"], dtype=object), allow_pickle=True)
    _one_line_error(capsys, o, dst)
    t = tmp_path / "t.npy"
    np.save(t, _z((100, 10)))
    with open(t, "r+b") as f:
        f.truncate(os.path.getsize(t) - 100)
    assert "truncated" in _one_line_error(capsys, t, dst)
    scalar = tmp_path / "0d.npy"
    np.save(scalar, np.float64(3.0))
    assert "axis" in _one_line_error(capsys, scalar, dst)
    _one_line_error(capsys, tmp_path / "x.txt", dst)
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"PK\x03\x04 truncated zip")
    _one_line_error(capsys, bad_npz, tmp_path / "o.npz")
    snpz = tmp_path / "s.npz"
    np.savez(snpz, ok=np.ones(3), bad=np.array(["x"]))
    assert "'bad'" in _one_line_error(capsys, snpz, tmp_path / "o.npz")
    assert "does not exist" in _one_line_error(capsys, t, tmp_path / "no" / "dir.npy")
    assert not dst.exists() and not (tmp_path / "o.npz").exists()
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable(tmp_path, capsys):
    src = tmp_path / "z.npy"
    np.save(src, _z())
    src.chmod(0)
    assert "permission" in _one_line_error(capsys, src, tmp_path / "o.npy")


def test_existing_output_kept_on_failure(tmp_path, capsys):
    dst = tmp_path / "out.npy"
    np.save(dst, np.arange(3.0))
    t = tmp_path / "t.npy"
    np.save(t, _z((50, 10)))
    with open(t, "r+b") as f:
        f.truncate(os.path.getsize(t) - 8)
    _one_line_error(capsys, t, dst)
    np.testing.assert_array_equal(np.load(dst), np.arange(3.0))


def test_progress_bar_on_stderr(tmp_path, capsys):
    src, dst = tmp_path / "z.npy", tmp_path / "p.npy"
    np.save(src, _z((64, 8)))
    assert main(["apply", str(src), str(dst), "--block-mb", "0.001"]) == 0
    err = capsys.readouterr().err
    assert "100" in err  # the bar reaches 100%


def test_zarr_store(tmp_path):
    pytest.importorskip("dask.array")
    zarr = pytest.importorskip("zarr")
    z = _z((20, 7), np.float32)
    src, dst = tmp_path / "in.zarr", tmp_path / "out.zarr"
    arr = zarr.open_array(str(src), mode="w", shape=z.shape, chunks=(6, 4), dtype=z.dtype)
    arr[:] = z
    assert _run(src, dst) == 0
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[:], sm.sparsemax(z))
    assert _run(src, dst, "--threshold-only") == 0  # replaces the existing store
    g = zarr.open_group(str(dst), mode="r")
    np.testing.assert_array_equal(g["tau"][:], sm.sparsemax_threshold(z)[0])
    np.testing.assert_array_equal(g["support_size"][:], sm.sparsemax_threshold(z)[1])
    assert sorted(os.listdir(tmp_path)) == ["in.zarr", "out.zarr"]


def test_zarr_on_a_running_scheduler(tmp_path):
    pytest.importorskip("dask.array")
    zarr = pytest.importorskip("zarr")
    distributed = pytest.importorskip("distributed")
    z = _z((16, 5))
    src, dst = tmp_path / "in.zarr", tmp_path / "out.zarr"
    arr = zarr.open_array(str(src), mode="w", shape=z.shape, chunks=(4, 5), dtype=z.dtype)
    arr[:] = z
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        assert _run(src, dst, "--scheduler", cluster.scheduler_address) == 0
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[:], sm.sparsemax(z))


def test_console_entry_point(tmp_path):
    src, dst = tmp_path / "z.npy", tmp_path / "p.npy"
    np.save(src, _z((3, 4)))
    r = subprocess.run(
        [sys.executable, "-m", "sparsemax_nb", "apply", str(src), str(dst), "--no-progress"],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "sparsemax_nb", "apply", str(tmp_path / "none.npy"), str(dst)],
        capture_output=True, text=True,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
