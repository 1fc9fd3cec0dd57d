"""tinygrad_mlp: a small, exact reverse-mode autodiff on NumPy, and the MLP of a backprop practical."""
from . import functional, init, nn, optim, reference
from .gradcheck import GradcheckError, directional_check, gradcheck, tolerances
from .nn import MLP, Linear
from .optim import SGD, Adam
from .serialize import ModelFileError, load, save
from .tensor import GraphFreedError, Tensor, is_grad_enabled, no_grad, tape_size

__version__ = "0.1.0"

# Modules that pull in scikit-learn or other heavy imports load on first use,
# so ``from tinygrad_mlp import Tensor`` stays quick.
_LAZY = {
    "MLPClassifier": ("estimators", "MLPClassifier"),
    "MLPRegressor": ("estimators", "MLPRegressor"),
    "worked_solution": ("render", "worked_solution"),
    "WorkedSolution": ("render", "WorkedSolution"),
    "train": ("training", "train"),
    "History": ("training", "History"),
    "DivergenceError": ("training", "DivergenceError"),
    "DivergenceWarning": ("training", "DivergenceWarning"),
    "compile": ("compiled", "compile"),
    "SpecError": ("exercise", "SpecError"),
    "builtin": ("exercise", "builtin"),
    "run_step": ("exercise", "run_step"),
}

__all__ = ["Tensor", "no_grad", "is_grad_enabled", "tape_size", "GraphFreedError", "gradcheck",
           "directional_check", "GradcheckError", "tolerances", "MLP", "Linear", "SGD", "Adam", "save", "load",
           "ModelFileError", "functional", "init", "nn", "optim", "reference",
           *(k for k in _LAZY if k != "compile")]  # a star import must not shadow the builtin compile


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
