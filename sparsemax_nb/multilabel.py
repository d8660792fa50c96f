"""Compatibility path: :mod:`sparsemax_nb.apps.multilabel`."""

from .apps.multilabel import *  # noqa: F401,F403
from .apps.multilabel import __all__  # noqa: F401
