"""The ``entmax`` section of ``sparsemax-nb bench``: 1.5-entmax and alpha-entmax.

Timed as the sparsemax cases are (:mod:`sparsemax_nb.cli.bench.cpu`): every kernel and
reference in the same rounds, in an order that rotates, each figure the median over rounds
of the same-round ratio. References: ``numpy.copyto`` (the memory floor) and NumPy's
softmax; where installed, ``entmax.entmax15`` and ``entmax.entmax_bisect`` (PyTorch, CPU,
the same thread count), for which the maximum absolute error of both implementations
against a longdouble reference is reported too (the ``peers`` case).
"""

import numpy as np

# name, shape, dtype, peers?  (inputs: standard_normal)
_CASES = {
    "full": [("large batch", (16384, 1024), "float32", False),
             ("peers", (4096, 1000), "float32", True)],
    "quick": [("large batch", (512, 1024), "float32", False),
              ("peers", (256, 1000), "float32", True)],
    "tiny": [("large batch", (64, 256), "float32", False)],
}
ALPHA = 1.3
_REFS = ("copyto", "softmax", "entmax15_peer", "entmax_bisect_peer")
_LABEL = {"copyto": "x copyto", "softmax": "x softmax", "entmax15_peer": "x entmax15",
          "entmax_bisect_peer": "x e.bisect"}


def progress_steps(preset, repeat):
    """Progress-bar steps this section takes (one per timing round)."""
    return len(_CASES[preset]) * repeat


def _peers(threads):
    try:
        import entmax
        import torch
    except Exception:  # not installed (or broken): the columns are left out
        return {}
    torch.set_num_threads(threads)

    def make(fn, **kw):
        def bind(x):
            xt = torch.from_numpy(np.ascontiguousarray(x))

            def run():
                with torch.no_grad():
                    return fn(xt, dim=-1, **kw)

            return run

        return bind

    return {"entmax15_peer": make(entmax.entmax15),
            "entmax_bisect_peer": make(entmax.entmax_bisect, alpha=ALPHA)}


def _functions(x, labels, peers):
    import sparsemax_nb as sm
    from sparsemax_nb.cli.bench._numpy_ref import numpy_softmax

    o = np.empty_like(x)
    o2 = np.empty_like(x)
    p15 = sm.entmax15(x)
    pb = sm.entmax_bisect(x, ALPHA)
    v = np.random.default_rng(1).standard_normal(x.shape).astype(x.dtype)
    kernels = {
        "entmax15[sort]": lambda: sm.entmax15(x, out=o, method="sort"),
        "entmax15[select]": lambda: sm.entmax15(x, out=o, method="select"),
        "entmax15_threshold": lambda: sm.entmax15_threshold(x),
        "entmax15_jvp": lambda: sm.entmax15_jvp(p15, v, out=o2),
        "entmax15_loss_and_grad": lambda: sm.entmax15_loss_and_grad(x, labels),
        f"entmax_bisect[{ALPHA}]": lambda: sm.entmax_bisect(x, ALPHA, out=o),
        "entmax_bisect[1.5]": lambda: sm.entmax_bisect(x, 1.5, out=o),
        f"entmax_bisect_jvp[{ALPHA}]": lambda: sm.entmax_bisect_jvp(pb, v, ALPHA, out=o2),
        f"entmax_bisect_alpha_vjp[{ALPHA}]": lambda: sm.entmax_bisect_alpha_vjp(pb, v, ALPHA),
        f"entmax_bisect_loss_and_grad[{ALPHA}]":
            lambda: sm.entmax_bisect_loss_and_grad(x, labels, ALPHA),
    }
    refs = {"copyto": lambda: np.copyto(o, x), "softmax": lambda: numpy_softmax(x)}
    for name, make in peers.items():
        refs[name] = make(x)
    return kernels, refs


