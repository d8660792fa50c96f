"""Compatibility path: :mod:`sparsemax_nb.apps.attention`."""

from .apps.attention import *  # noqa: F401,F403
from .apps.attention import __all__  # noqa: F401
