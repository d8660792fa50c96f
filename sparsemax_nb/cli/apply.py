"""``sparsemax-nb apply IN OUT``: sparsemax of the arrays in a file, in bounded memory.

Formats, chosen by IN's name:

* ``.npy``: read and written in blocks of rows with plain file reads and writes (not a
  memory map: the pages of a mapped file count in the process's resident memory), so a
  file larger than RAM is processed with about ``4 * --block-mb`` of buffers. Fortran-order
  files are handled as the C-order transpose and written in Fortran order.
* ``.npz``: each array of the archive, one at a time, into an ``.npz`` of the same names.
* Zarr (a directory or a name ending in ``.zarr``; needs the ``dask`` extra): through Dask,
  chunk by chunk, on the local threads or on the cluster at ``--scheduler ADDRESS``.

``--threshold-only`` writes ``tau`` and ``support_size`` instead of ``p``: an ``.npz`` with
arrays ``tau`` and ``support_size`` for an ``.npy`` input, ``<name>_tau`` and
``<name>_support_size`` per array for an ``.npz``, and a Zarr group with arrays ``tau`` and
``support_size`` for a Zarr array.

OUT is written beside itself under a temporary name and renamed at the end, so it is
never left half-written. IN is never overwritten unless ``--in-place``. Bad input (missing,
unreadable, not an array file, non-numeric, truncated) gives one line on stderr and exit
status 2.

The temporary name is ``.<OUT's name>.sparsemax-nb-<PID>-<random>.tmp``. SIGTERM and
SIGHUP remove it and then end the process by that signal; a leftover of a writer that
could not clean up (SIGKILL, a power cut) is removed by the next run for the same OUT once
the process named in it is gone. A new OUT gets the mode the umask allows, a replaced one
keeps its mode, and a symbolic link OUT is written through to its target.
"""

import os
import re
import sys

ERROR = 2

# The signals after which the temporary output is removed before the process ends.
_CLEANUP_SIGNALS = ("SIGTERM", "SIGHUP")
_TMP_TAG = "sparsemax-nb"
# A column piece of a slab (see _Blocks) is read (and written) in runs of whole rows of the
# slab when a row is at most this long, and row by row otherwise. One Python-level seek and
# read per row costs about as much as copying some KiB: measured on --axis 0 files, runs
# took 0.23x the time of row-by-row reads at 1 KiB rows, 0.42x at 8 KiB, 0.90x at 16 KiB
# and 1.14-1.20x at 24-32 KiB.
_ROW_IO_BYTES = 16384


class _UserError(Exception):
    """A problem with the user's input: reported in one line, exit status 2."""


class _WriteFailed(Exception):
    """Writing the output failed (full disk, quota, file size limit): OUT is to blame."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _Signalled(BaseException):
    """One of ``_CLEANUP_SIGNALS`` arrived: unwinds to ``main``, removing the temporary."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def add_arguments(parser):
    parser.add_argument("input", metavar="IN", help="input .npy, .npz or Zarr store")
    parser.add_argument("output", metavar="OUT", help="output file or store (same format)")
    parser.add_argument("--axis", type=int, default=-1, help="axis of each distribution (default -1)")
    parser.add_argument(
        "--method", default="auto", choices=("auto", "sort", "select"), help="threshold method"
    )
    parser.add_argument(
        "--dtype", choices=("float32", "float64"), default=None,
        help="compute and write in this dtype (default: float32 for float16/float32 input, "
        "float64 otherwise)",
    )
    parser.add_argument(
        "--threshold-only", action="store_true",
        help="write tau and support_size (an .npz / Zarr group) instead of the probabilities",
    )
    parser.add_argument("--in-place", action="store_true", help="allow OUT to be IN")
    parser.add_argument(
        "--block-mb", type=float, default=32.0,
        help=".npy: input bytes per block in MiB (default 32); memory is about 4 blocks",
    )
    parser.add_argument(
        "--scheduler", metavar="ADDRESS", default=None,
        help="Zarr: address of a running Dask scheduler (default: local threads)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


# --------------------------------------------------------------------------- progress
class _Progress:
    """Progress on stderr: a bar on a terminal (tqdm when installed), else plain lines.

    A log file gets one line per tenth of the work and no carriage returns, which would
    pile up as one endless line there.
    """

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.total = max(int(total), 1)
        self.done = 0
        self.bar = None
        self.enabled = enabled
        self.label = label
        self.tty = enabled and sys.stderr.isatty()
        # no "0%" line: a log of a run that fails at once holds just the error
        self._last_tenth = 0
        if not enabled:
            return
        if self.tty:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=self.total, unit="B", unit_scale=True, desc=label,
                                file=sys.stderr)
                return
            except ImportError:
                pass
        self._draw()

    def _draw(self) -> None:
        frac = self.done / self.total
        if self.tty:
            n = int(30 * frac)
            sys.stderr.write(f"\r{self.label} [{'#' * n}{'.' * (30 - n)}] {100 * frac:5.1f}%")
        else:
            tenth = int(10 * frac)
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            sys.stderr.write(f"{self.label}: {10 * tenth:3d}%\n")
        sys.stderr.flush()

    def update(self, n: int) -> None:
        if not self.enabled:
            return
        self.done = min(self.done + n, self.total)
        if self.bar is not None:
            self.bar.update(n)
        else:
            self._draw()

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        elif self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