def _peer_errors(x, peers, rows_checked=64):
    """Max abs error against a longdouble bisection reference, ours and the peer's, on the
    first rows (the reference is slow)."""
    import sparsemax_nb as sm

    xs = np.asarray(x[:rows_checked], dtype=np.float64)
    ref15 = _reference(xs, 1.5)
    refb = _reference(xs, ALPHA)
    out = {
        "entmax15_ours": float(np.abs(sm.entmax15(xs) - ref15).max()),
        "entmax_bisect_ours": float(np.abs(sm.entmax_bisect(xs, ALPHA) - refb).max()),
    }
    if "entmax15_peer" in peers:
        out["entmax15_peer"] = float(np.abs(peers["entmax15_peer"](xs)().numpy() - ref15).max())
        out["entmax_bisect_peer"] = float(
            np.abs(peers["entmax_bisect_peer"](xs)().numpy() - refb).max())
    return out


def _reference(x, alpha):
    """alpha-entmax by bisection on tau in np.longdouble, run until the bracket stops
    shrinking (vectorised over rows; the slow reference for the error columns)."""
    ld = np.longdouble
    a1 = ld(alpha) - 1
    xs = a1 * (x.astype(ld) - x.max(axis=-1, keepdims=True).astype(ld))
    lo = np.full((x.shape[0], 1), ld(-1))
    hi = np.zeros((x.shape[0], 1), ld)
    for _ in range(80):  # 2^-80 < a longdouble ulp of tau in [-1, 0]
        mid = (lo + hi) / 2
        mass = (np.maximum(xs - mid, 0) ** (1 / a1)).sum(axis=-1, keepdims=True)
        up = mass >= 1
        lo = np.where(up, mid, lo)
        hi = np.where(up, hi, mid)
    p = np.maximum(xs - lo, 0) ** (1 / a1)
    return (p / p.sum(axis=-1, keepdims=True)).astype(np.float64)


def run(preset, repeat, seed, prog, threads):
    """Time the section; returns rows with the keys of the sparsemax cases' rows."""
    from sparsemax_nb.cli.bench._timing import _REFS as _SPARSEMAX_REFS
    from sparsemax_nb.cli.bench._timing import _median_ratio, _time_rounds

    peers = _peers(threads)
    rows = []
    rng = np.random.default_rng(seed)
    for case, shape, dtype, peers_wanted in _CASES[preset]:
        prog.describe(f"entmax {case} {shape} {dtype}")
        x = rng.standard_normal(shape, dtype=np.dtype(dtype))
        labels = rng.integers(0, shape[-1], size=shape[:-1])
        kernels, refs = _functions(x, labels, peers if peers_wanted else {})
        fns = {**kernels, **refs}
        for fn in fns.values():  # compile for this dtype and warm the caches
            fn()
        times = _time_rounds(fns, 1, repeat, on_round=prog.advance)
        errors = _peer_errors(x, peers) if peers_wanted else {}
        for name in fns:
            row = {"case": f"entmax {case}", "kernel": name, "reference": name in refs,
                   "dtype": dtype, "shape": list(shape), "s": 1.0, "number": 1,
                   "rounds": repeat, "median_s": float(np.median(times[name]))}
            for ref in _SPARSEMAX_REFS + _REFS:  # the keys of every bench row
                row[f"ratio_{ref}"] = _median_ratio(times[name], times.get(ref))
            if errors:
                row["max_abs_errors"] = errors
            rows.append(row)
    return rows


def print_rows(rows):
    """The section's table."""
    from sparsemax_nb.cli.bench._timing import _fmt_ratio, _fmt_time

    refs = [r for r in _REFS if any(row[f"ratio_{r}"] is not None for row in rows)]
    groups = {}
    for row in rows:
        groups.setdefault((row["case"], tuple(row["shape"]), row["dtype"]), []).append(row)
    for (case, shape, dtype), grp in groups.items():
        print(f"\n{case}: shape {shape} {dtype}, standard normal scores")
        print(f"  {'kernel':<34}{'median':>11}" + "".join(f"{_LABEL[r]:>12}" for r in refs))
        for row in grp:
            name = row["kernel"] + (" (ref)" if row["reference"] else "")
            print(f"  {name:<34}{_fmt_time(row['median_s']):>11}"
                  + "".join(f"{_fmt_ratio(row[f'ratio_{r}']):>12}" for r in refs))
        errs = grp[0].get("max_abs_errors")
        if errs:
            print("  max abs error vs a longdouble reference: "
                  + ", ".join(f"{k} {v:.2g}" for k, v in errs.items()))
