"""Test-session set-up.

The CUDA tests run under Numba's simulator unless the caller chose otherwise: the variable
must be set before Numba is imported, so it is set here, first. ``NUMBA_ENABLE_CUDASIM=0``
runs them on a real GPU. The simulator changes nothing for the CPU kernels.
"""

import os
import sys

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
sys.path.insert(0, os.path.dirname(__file__))  # for ``import naive``

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")
