"""Timing and formatting shared by the bench sections (a leaf of ``cli/bench``).

Kernels and references run in rounds, every one once per round in a rotating order, and
each ratio pairs two times from the same round: on a shared machine a slow spell then
lands on both sides of a ratio.
"""

import timeit

import numpy as np

_REFS = ("copyto", "softmax", "numpy_sparsemax", "entmax", "optax")
_REF_LABEL = {
    "copyto": "x copyto",
    "softmax": "x softmax",
    "numpy_sparsemax": "x np-spmax",
    "entmax": "x entmax",
    "optax": "x optax",
}


def _time_rounds(fns, number, repeat, on_round=None):
    """Median-ready per-round times: ``{name: [seconds per call, ...]}``.

    All ``fns`` run in every round, in an order that rotates by one each round, so a slow
    spell of the (shared) machine lands on every kernel rather than on one.
    """
    names = list(fns)
    times = {n: [] for n in names}
    for r in range(repeat):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t = timeit.Timer(fns[name]).timeit(number)
            times[name].append(t / number)
        if on_round is not None:
            on_round()
    return times


def _median_ratio(a, b):
    """Median over rounds of ``a[i] / b[i]`` (same-round pairs cancel the load drift)."""
    if a is None or b is None:
        return None
    return float(np.median(np.asarray(a) / np.asarray(b)))


def _fmt_time(t):
    if t is None:
        return "-"
    for unit, f in (("s", 1.0), ("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
        if t * f >= 1.0 or unit == "ns":
            return f"{t * f:7.3g} {unit:<2}"


def _fmt_ratio(r):
    return "-" if r is None else f"{r:.3g}"
