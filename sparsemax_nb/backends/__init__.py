"""The backends, siblings with the same operation names (``asarray``, ``forward``,
``threshold``, ``jvp``, ``loss``, ``proportions``), and the table that picks one.

============ ================================================ ===========================
backend      arrays                                           module
============ ================================================ ===========================
``dask``     ``dask.array.Array``                             :mod:`.dask` (lazy; blocks
                                                              call the backend of their
                                                              own type)
``cuda``     objects with ``__cuda_array_interface__`` (CuPy, :mod:`.cuda` (host side) and
             Numba device arrays, the simulator's arrays)     :mod:`.cuda_kernels`
``cpu``      anything else ``numpy.asarray`` takes            :mod:`.cpu`
============ ================================================ ===========================

A new backend is one module with those operations and one row of :data:`TABLE`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Callable

import numpy as np

from .. import _checks
from . import _threads  # noqa: F401  (registers the fork hooks of the thread policy)


def _is_dask(x: Any) -> bool:
    return type(x).__module__.startswith("dask.")


def _is_cuda(x: Any) -> bool:
    # Numba's simulator arrays (NUMBA_ENABLE_CUDASIM=1) have no __cuda_array_interface__.
    return hasattr(x, "__cuda_array_interface__") or type(x).__name__ == "FakeCUDAArray"


# (predicate on one argument, backend module), first match wins; host arrays fall through.
TABLE: list[tuple[Callable[[Any], bool], str]] = [
    (_is_dask, "sparsemax_nb.backends.dask"),
    (_is_cuda, "sparsemax_nb.backends.cuda"),
]
HOST = "sparsemax_nb.backends.cpu"


_HOST_TYPES = (np.ndarray, list, tuple, float, int)
_HOST_MODULE: list[ModuleType] = []


def _host() -> ModuleType:
    if not _HOST_MODULE:
        _HOST_MODULE.append(importlib.import_module(HOST))
    return _HOST_MODULE[0]


def kind(x: Any) -> str | None:
    """The backend module for one argument, or None for host data (and ``None``)."""
    if x is None:
        return None
    for pred, mod in TABLE:
        if pred(x):
            return mod
    return None


def pick(*xs: Any) -> ModuleType:
    """The backend for a call's array arguments.

    Dask wins over everything (its blocks may hold any other kind); otherwise all
    non-host arguments must be of one kind, and host arguments may not be mixed with
    device ones.
    """
    for x in xs:
        if x is not None and type(x) not in _HOST_TYPES:
            break
    else:
        return _host()
    found = {kind(x) for x in xs if x is not None}
    if "sparsemax_nb.backends.dask" in found:
        return importlib.import_module("sparsemax_nb.backends.dask")
    found.discard(None)
    if not found:
        return _host()
    (mod,) = found
    assert mod is not None
    return importlib.import_module(mod)


def host_kind_error(names: list[str]) -> TypeError:
    return _checks.mixed_arrays_error(names)
