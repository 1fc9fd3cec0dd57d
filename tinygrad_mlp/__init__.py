"""tinygrad_mlp: a small, exact reverse-mode autodiff on NumPy, and the MLP of a backprop practical."""
from . import autograd, nn
from .autograd import (GradcheckError, GraphFreedError, Tensor, directional_check, functional, gradcheck,
                       is_grad_enabled, no_grad, tape_size, tolerances)
from .nn import (MLP, SGD, Adam, Linear, ModelFileError, export_onnx, init, load, load_safetensors, optim, save,
                 save_safetensors)
from .practical import reference

__version__ = "0.1.0"

# Modules that pull in scikit-learn or other heavy imports load on first use,
# so ``from tinygrad_mlp import Tensor`` stays quick.
_LAZY = {
    "MLPClassifier": ("training.estimators", "MLPClassifier"),
    "MLPRegressor": ("training.estimators", "MLPRegressor"),
    "worked_solution": ("practical.exercise", "worked_solution"),
    "WorkedSolution": ("practical.render", "WorkedSolution"),
    "train": ("training.loop", "train"),
    "History": ("training.loop", "History"),
    "DivergenceError": ("training.loop", "DivergenceError"),
    "DivergenceWarning": ("training.loop", "DivergenceWarning"),
    "compile": ("compiler", "compile"),
    "SpecError": ("practical.exercise", "SpecError"),
    "builtin": ("practical.exercise", "builtin"),
    "run_step": ("practical.exercise", "run_step"),
    "check_answers": ("practical.check", "check_answers"),
}

__all__ = ["Tensor", "no_grad", "is_grad_enabled", "tape_size", "GraphFreedError", "gradcheck",
           "directional_check", "GradcheckError", "tolerances", "MLP", "Linear", "SGD", "Adam", "save", "load",
           "save_safetensors", "load_safetensors", "export_onnx",
           "ModelFileError", "autograd", "functional", "init", "nn", "optim", "reference",
           *(k for k in _LAZY if k != "compile")]  # a star import must not shadow the builtin compile


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
