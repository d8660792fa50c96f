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


# --------------------------------------------------------------------------- issue 13
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(*argv):
    return [sys.executable, "-m", "sparsemax_nb", "apply", *map(str, argv)]


def _npy_bytes(shape, descr="<f8", fortran=False, data=b""):
    """A ``.npy`` file written by hand (format 1.0), so that its header may lie."""
    header = repr({"descr": descr, "fortran_order": fortran, "shape": tuple(shape)}).encode()
    pad = -(10 + len(header) + 1) % 64
    header += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


def _limited(limit_as=None, limit_fsize=None):
    def preexec():
        import resource
        import signal

        if limit_as is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))
        if limit_fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_fsize, limit_fsize))
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill

    return preexec


def _one_line_rc2(r):
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


# item 4 of issue 13: a crafted header must not decide an allocation
def test_crafted_header_sizes_are_checked_exactly(tmp_path):
    huge = tmp_path / "huge.npy"
    huge.write_bytes(_npy_bytes((2**32, 2**32)))
    assert huge.stat().st_size == 128
    limit = _limited(limit_as=4 * 2**30)  # an unbounded allocation fails fast, not slowly
    r = subprocess.run(_command(huge, tmp_path / "p.npy", "--no-progress"), cwd=ROOT,
                       capture_output=True, text=True, timeout=300, preexec_fn=limit)
    line = _one_line_rc2(r)
    assert "truncated" in line and str(2**64 * 8 + 128) in line
    for axis in ("0", "-1"):
        r = subprocess.run(_command(huge, tmp_path / "t.npz", "--threshold-only", "--axis",
                                    axis, "--no-progress"),
                           cwd=ROOT, capture_output=True, text=True, timeout=300,
                           preexec_fn=limit)
        assert "truncated" in _one_line_rc2(r)
    neg = tmp_path / "neg.npy"
    neg.write_bytes(_npy_bytes((-1, 4), data=bytes(32)))
    assert "negative" in _one_line_rc2(subprocess.run(
        _command(neg, tmp_path / "p.npy"), cwd=ROOT, capture_output=True, text=True))
    # no values, yet 2**40 rows: the probabilities are an empty array of the same shape...
    empty = tmp_path / "empty.npy"
    empty.write_bytes(_npy_bytes((2**40, 0)))
    r = subprocess.run(_command(empty, tmp_path / "e.npy", "--no-progress"), cwd=ROOT,
                       capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "e.npy").shape == (2**40, 0)
    # ...but a tau per row would be 8 TiB out of a 128-byte file: refused
    r = subprocess.run(_command(empty, tmp_path / "t.npz", "--threshold-only", "--no-progress"),
                       cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert "refusing" in _one_line_rc2(r)
    assert not (tmp_path / "t.npz").exists()
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_empty_axis_threshold_only_small(tmp_path):
    src, dst = tmp_path / "z.npy", tmp_path / "t.npz"
    np.save(src, np.empty((3, 0)))
    assert _run(src, dst, "--threshold-only") == 0
    with np.load(dst) as f:
        tau, k = sm.sparsemax_threshold(np.empty((3, 0)))
        np.testing.assert_array_equal(f["tau"], tau)
        np.testing.assert_array_equal(f["support_size"], k)


# item 5 of issue 13: .npz members that are not arrays, and two members with one name
def _zip(path, members):
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)


def _npy_of(a):
    import io

    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