# --------------------------------------------------------------------------- helpers
def _kind(path):
    low = path.lower().rstrip("/\\")
    if low.endswith(".npy"):
        return "npy"
    if low.endswith(".npz"):
        return "npz"
    if low.endswith(".zarr") or os.path.isdir(path):
        return "zarr"
    raise _UserError(f"{path}: unknown format (expected .npy, .npz or a Zarr store)")


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _result_dtype(in_dtype, args, name):
    import numpy as np

    from .. import _checks as D

    try:
        dt = D.compute_dtype(np.dtype(in_dtype), name)
    except TypeError:
        raise _UserError(f"{name} has dtype {in_dtype}; expected a numeric (real) array") from None
    return np.dtype(args.dtype) if args.dtype else dt


class _writing:
    """Turns an ``OSError`` raised while writing the output into ``_WriteFailed``, so the
    message names OUT and its directory rather than IN."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, tb) -> None:
        if isinstance(value, OSError):
            raise _WriteFailed(value) from None


# Signal state of the running command: while ``hold`` is non-zero a signal is only noted in
# ``pending`` and raised when the hold ends (see ``_signals_held``).
_signal_state: dict = {"hold": 0, "pending": None}


class _signals_held:
    """Defers ``_CLEANUP_SIGNALS`` to the end of a step that must not be cut in two:
    creating the temporary and recording its name, or the renames that put the finished
    output in place. (Blocking the signal in this thread would not do: another thread may
    take it, and Python then runs the handler in this one all the same.)"""

    def __enter__(self) -> None:
        _signal_state["hold"] += 1

    def __exit__(self, *exc) -> None:
        _signal_state["hold"] -= 1
        signum = _signal_state["pending"]
        if _signal_state["hold"] == 0 and signum is not None:
            _signal_state["pending"] = None
            raise _Signalled(signum)


def _temp_beside(path: str, directory: bool = False) -> str:
    """A new temporary file (or directory) beside ``path``, named after it and this process
    (``_stale_pattern`` recognises the name)."""
    import tempfile

    parent = os.path.dirname(os.path.abspath(path)) or "."
    base = os.path.basename(path.rstrip("/\\"))
    prefix = f".{base}.{_TMP_TAG}-{os.getpid()}-"
    if directory:
        return tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=parent)
    os.close(fd)
    return tmp


def _stale_pattern(base: str) -> "re.Pattern[str]":
    # tempfile's random part is drawn from lowercase letters, digits and "_"
    return re.compile(r"\." + re.escape(base) + r"\." + _TMP_TAG + r"-(\d+)-[a-z0-9_]+\.tmp")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: a live process of another user
        return True
    return True


def _sweep_stale(out: str) -> None:
    """Remove the temporaries for ``out`` left by writers that are gone (killed by SIGKILL,
    say), reporting each on stderr. Those of live writers are left alone."""
    parent = os.path.dirname(os.path.abspath(out)) or "."
    pattern = _stale_pattern(os.path.basename(out.rstrip("/\\")))
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        m = pattern.fullmatch(name)
        if m is None or _alive(int(m.group(1))):
            continue
        path = os.path.join(parent, name)
        _remove(path)
        if os.path.lexists(path):
            print(f"sparsemax-nb apply: warning: cannot remove {path}, left by process "
                  f"{m.group(1)} which is gone", file=sys.stderr)
        else:
            print(f"sparsemax-nb apply: removed {path}, a temporary left by process "
                  f"{m.group(1)} which is gone", file=sys.stderr)


def _remove(path):
    import shutil

    if path is None or not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except OSError:
            pass


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # no /proc: the only portable way to read the umask is to set it (and put it back)
    old = os.umask(0o022)
    os.umask(old)
    return old


def _final_mode(out: str, directory: bool) -> int:
    """The permission bits OUT should end with: those of the file it replaces, else what the
    umask allows (``mkstemp`` always creates 0600)."""
    import stat

    try:
        return stat.S_IMODE(os.stat(out).st_mode)
    except OSError:
        return (0o777 if directory else 0o666) & ~_umask()


def _is_zarr_store_or_empty(path: str) -> bool:
    try:
        names = set(os.listdir(path))
    except OSError:
        return False
    return not names or bool(names & {".zarray", ".zgroup", "zarr.json"})


def _commit(tmp, out, mode):
    """Move the finished ``tmp`` onto ``out`` (a rename; directories via a side name)."""
    os.chmod(tmp, mode)
    if os.path.isdir(tmp) and os.path.lexists(out):
        old = _temp_beside(out, directory=True)
        os.rmdir(old)
        os.replace(out, old)
        os.replace(tmp, out)
        _remove(old)
    else:
        os.replace(tmp, out)


# --------------------------------------------------------------------------- .npy
def _read_npy_header(f, path):
    import numpy as np

    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:  # pragma: no cover - future format
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, EOFError, OSError) as e:
        raise _UserError(f"{path}: not a readable .npy file ({e})") from None
    # NumPy's header parser accepts negative lengths; and its own size arithmetic is in
    # int64, which a crafted shape such as (2**32, 2**32) overflows to 0. Python ints are
    # exact: every size below is checked against the file before anything is allocated.
    if any(int(d) < 0 for d in shape):
        raise _UserError(f"{path}: not a readable .npy file (negative length in shape {shape})")
    return tuple(int(d) for d in shape), fortran, dtype, f.tell()


def _prod(dims) -> int:
    import math

    return math.prod(int(d) for d in dims)


class _Blocks:
    """The blocks ``(a0, a1, b0, b1)`` of an input seen as C-order ``(A, K, B)`` (K the
    distributions' axis), in file order, computed on demand.

    Whole slabs ``a0:a1`` (contiguous in the file) when a slab fits the budget; else column
    pieces ``b0:b1`` of one slab, each with all K rows (a distribution cannot be split).
    """

    def __init__(self, A: int, K: int, B: int, budget: int) -> None:
        self.A, self.K, self.B = A, K, B
        self.slabs = K * B <= budget
        if A * K * B == 0:
            self.n = 0
        elif self.slabs:
            self.step = max(budget // (K * B), 1)
            self.n = -(-A // self.step)
        else:
            self.step = max(budget // K, 1)
            self.per_slab = -(-B // self.step)
            self.n = A * self.per_slab

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(i)
        if self.slabs:
            a0 = i * self.step
            return a0, min(a0 + self.step, self.A), 0, self.B
        a, j = divmod(i, self.per_slab)
        b0 = j * self.step
        return a, a + 1, b0, min(b0 + self.step, self.B)


def _apply_npy(args, tmp):
    import numpy as np

    import sparsemax_nb as sm
    from .. import _checks as D

    with open(args.input, "rb") as fin:
        shape, fortran, dtype, offset = _read_npy_header(fin, args.input)
        if dtype.hasobject or dtype.fields is not None:
            raise _UserError(f"{args.input} holds dtype {dtype}; expected a numeric (real) array")
        dt = _result_dtype(dtype, args, args.input)
        ndim = len(shape)
        try:
            ax = D.axis_index(args.axis, ndim)
        except np.exceptions.AxisError as e:
            raise _UserError(f"{args.input}: {e}") from None
        size = _prod(shape)
        need = offset + size * dtype.itemsize
        have = os.fstat(fin.fileno()).st_size
        if have < need:
            raise _UserError(
                f"{args.input} is truncated: {have} bytes, the header announces {need}"
            )
        # Fortran order is the C-order transpose: same bytes, reversed axes.
        cshape = tuple(shape[::-1]) if fortran else tuple(shape)
        cax = ndim - 1 - ax if fortran else ax
        A = _prod(cshape[:cax])
        K = cshape[cax]
        B = _prod(cshape[cax + 1 :])
        budget = max(int(args.block_mb * 2**20) // dtype.itemsize, 1)
        if args.threshold_only and size == 0 and A * B > budget:
            # no values, yet a tau per row: the output would not be bounded by the input
            raise _UserError(
                f"{args.input}: shape {shape} has no values along axis {args.axis} but "
                f"{A * B} rows; refusing to write a tau for each"
            )
        blocks = _Blocks(A, K, B, budget)
        progress = _Progress(size * dtype.itemsize, "sparsemax-nb apply", not args.no_progress)
        tau = kk = fout = None
        out_offset = 0
        if args.threshold_only:
            if size == 0:
                tau, kk = sm.sparsemax_threshold(np.empty((A, K, B), dt), axis=1)
            else:
                tau = np.empty((A, B), dt)
                kk = np.empty((A, B), np.int64)
        else:
            with _writing():
                mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=dt, shape=tuple(shape),
                                               fortran_order=fortran)
                out_offset = mm.offset
                del mm
                fout = open(tmp, "r+b")
        try:
            _pipeline(args, fin, offset, dtype, dt, A, K, B, blocks, budget, fout, out_offset,
                      tau, kk, progress)
        finally:
            progress.close()
            if fout is not None:
                with _writing():
                    fout.close()
    if args.threshold_only:
        batch = cshape[:cax] + cshape[cax + 1 :]
        tau = tau.reshape(batch)
        kk = kk.reshape(batch)
        if fortran:
            tau, kk = tau.T, kk.T
        with _writing(), open(tmp, "wb") as f:
            np.savez(f, tau=tau, support_size=kk)


def _pipeline(args, fin, offset, dtype, dt, A, K, B, blocks, budget, fout, out_offset, tau,
              kk, progress):
    """Read block i+1 and write block i-1 in two threads while block i is computed.

    File reads and writes and the kernels all release the GIL, so disk and CPU overlap.
    At most two input and two output blocks are alive at a time.
    """
    from concurrent.futures import ThreadPoolExecutor

    import sparsemax_nb as sm

    # rows of a slab per read (or read-modify-write) when a column piece is gathered
    run = max(budget // max(B, 1), 1)

    def read(i):
        a0, a1, b0, b1 = blocks[i]
        return _read_block(fin, offset, dtype, A, K, B, a0, a1, b0, b1, run)

    def write(pb, a0, a1, b0, b1):
        with _writing():
            _write_block(fout, out_offset, pb, A, K, B, a0, a1, b0, b1, run)

    with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer:
        nxt = reader.submit(read, 0) if len(blocks) else None
        pending = None
        for i in range(len(blocks)):
            a0, a1, b0, b1 = blocks[i]
            zb = nxt.result()
            if i + 1 < len(blocks):
                nxt = reader.submit(read, i + 1)
            if args.dtype:
                zb = zb.astype(dt, copy=False)
            # (a, K, 1) blocks (the last-axis case) go in as (a, K) rows: no copies.
            rows = zb.reshape(zb.shape[0], K) if zb.shape[2] == 1 else zb
            ax = -1 if rows.ndim == 2 else 1
            if args.threshold_only:
                t, k = sm.sparsemax_threshold(rows, axis=ax, method=args.method)
                tau[a0:a1, b0:b1] = t.reshape(a1 - a0, b1 - b0)
                kk[a0:a1, b0:b1] = k.reshape(a1 - a0, b1 - b0)
            else:
                pb = sm.sparsemax(rows, axis=ax, method=args.method).reshape(zb.shape)
                if pending is not None:
                    pending.result()
                pending = writer.submit(write, pb, a0, a1, b0, b1)
            progress.update(zb.size * dtype.itemsize)
            del zb, rows
        if pending is not None:
            pending.result()


def _read_exact(f, buf) -> None:
    view = memoryview(buf).cast("B")
    if f.readinto(view) != view.nbytes:
        raise _UserError(f"{f.name}: unexpected end of file")


def _read_block(f, offset, dtype, A, K, B, a0, a1, b0, b1, run):
    import numpy as np

    item = dtype.itemsize
    if b0 == 0 and b1 == B:
        f.seek(offset + a0 * K * B * item)
        buf = np.empty((a1 - a0) * K * B, dtype)
        _read_exact(f, buf)
        return buf.reshape(a1 - a0, K, B)
    buf = np.empty((1, K, b1 - b0), dtype)
    if B * item <= _ROW_IO_BYTES:
        # runs of whole rows, transposed in memory: one read per run, not one per row
        scratch = np.empty(min(run, K) * B, dtype)
        for k0 in range(0, K, run):
            k1 = min(k0 + run, K)
            part = scratch[: (k1 - k0) * B]
            f.seek(offset + (a0 * K + k0) * B * item)
            _read_exact(f, part)
            buf[0, k0:k1] = part.reshape(k1 - k0, B)[:, b0:b1]
        return buf
    for k in range(K):
        f.seek(offset + ((a0 * K + k) * B + b0) * item)
        _read_exact(f, buf[0, k])
    return buf


def _write_block(f, offset, pb, A, K, B, a0, a1, b0, b1, run):
    import numpy as np

    item = pb.dtype.itemsize
    if b0 == 0 and b1 == B:
        f.seek(offset + a0 * K * B * item)
        f.write(memoryview(pb.reshape(-1)).cast("B"))
        return
    if B * item <= _ROW_IO_BYTES:
        # read-modify-write of runs of whole rows; the one writer thread writes the pieces
        # of a slab one after the other, so no two runs of the same rows overlap in time
        scratch = np.empty(min(run, K) * B, pb.dtype)
        for k0 in range(0, K, run):
            k1 = min(k0 + run, K)
            part = scratch[: (k1 - k0) * B]
            pos = offset + (a0 * K + k0) * B * item
            f.seek(pos)
            if f.readinto(memoryview(part).cast("B")) != part.nbytes:
                raise OSError(f"{f.name}: short read of the output being written")
            part.reshape(k1 - k0, B)[:, b0:b1] = pb[0, k0:k1]
            f.seek(pos)
            f.write(memoryview(part).cast("B"))
        return
    for k in range(K):
        f.seek(offset + ((a0 * K + k) * B + b0) * item)
        f.write(memoryview(pb[0, k].copy()).cast("B"))


# --------------------------------------------------------------------------- .npz
def _npz_members(zin, path):
    """``[(key, ZipInfo)]`` of the archive, where ``key`` is the name ``numpy.load`` gives
    the array (the member's name less ``.npy``). Two members with one key are refused:
    the output could hold only one of them under that name."""
    keys = {}
    for info in zin.infolist():
        if info.is_dir():
            continue
        key = info.filename.removesuffix(".npy")
        if key in keys:
            raise _UserError(
                f"{path}: members {keys[key].filename!r} and {info.filename!r} are both "
                f"read as array {key!r}; rename one of them"
            )
        keys[key] = info
    return list(keys.items())


def _read_npz_member(zin, info, key, path):
    """The array in one member, read without unpickling and with its size checked against
    the member's before it is allocated."""
    import zipfile

    import numpy as np

    name = f"{path}[{key!r}]"
    # a deflate stream expands at most about 1032-fold; a member that announces more than
    # that is corrupt, and its announced size must not decide an allocation
    if info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        ratio = 1 if info.compress_type == zipfile.ZIP_STORED else 1100
        if info.file_size > ratio * info.compress_size + 1024:
            raise _UserError(f"{name}: corrupt member (announces {info.file_size} bytes "
                             f"from {info.compress_size})")
    try:
        with zin.open(info) as f:
            if f.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
                raise _UserError(f"{name}: member {info.filename!r} is not a .npy array")
            f.seek(0)
            shape, fortran, dtype, offset = _read_npy_header(f, name)
            if dtype.hasobject:
                raise _UserError(f"{name} holds Python objects (dtype {dtype}); they are "
                                 "not unpickled: expected a numeric (real) array")
            need = offset + _prod(shape) * dtype.itemsize
            if info.file_size < need:
                raise _UserError(f"{name} is truncated: {info.file_size} bytes, the header "
                                 f"announces {need}")
            buf = np.empty(_prod(shape), dtype)
            view = memoryview(buf).cast("B")
            got = 0
            while got < view.nbytes:
                n = f.readinto(view[got:])
                if not n:
                    raise _UserError(f"{name} is truncated")
                got += n
    except (OSError, EOFError, zipfile.BadZipFile, NotImplementedError) as e:
        raise _UserError(f"{name} is unreadable ({e})") from None
    except MemoryError:
        raise _UserError(f"{name}: not enough memory for shape {shape}, dtype {dtype}") from None
    return buf.reshape(shape[::-1]).T if fortran else buf.reshape(shape)


def _apply_npz(args, tmp):
    import zipfile

    import numpy as np

    import sparsemax_nb as sm
    from .. import _checks as D

    try:
        zin = zipfile.ZipFile(args.input)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise _UserError(f"{args.input}: not a readable .npz archive ({e})") from None
    with zin:
        members = _npz_members(zin, args.input)
        with _writing():
            zout = zipfile.ZipFile(tmp, "w", allowZip64=True)
        progress = _Progress(len(members), "sparsemax-nb apply", not args.no_progress)
        try:
            for key, info in members:
                z = _read_npz_member(zin, info, key, args.input)
                if z.dtype.fields is not None:
                    raise _UserError(f"{args.input}[{key!r}] has dtype {z.dtype}; expected "
                                     "a numeric (real) array")
                dt = _result_dtype(z.dtype, args, f"{args.input}[{key!r}]")
                try:
                    D.axis_index(args.axis, z.ndim)
                except np.exceptions.AxisError as e:
                    raise _UserError(f"{args.input}[{key!r}]: {e}") from None
                z = z.astype(dt, copy=False)
                if args.threshold_only:
                    tau, k = sm.sparsemax_threshold(z, axis=args.axis, method=args.method)
                    results = {f"{key}_tau": tau, f"{key}_support_size": k}
                else:
                    results = {key: sm.sparsemax(z, axis=args.axis, method=args.method)}
                del z
                for out_key, arr in results.items():
                    with _writing(), zout.open(out_key + ".npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)
                progress.update(1)
        except BaseException:
            try:
                zout.close()
            except (OSError, ValueError):
                pass
            raise
        else:
            with _writing():
                zout.close()
        finally:
            progress.close()


# --------------------------------------------------------------------------- Zarr
def _apply_zarr(args, tmp):
    try:
        import dask.array as da
        import zarr
    except ImportError:
        raise _UserError(
            "Zarr stores need the optional dependencies: pip install 'sparsemax_nb[dask]'"
        ) from None
    import numpy as np

    import sparsemax_nb as sm

    try:
        node = zarr.open(args.input, mode="r")
    except Exception as e:  # zarr raises several kinds for a bad store
        raise _UserError(f"{args.input}: not a readable Zarr store ({e})") from None
    if not hasattr(node, "shape"):
        raise _UserError(f"{args.input}: a Zarr group; give the path of one array in it")
    z = da.from_zarr(node)
    dt = _result_dtype(z.dtype, args, args.input)
    if args.dtype:
        z = z.astype(dt)
    try:
        if args.threshold_only:
            tau, k = sm.sparsemax_threshold(z, axis=args.axis, method=args.method)
            targets = [(tau, "tau"), (k, "support_size")]
        else:
            p = sm.sparsemax(z, axis=args.axis, method=args.method)
            targets = [(p, None)]
    except np.exceptions.AxisError as e:
        raise _UserError(f"{args.input}: {e}") from None
    client = None
    if args.scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise _UserError("--scheduler needs the 'distributed' package") from None
        try:
            client = Client(args.scheduler, timeout="10s")
        except OSError as e:
            raise _UserError(f"cannot reach the Dask scheduler at {args.scheduler} ({e})") from None
    try:
        with _writing():
            os.rmdir(tmp)  # zarr creates the store itself
            if args.threshold_only:
                group = zarr.open_group(tmp, mode="w")
                for arr, name in targets:
                    arr.to_zarr(group.store, component=name, overwrite=True)
            else:
                targets[0][0].to_zarr(tmp, overwrite=True)
    finally:
        if client is not None:
            client.close()


# --------------------------------------------------------------------------- main
def _on_signal(signum, frame):
    import signal

    # A second signal must not cut the cleanup that the first one starts.
    for name in _CLEANUP_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    if _signal_state["hold"]:
        _signal_state["pending"] = signum
        return
    raise _Signalled(signum)


def _catch_signals() -> dict:
    """Route ``_CLEANUP_SIGNALS`` to ``_on_signal``; returns the handlers to put back.

    Only the main thread may set handlers: elsewhere (an embedding program) nothing is set.
    A signal the caller ignores (``nohup`` ignores SIGHUP) stays ignored.
    """
    import signal
    import threading

    previous: dict = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for name in _CLEANUP_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is None or signal.getsignal(sig) is signal.SIG_IGN:
            continue
        previous[sig] = signal.signal(sig, _on_signal)
    return previous


def main(args):
    import signal

    _signal_state.update(hold=0, pending=None)
    previous = _catch_signals()
    try:
        return _run(args)
    except _Signalled as s:
        signum = s.signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
    name = signal.Signals(signum).name
    print(f"sparsemax-nb apply: stopped by {name}; no temporary file left", file=sys.stderr)
    sys.stderr.flush()
    if previous.get(signum) in (signal.SIG_DFL, None):
        # the temporary is gone: now end as the signal would have, so that the caller
        # (a shell, timeout, a scheduler) sees the usual "killed by SIGTERM" status
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    return 128 + signum


def _run(args):
    kind = None
    tmp = None
    out = args.output
    try:
        if not os.path.exists(args.input):
            raise _UserError(f"{args.input}: no such file or directory")
        if not os.access(args.input, os.R_OK):
            raise _UserError(f"{args.input}: permission denied")
        kind = _kind(args.input)
        # a symbolic link OUT is written through: its target is what gets replaced
        out = os.path.realpath(args.output) if os.path.islink(args.output) else args.output
        if os.path.exists(out) and _same_file(args.input, out) and not args.in_place:
            raise _UserError(
                f"OUT is the input file {args.input}; pass --in-place to replace it"
            )
        if args.block_mb <= 0:
            raise _UserError("--block-mb must be positive")
        if args.scheduler and kind != "zarr":
            raise _UserError("--scheduler applies to Zarr stores only")
        parent = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(parent):
            raise _UserError(f"{args.output}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise _UserError(f"{args.output}: directory {parent} is not writable")
        if kind != "zarr" and os.path.isdir(out):
            raise _UserError(f"OUT {args.output} is a directory; give the name of a .{kind} file")
        if kind == "zarr" and os.path.lexists(out):
            if not os.path.isdir(out):
                raise _UserError(f"OUT {args.output} exists and is not a Zarr store")
            if not _is_zarr_store_or_empty(out):
                raise _UserError(
                    f"OUT {args.output} is a directory but not a Zarr store; refusing to replace it"
                )
        _sweep_stale(out)
        mode = _final_mode(out, directory=(kind == "zarr"))
        with _signals_held(), _writing():
            tmp = _temp_beside(out, directory=(kind == "zarr"))
        {"npy": _apply_npy, "npz": _apply_npz, "zarr": _apply_zarr}[kind](args, tmp)
        with _signals_held(), _writing():
            _commit(tmp, out, mode)
            tmp = None
        return 0
    except _UserError as e:
        print(f"sparsemax-nb apply: error: {e}", file=sys.stderr)
        return ERROR
    except _WriteFailed as w:
        # the directory written in: the target's, for a symbolic link OUT
        where = os.path.dirname(os.path.abspath(out)) or "."
        msg = w.error.strerror or str(w.error) or type(w.error).__name__
        print(f"sparsemax-nb apply: error: cannot write {args.output} (in {where}): {msg}",
              file=sys.stderr)
        return ERROR
    except (OSError, ValueError, TypeError, EOFError) as e:
        where = getattr(e, "filename", None) or args.input
        msg = getattr(e, "strerror", None) or str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"sparsemax-nb apply: error: {where}: {msg}", file=sys.stderr)
        return ERROR
    finally:
        _remove(tmp)
