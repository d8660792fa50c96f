"""sparsemax_nb: exact sparsemax, its Jacobian and its loss, compiled with Numba.

Sparsemax (Martins & Astudillo, ICML 2016) is the Euclidean projection onto the probability
simplex: like softmax it maps scores to probabilities, unlike softmax it gives exact zeros.
"""

from .api import (
    entmax15,
    entmax15_jvp,
    entmax15_loss,
    entmax15_loss_and_grad,
    entmax15_loss_grad,
    entmax15_threshold,
    entmax_bisect,
    entmax_bisect_alpha_vjp,
    entmax_bisect_jvp,
    entmax_bisect_loss,
    entmax_bisect_loss_and_grad,
    entmax_bisect_loss_grad,
    entmax_bisect_threshold,
    labels_to_proportions,
    sparsemax,
    sparsemax_jvp,
    sparsemax_loss,
    sparsemax_loss_and_grad,
    sparsemax_loss_grad,
    sparsemax_threshold,
)
from .apps.attention import sparsemax_attention, sparsemax_attention_vjp
from .numba import overloads as _overloads  # noqa: F401  (registers the @njit overloads; compiles nothing)

__version__ = "0.1.0"

__all__ = [
    "sparsemax",
    "sparsemax_threshold",
    "sparsemax_jvp",
    "sparsemax_loss",
    "sparsemax_loss_grad",
    "sparsemax_loss_and_grad",
    "labels_to_proportions",
    "sparsemax_attention",
    "sparsemax_attention_vjp",
    "entmax15",
    "entmax15_threshold",
    "entmax15_jvp",
    "entmax15_loss",
    "entmax15_loss_grad",
    "entmax15_loss_and_grad",
    "entmax_bisect",
    "entmax_bisect_threshold",
    "entmax_bisect_jvp",
    "entmax_bisect_loss",
    "entmax_bisect_loss_grad",
    "entmax_bisect_loss_and_grad",
    "entmax_bisect_alpha_vjp",
]
