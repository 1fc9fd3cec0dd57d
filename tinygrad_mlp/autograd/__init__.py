"""The engine: primitives (forward + vjp), the Tensor and its per-thread tape, composite functions, gradcheck.

Nothing here imports from the rest of the package; every other layer builds on this one.
"""
from . import functional
from .gradcheck import GradcheckError, directional_check, gradcheck, tolerances
from .tensor import GraphFreedError, Tensor, is_grad_enabled, no_grad, tape_size

__all__ = ["Tensor", "no_grad", "is_grad_enabled", "tape_size", "GraphFreedError", "functional",
           "gradcheck", "directional_check", "GradcheckError", "tolerances"]
