"""Compatibility path: :mod:`sparsemax_nb.numba.gufuncs` (built lazily, on first use)."""

from .numba.gufuncs import __all__, __dir__, __getattr__  # noqa: F401
