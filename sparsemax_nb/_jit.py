"""The compile options every Numba kernel of the package uses (a leaf).

Kernels are cached on disk (``__pycache__`` beside the package, or ``NUMBA_CACHE_DIR``)
when Numba can find a writable cache directory for this package. Where it cannot (a
read-only install run under an arbitrary user id, as containers often are), Numba would
refuse ``cache=True`` at import time; the package then compiles in memory only, with one
warning, rather than failing to import.
"""

from __future__ import annotations

import warnings
from typing import Any


def _probe() -> None:  # pragma: no cover - never called, only located
    return None


def _cache_available() -> bool:
    try:
        from numba.core.caching import FunctionCache

        FunctionCache(_probe)
    except Exception as e:  # Numba raises RuntimeError("... no locator available ...")
        warnings.warn(
            "sparsemax_nb: no writable cache directory for compiled kernels (set "
            f"NUMBA_CACHE_DIR to one to keep them between processes); compiling in memory ({e})",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return True


CACHE = _cache_available()
# Every CPU kernel: cached on disk when possible, releases the GIL, NumPy's division rules.
JIT: dict[str, Any] = dict(cache=CACHE, nogil=True, error_model="numpy")
# Float64 sums that may use several vector lanes (the order is fixed per build).
JIT_SUMS: dict[str, Any] = dict(fastmath={"reassoc", "contract"}, **JIT)
