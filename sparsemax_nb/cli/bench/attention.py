"""Sparse attention against a NumPy softmax attention of the same shape."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from ...apps.attention import sparsemax_attention
from ._timing import _median_ratio, _time_rounds


def _numpy_softmax_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray,
                             scale: float) -> tuple[np.ndarray, np.ndarray]:
    S = np.matmul(q, np.swapaxes(k, -1, -2)) * scale
    S -= S.max(axis=-1, keepdims=True)
    np.exp(S, out=S)
    S /= S.sum(axis=-1, keepdims=True)
    return np.matmul(S, v), S


def bench_attention(quick: bool = False) -> list[dict[str, Any]]:
    """Time :func:`sparsemax_attention` against a NumPy softmax attention of the same shape.

    Both run once in each round; the ratio is the median over rounds of the paired times.

    Parameters
    ----------
    quick : bool, optional
        Fewer shapes and rounds (a few seconds).

    Returns
    -------
    list of dict
        One per shape: ``shape`` (B, H, L, d), ``dtype``, ``sparsemax_s`` and ``softmax_s``
        (median seconds), ``ratio`` (sparsemax / softmax, paired by round),
        ``mean_support`` (keys attended per query) and ``threads`` (Numba threads).
    """
    shapes = [(4, 4, 128, 64)] if quick else [(4, 4, 128, 64), (2, 8, 512, 64), (1, 4, 1024, 64)]
    repeat = 5 if quick else 9
    rng = np.random.default_rng(0)
    out = []
    for B, H, L, d in shapes:
        q, k, v = (rng.standard_normal((B, H, L, d)) for _ in range(3))
        s = 1.0 / np.sqrt(d)
        sparsemax_attention(q, k, v)  # compile / warm up
        times = _time_rounds(
            {"sparsemax": lambda: sparsemax_attention(q, k, v),
             "softmax": lambda: _numpy_softmax_attention(q, k, v, s)},
            1, repeat,
        )
        t_sp, t_sm = times["sparsemax"], times["softmax"]
        _, w = sparsemax_attention(q, k, v)
        out.append(
            {
                "shape": (B, H, L, d),
                "dtype": "float64",
                "sparsemax_s": float(np.median(t_sp)),
                "softmax_s": float(np.median(t_sm)),
                "ratio": _median_ratio(t_sp, t_sm),
                "mean_support": float(np.count_nonzero(w) / (B * H * L)),
                "threads": numba.get_num_threads(),
            }
        )
    return out
