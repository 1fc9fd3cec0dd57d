"""The engine: primitives (forward + vjp), the Tensor and its per-thread tape, composite functions, gradcheck,
and the functional transforms (grad, hessian, hvp, jvp, jacobian, value_and_grad).

Nothing here imports from the rest of the package; every other layer builds on this one.
"""
from . import functional
from .gradcheck import GradcheckError, directional_check, gradcheck, gradgradcheck, tolerances
from .tensor import GraphFreedError, Tensor, is_grad_enabled, no_grad, tape_size
from .transforms import grad, hessian, hvp, jacobian, jvp, value_and_grad

__all__ = ["Tensor", "no_grad", "is_grad_enabled", "tape_size", "GraphFreedError", "functional",
           "gradcheck", "gradgradcheck", "directional_check", "GradcheckError", "tolerances",
           "grad", "hessian", "hvp", "jvp", "jacobian", "value_and_grad"]
