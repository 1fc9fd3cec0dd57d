"""tinygrad_mlp: a small, exact reverse-mode autodiff on NumPy, and the MLP of a backprop practical."""
from . import functional, init, nn, optim, reference
from .gradcheck import GradcheckError, directional_check, gradcheck
from .nn import MLP, Linear
from .tensor import GraphFreedError, Tensor, is_grad_enabled, no_grad, tape_size

__version__ = "0.1.0"
__all__ = ["Tensor", "no_grad", "is_grad_enabled", "tape_size", "GraphFreedError", "gradcheck",
           "directional_check", "GradcheckError", "MLP", "Linear", "functional", "init", "nn", "optim",
           "reference"]
