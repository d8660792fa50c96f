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
"""

import os
import sys

ERROR = 2


class _UserError(Exception):
    """A problem with the user's input: reported in one line, exit status 2."""


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
    """A progress bar on stderr: tqdm when installed, else a plain one."""

    def __init__(self, total, label, enabled):
        self.total = max(int(total), 1)
        self.done = 0
        self.bar = None
        self.enabled = enabled
        self.label = label
        if not enabled:
            return
        try:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="B", unit_scale=True, desc=label, file=sys.stderr)
        except ImportError:
            self._draw()

    def _draw(self):
        frac = self.done / self.total
        n = int(30 * frac)
        sys.stderr.write(f"\r{self.label} [{'#' * n}{'.' * (30 - n)}] {100 * frac:5.1f}%")
        sys.stderr.flush()

    def update(self, n):
        if not self.enabled:
            return
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        else:
            self._draw()

    def close(self):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        else:
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


def _temp_beside(path, directory=False):
    import tempfile

    parent = os.path.dirname(os.path.abspath(path)) or "."
    base = os.path.basename(path.rstrip("/\\"))
    if directory:
        return tempfile.mkdtemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
    os.close(fd)
    return tmp


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


def _commit(tmp, out):
    """Move the finished ``tmp`` onto ``out`` (a rename; directories via a side name)."""
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
    return shape, fortran, dtype, f.tell()


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
        size = int(np.prod(shape, dtype=np.int64))
        need = offset + size * dtype.itemsize
        have = os.fstat(fin.fileno()).st_size
        if have < need:
            raise _UserError(
                f"{args.input} is truncated: {have} bytes, the header announces {need}"
            )
        # Fortran order is the C-order transpose: same bytes, reversed axes.
        cshape = tuple(shape[::-1]) if fortran else tuple(shape)
        cax = ndim - 1 - ax if fortran else ax
        A = int(np.prod(cshape[:cax], dtype=np.int64))
        K = cshape[cax]
        B = int(np.prod(cshape[cax + 1 :], dtype=np.int64))
        budget = max(int(args.block_mb * 2**20) // dtype.itemsize, 1)
        # Blocks: whole slabs a0:a1 (contiguous) when a slab fits the budget, else pieces
        # b0:b1 of one slab, read row by row of the core axis.
        if K * B <= budget or K == 0 or B == 0:
            step_a = max(budget // max(K * B, 1), 1)
            blocks = [(a, min(a + step_a, A), 0, B) for a in range(0, A, step_a)]
        else:
            step_b = max(budget // max(K, 1), 1)
            blocks = [(a, a + 1, b, min(b + step_b, B)) for a in range(A) for b in range(0, B, step_b)]
        progress = _Progress(size * dtype.itemsize, "sparsemax-nb apply", not args.no_progress)
        tau = kk = fout = None
        out_offset = 0
        if args.threshold_only:
            tau = np.empty((A, B), dt)
            kk = np.empty((A, B), np.int64)
        else:
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=dt, shape=tuple(shape),
                                           fortran_order=fortran)
            out_offset = mm.offset
            del mm
            fout = open(tmp, "r+b")
        try:
            _pipeline(args, fin, offset, dtype, dt, A, K, B, blocks, fout, out_offset,
                      tau, kk, progress)
        finally:
            progress.close()
            if fout is not None:
                fout.close()
    if args.threshold_only:
        batch = cshape[:cax] + cshape[cax + 1 :]
        tau = tau.reshape(batch)
        kk = kk.reshape(batch)
        if fortran:
            tau, kk = tau.T, kk.T
        with open(tmp, "wb") as f:
            np.savez(f, tau=tau, support_size=kk)


def _pipeline(args, fin, offset, dtype, dt, A, K, B, blocks, fout, out_offset, tau, kk,
              progress):
    """Read block i+1 and write block i-1 in two threads while block i is computed.

    File reads and writes and the kernels all release the GIL, so disk and CPU overlap.
    At most two input and two output blocks are alive at a time.
    """
    from concurrent.futures import ThreadPoolExecutor

    import sparsemax_nb as sm

    def read(i):
        a0, a1, b0, b1 = blocks[i]
        return _read_block(fin, offset, dtype, A, K, B, a0, a1, b0, b1)

    with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer:
        nxt = reader.submit(read, 0) if blocks else None
        pending = None
        for i, (a0, a1, b0, b1) in enumerate(blocks):
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
                pending = writer.submit(
                    _write_block, fout, out_offset, pb, A, K, B, a0, a1, b0, b1
                )
            progress.update(zb.size * dtype.itemsize)
            del zb, rows
        if pending is not None:
            pending.result()


def _read_block(f, offset, dtype, A, K, B, a0, a1, b0, b1):
    import numpy as np

    item = dtype.itemsize
    if b0 == 0 and b1 == B:
        f.seek(offset + a0 * K * B * item)
        n = (a1 - a0) * K * B
        buf = np.empty(n, dtype)
        got = f.readinto(memoryview(buf).cast("B"))
        if got != n * item:
            raise _UserError(f"{f.name}: unexpected end of file")
        return buf.reshape(a1 - a0, K, B)
    buf = np.empty((1, K, b1 - b0), dtype)
    for k in range(K):
        f.seek(offset + ((a0 * K + k) * B + b0) * item)
        row = buf[0, k]
        if f.readinto(memoryview(row).cast("B")) != row.nbytes:
            raise _UserError(f"{f.name}: unexpected end of file")
    return buf


def _write_block(f, offset, pb, A, K, B, a0, a1, b0, b1):
    item = pb.dtype.itemsize
    if b0 == 0 and b1 == B:
        f.seek(offset + a0 * K * B * item)
        f.write(memoryview(pb.reshape(-1)).cast("B"))
        return
    for k in range(K):
        f.seek(offset + ((a0 * K + k) * B + b0) * item)
        f.write(memoryview(pb[0, k].copy()).cast("B"))


# --------------------------------------------------------------------------- .npz
def _apply_npz(args, tmp):
    import zipfile

    import numpy as np

    import sparsemax_nb as sm
    from .. import _checks as D

    try:
        archive = np.load(args.input, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise _UserError(f"{args.input}: not a readable .npz archive ({e})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _UserError(f"{args.input}: not an .npz archive")
    with archive, zipfile.ZipFile(tmp, "w", allowZip64=True) as zout:
        names = list(archive.files)
        progress = _Progress(len(names), "sparsemax-nb apply", not args.no_progress)
        try:
            for name in names:
                try:
                    z = archive[name]
                except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
                    raise _UserError(f"{args.input}: array {name!r} is unreadable ({e})") from None
                dt = _result_dtype(z.dtype, args, f"{args.input}[{name!r}]")
                try:
                    D.axis_index(args.axis, z.ndim)
                except np.exceptions.AxisError as e:
                    raise _UserError(f"{args.input}[{name!r}]: {e}") from None
                z = z.astype(dt, copy=False)
                if args.threshold_only:
                    tau, k = sm.sparsemax_threshold(z, axis=args.axis, method=args.method)
                    results = {f"{name}_tau": tau, f"{name}_support_size": k}
                else:
                    results = {name: sm.sparsemax(z, axis=args.axis, method=args.method)}
                del z
                for key, arr in results.items():
                    with zout.open(key + ".npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)
                progress.update(1)
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
def main(args):
    kind = None
    tmp = None
    try:
        if not os.path.exists(args.input):
            raise _UserError(f"{args.input}: no such file or directory")
        if not os.access(args.input, os.R_OK):
            raise _UserError(f"{args.input}: permission denied")
        kind = _kind(args.input)
        if os.path.exists(args.output) and _same_file(args.input, args.output) and not args.in_place:
            raise _UserError(
                f"OUT is the input file {args.input}; pass --in-place to replace it"
            )
        if args.block_mb <= 0:
            raise _UserError("--block-mb must be positive")
        if args.scheduler and kind != "zarr":
            raise _UserError("--scheduler applies to Zarr stores only")
        parent = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(parent):
            raise _UserError(f"{args.output}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise _UserError(f"{args.output}: directory {parent} is not writable")
        tmp = _temp_beside(args.output, directory=(kind == "zarr"))
        {"npy": _apply_npy, "npz": _apply_npz, "zarr": _apply_zarr}[kind](args, tmp)
        _commit(tmp, args.output)
        tmp = None
        return 0
    except _UserError as e:
        print(f"sparsemax-nb apply: error: {e}", file=sys.stderr)
        return ERROR
    except (OSError, ValueError, TypeError, EOFError) as e:
        where = getattr(e, "filename", None) or args.input
        msg = getattr(e, "strerror", None) or str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"sparsemax-nb apply: error: {where}: {msg}", file=sys.stderr)
        return ERROR
    finally:
        _remove(tmp)
