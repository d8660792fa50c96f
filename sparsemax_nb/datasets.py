"""Compatibility path: :mod:`sparsemax_nb.apps.datasets`."""

from .apps.datasets import *  # noqa: F401,F403
from .apps.datasets import __all__  # noqa: F401