class _Touch:
    """Unpickling this creates a file: proof that nothing was unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_npz_members_that_are_not_arrays(tmp_path, capsys):
    import pickle

    sentinel = tmp_path / "unpickled"
    cases = {
        "text": [("ok.npy", _npy_of(np.ones(3))), ("notes.txt", b"just some text\n")],
        "pickle": [("x.npy", pickle.dumps(_Touch(sentinel)))],
        "object": [("o.npy", _npy_of(np.array([_Touch(sentinel), 1], dtype=object)))],
        "truncated": [("t.npy", _npy_of(np.ones((10, 10)))[:-16])],
        "lying": [("h.npy", _npy_bytes((2**32, 2**32)))],
    }
    for label, members in cases.items():
        src = tmp_path / f"{label}.npz"
        _zip(src, members)
        line = _one_line_error(capsys, src, tmp_path / "out.npz")
        assert repr(members[-1][0].removesuffix(".npy")) in line, line
    assert not sentinel.exists()
    assert not (tmp_path / "out.npz").exists()
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_npz_two_members_with_one_name_are_refused(tmp_path, capsys):
    src, dst = tmp_path / "dup.npz", tmp_path / "out.npz"
    _zip(src, [("a", _npy_of(np.arange(3.0))), ("a.npy", _npy_of(np.arange(4.0)))])
    line = _one_line_error(capsys, src, dst)
    assert "'a'" in line and "'a.npy'" in line
    assert not dst.exists()


def test_npz_members_in_fortran_order_and_subdirectories(tmp_path):
    a = np.asfortranarray(_z((6, 5)))
    src, dst = tmp_path / "in.npz", tmp_path / "out.npz"
    _zip(src, [("a.npy", _npy_of(a)), ("sub/b.npy", _npy_of(_z((2, 3), np.float32, 1)))])
    assert _run(src, dst) == 0
    with np.load(dst) as f:
        assert sorted(f.files) == ["a", "sub/b"]
        np.testing.assert_array_equal(f["a"], sm.sparsemax(a))
        np.testing.assert_array_equal(f["sub/b"], sm.sparsemax(_z((2, 3), np.float32, 1)))


# item 6 of issue 13: signals during apply
def _slow_apply(tmp_path):
    """Start ``apply`` in a subprocess on a file it takes seconds to write (one seek per
    row: the column-piece path with long rows) and return once its temporary exists."""
    import time

    src, dst = tmp_path / "z.npy", tmp_path / "p.npy"
    from sparsemax_nb.cli import apply as _apply

    np.save(src, _z((1000, _apply._ROW_IO_BYTES // 8 + 1024)))
    proc = subprocess.Popen(
        _command(src, dst, "--axis", 0, "--block-mb", 0.01, "--no-progress"), cwd=ROOT,
        stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 300
    tmps: list = []
    while not tmps and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
        tmps = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    time.sleep(0.3)  # well into the writing
    assert tmps and proc.poll() is None, "apply ended before it could be interrupted"
    return proc, tmps[0]


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_signal_removes_the_temporary(tmp_path, signame):
    import signal

    sig = getattr(signal, signame)
    proc, tmp = _slow_apply(tmp_path)
    assert f"sparsemax-nb-{proc.pid}-" in tmp
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -sig, err  # ended by the signal, as if uncaught
    assert signame in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["z.npy"]


def test_sigkill_leftover_is_removed_by_the_next_run(tmp_path, capsys):
    import signal

    proc, tmp = _slow_apply(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    assert os.path.exists(tmp_path / tmp)  # SIGKILL cannot be caught: a leftover...
    assert f"sparsemax-nb-{proc.pid}-" in tmp  # ...that names its writer
    # a temporary of a live writer (this test's parent process) is not touched
    live = tmp_path / f".p.npy.sparsemax-nb-{os.getppid()}-abc123.tmp"
    live.write_bytes(b"in progress")
    other = tmp_path / f".q.npy.sparsemax-nb-{proc.pid}-abc123.tmp"  # another OUT's
    other.write_bytes(b"")
    src, dst = tmp_path / "small.npy", tmp_path / "p.npy"
    np.save(src, _z((4, 5)))
    assert _run(src, dst) == 0
    err = capsys.readouterr().err
    assert f"removed {tmp_path / tmp}" in err and f"process {proc.pid}" in err
    assert not os.path.exists(tmp_path / tmp)
    assert live.exists() and other.exists()
    np.testing.assert_array_equal(np.load(dst), sm.sparsemax(_z((4, 5))))


# item 7 of issue 13: the mode of OUT, and a symbolic link OUT
def _mode(path):
    import stat

    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
@pytest.mark.parametrize("ext", ["npy", "npz"])
def test_new_output_follows_the_umask(tmp_path, umask, ext):
    src, dst = tmp_path / f"z.{ext}", tmp_path / f"p.{ext}"
    if ext == "npy":
        np.save(src, _z())
    else:
        np.savez(src, a=_z())
    old = os.umask(umask)
    try:
        assert _run(src, dst) == 0
    finally:
        os.umask(old)
    assert _mode(dst) == 0o666 & ~umask


@pytest.mark.parametrize("mode", [0o664, 0o640, 0o444])
def test_replaced_output_keeps_its_mode(tmp_path, mode):
    src, dst = tmp_path / "z.npy", tmp_path / "p.npy"
    np.save(src, _z())
    np.save(dst, np.arange(3.0))
    dst.chmod(mode)
    old = os.umask(0o077)
    try:
        assert _run(src, dst) == 0
    finally:
        os.umask(old)
    assert _mode(dst) == mode
    np.testing.assert_array_equal(np.load(dst), sm.sparsemax(_z()))
    src.chmod(0o660)
    assert _run(src, src, "--in-place") == 0
    assert _mode(src) == 0o660


def test_symlink_output_is_written_through(tmp_path):
    src = tmp_path / "z.npy"
    np.save(src, _z())
    (tmp_path / "data").mkdir()
    target, link = tmp_path / "data" / "p.npy", tmp_path / "p.npy"
    np.save(target, np.arange(3.0))
    target.chmod(0o644)
    link.symlink_to(os.path.join("data", "p.npy"))
    assert _run(src, link) == 0
    assert link.is_symlink() and os.readlink(link) == os.path.join("data", "p.npy")
    np.testing.assert_array_equal(np.load(target), sm.sparsemax(_z()))
    assert _mode(target) == 0o644
    dangling = tmp_path / "d.npy"
    dangling.symlink_to(tmp_path / "data" / "new.npy")
    assert _run(src, dangling) == 0
    assert dangling.is_symlink()
    np.testing.assert_array_equal(np.load(tmp_path / "data" / "new.npy"), sm.sparsemax(_z()))
    assert sorted(os.listdir(tmp_path / "data")) == ["new.npy", "p.npy"]


# the summary of issue 13: `apply --axis 0` on a tall file
class _CountingReader:
    """``open`` for ``_apply``: counts the ``readinto`` calls on IN."""

    def __init__(self, path):
        import builtins

        self.path, self.calls, self.open = str(path), 0, builtins.open

    def __call__(self, file, mode="r", *a, **k):
        f = self.open(file, mode, *a, **k)
        if str(file) != self.path:
            return f
        counter, real = self, f.readinto

        def readinto(b):
            counter.calls += 1
            return real(b)

        f.readinto = readinto
        return f


def test_axis_0_reads_runs_of_rows_not_one_element_per_seek(tmp_path, monkeypatch):
    from sparsemax_nb.cli import apply as _apply

    K, B, block_mb = 3000, 3, 0.01
    z = _z((K, B))
    src, dst = tmp_path / "z.npy", tmp_path / "p.npy"
    np.save(src, z)
    counting = _CountingReader(src)
    monkeypatch.setattr(_apply, "open", counting, raising=False)
    assert _run(src, dst, "--axis", 0, "--block-mb", block_mb) == 0
    np.testing.assert_array_equal(np.load(dst), sm.sparsemax(z, axis=0))
    budget = int(block_mb * 2**20) // 8
    assert K > budget  # a column is read in pieces: this is the tall-file path
    rows_per_read = budget // B
    pieces = -(-B // max(budget // K, 1))
    # one read per run of rows (the element-per-seek reading made K reads per piece)
    assert counting.calls <= pieces * -(-K // rows_per_read) + 2, counting.calls


@pytest.mark.parametrize("fortran", [False, True])
@pytest.mark.parametrize("shape, axis", [((40, 5, 7), 0), ((3, 50, 4), 1), ((6, "long"), 0),
                                         ((5, 2, "long"), 1)])
def test_column_pieces_both_ways(tmp_path, shape, axis, fortran):
    # short rows of the slab are read (and written) in runs of rows, long ones row by row
    from sparsemax_nb.cli import apply as _apply

    long = _apply._ROW_IO_BYTES // 8 + 3
    z = _z(tuple(long if d == "long" else d for d in shape))
    if fortran:
        z = np.asfortranarray(z)
    src, dst = tmp_path / "z.npy", tmp_path / "p.npy"
    np.save(src, z)
    assert _run(src, dst, "--axis", axis, "--block-mb", 0.0005) == 0
    np.testing.assert_array_equal(np.load(dst), sm.sparsemax(z, axis=axis))
    assert _run(src, tmp_path / "t.npz", "--axis", axis, "--block-mb", 0.0005,
                "--threshold-only") == 0
    tau, k = sm.sparsemax_threshold(z, axis=axis)
    with np.load(tmp_path / "t.npz") as f:
        np.testing.assert_array_equal(f["tau"], tau)
        np.testing.assert_array_equal(f["support_size"], k)


# the summary of issue 13: what `apply` blames, and progress in a log
def test_out_is_a_directory(tmp_path, capsys):
    src = tmp_path / "z.npy"
    np.save(src, _z())
    (tmp_path / "d").mkdir()
    line = _one_line_error(capsys, src, tmp_path / "d")
    assert "is a directory" in line and ".tmp" not in line
    assert os.listdir(tmp_path / "d") == []


def test_zarr_out_that_is_not_a_store_is_not_replaced(tmp_path, capsys):
    pytest.importorskip("dask.array")
    zarr = pytest.importorskip("zarr")
    src = tmp_path / "in.zarr"
    arr = zarr.open_array(str(src), mode="w", shape=(4, 3), chunks=(2, 3), dtype="f8")
    arr[:] = _z((4, 3))
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    assert "not a Zarr store" in _one_line_error(capsys, src, home)
    assert (home / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize("ext", ["npy", "npz"])
def test_write_failure_names_out(tmp_path, ext):
    src, dst = tmp_path / f"z.{ext}", tmp_path / "out" / f"p.{ext}"
    dst.parent.mkdir()
    z = _z((1024, 1024))  # 8 MiB out; the limit leaves room for Numba's cache files
    if ext == "npy":
        np.save(src, z)
    else:
        np.savez(src, a=z)
    r = subprocess.run(_command(src, dst, "--no-progress"), cwd=ROOT, capture_output=True,
                       text=True, timeout=300, preexec_fn=_limited(limit_fsize=4 * 2**20))
    line = _one_line_rc2(r)
    assert str(dst) in line and str(src) not in line and ".tmp" not in line, line
    assert "File too large" in line
    assert os.listdir(dst.parent) == []


def test_progress_in_a_log_has_no_carriage_returns(tmp_path, capsys):
    src, dst = tmp_path / "z.npy", tmp_path / "p.npy"
    np.save(src, _z((64, 8)))
    assert main(["apply", str(src), str(dst), "--block-mb", "0.001"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[-1].endswith("100%") and 1 <= len(lines) <= 10


def test_npz_compressed_members(tmp_path):
    # deflate members, one of them as compressible as data gets (the size guard on
    # announced sizes must not refuse it)
    a, zeros = _z((30, 7)), np.zeros((1000, 1000))
    src, dst = tmp_path / "in.npz", tmp_path / "out.npz"
    np.savez_compressed(src, a=a, zeros=zeros)
    assert _run(src, dst) == 0
    with np.load(dst) as f:
        np.testing.assert_array_equal(f["a"], sm.sparsemax(a))
        np.testing.assert_array_equal(f["zeros"], sm.sparsemax(zeros))
