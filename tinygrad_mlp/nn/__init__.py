"""Layers (:class:`Linear`, :class:`MLP`), initialisers, optimisers and the model file format, on the engine."""
from . import init, optim
from .layers import MLP, Linear
from .optim import SGD, Adam, Optimizer
from .export import export_onnx, load_safetensors, save_safetensors
from .serialize import ModelFileError, load, save

__all__ = ["MLP", "Linear", "SGD", "Adam", "Optimizer", "init", "optim", "save", "load", "ModelFileError",
           "save_safetensors", "load_safetensors", "export_onnx"]
