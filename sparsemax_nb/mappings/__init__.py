"""The mappings: the maths of each member of the family, backend-free.

A mapping is a module of ``@njit`` row functions with one shared interface, which every
backend builds its kernels from (the CPU drivers, the gufuncs, the ``@njit`` overloads):

=================================================== ==========================================
``NAME``                                            the registry key
``SCRATCH``                                         float64 scratch entries per row entry
``SMALL_K``, ``small_rows(z, p, tau, k, lo, hi,``   optional short-row path (``SMALL_K = 0``
``buf, want_p, theta)``                             and ``_rows.no_small_rows`` without one)
``BIG_ROWS``                                        whether the threaded long-row path applies
``threshold(z, buf, method, theta)``                ``(m, tau, k)``: max, shifted tau, support
``tau_of(m, tau, theta)``                           tau in the row's own coordinates
``write(z, p, m, tau, k, theta)``                   the mapping's output row
``jvp(p, v, out, theta)``                           Jacobian-vector product at output ``p``
``loss_label(z, y, m, tau, k, theta, scale,``       loss for class ``y`` (and its gradient,
``grad, want_grad)``                                scaled, when ``want_grad``)
``loss_dist(z, q, m, tau, k, theta, scale,``        loss for a target distribution ``q``
``grad, want_grad)``
=================================================== ==========================================

Two optional hooks, used by the CPU drivers when present (dropped at build time when
absent): ``threshold_select(z, buf, theta)``, a threshold specialised to the linear-time
method, and ``small_loss_labels(z, y, ignore, scale, loss, grad, want_grad, lo, hi,
theta)``, the loss with labels for rows of at most ``SMALL_K`` entries. A mapping with a
parameter may define ``theta_vjp(p, g, theta)``, ``sum g * dp/dtheta`` for one row (the
backends that have the ``theta_vjp`` operation build it from there).

``theta`` is the mapping's parameter for the row (a float; mappings without one ignore it),
``k == 0`` marks a row whose outputs are NaN. The "shifted tau" is each mapping's own
representation of its threshold (the entmax mappings carry it offset, see ``_entmax``):
only ``tau_of`` gives the public value. A mapping with a parameter also defines
``THETA_NAME`` and ``check_theta(x)`` (the validated float64 values, or a clear error).
Adding a mapping is one module here and one line in :data:`REGISTRY`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# name -> module (imported on first use, so unused mappings cost nothing at import)
REGISTRY = {
    "sparsemax": "sparsemax_nb.mappings.sparsemax",
    "sparsemax_temperature": "sparsemax_nb.mappings.sparsemax_temperature",
    "entmax15": "sparsemax_nb.mappings.entmax15",
    "entmax_bisect": "sparsemax_nb.mappings.entmax_bisect",
}


_LOADED: dict[str, ModuleType] = {}


def get(name: str) -> ModuleType:
    """The mapping module registered as ``name``."""
    mod = _LOADED.get(name)
    if mod is None:
        try:
            path = REGISTRY[name]
        except KeyError:
            raise ValueError(
                f"unknown mapping {name!r}; registered: {', '.join(sorted(REGISTRY))}"
            ) from None
        mod = _LOADED[name] = importlib.import_module(path)
    return mod
