"""Layers and the MLP, in the practical's notation.

Layer l computes z^[l] = W^[l] h^[l−1] + b^[l] and h^[l] = g(z^[l]), with
W^[l] of shape (out, in) and h^[0] = x.  A batch holds one example per row,
so there z^[l] = h^[l−1] W^[l]ᵀ + b^[l], row by row the same equation.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np

from ..autograd import functional as F
from .init import as_initializer
from ..autograd.tensor import Tensor, _new

__all__ = ["Linear", "MLP", "as_tensor"]


def as_tensor(x: Any, name: str, dtype=np.float64) -> Tensor:
    """Turn user input into a float tensor, checking it at the boundary."""
    if isinstance(x, Tensor):
        arr = x.data
        if arr.dtype.kind != "f":
            raise TypeError(f"{name}: expected float data, got dtype {arr.dtype}")
    else:
        try:
            arr = np.asarray(x, dtype=dtype)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name}: expected numeric array-like data, got {type(x).__name__} ({e})") from None
        x = _new(arr)
    if arr.size == 0:
        raise ValueError(f"{name}: expected non-empty data, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")
    return x


def _overflowed(z: np.ndarray) -> bool:
    """One cheap test of a hidden z^[l]: is any entry inf or NaN?

    A saturating g hides an overflow (tanh(±inf) = ±1, relu(−inf) = 0), so every layer's z is
    checked, not only the output's.  z·z (one BLAS call, a fraction of isfinite().all()) is finite
    when every entry is, unless some |zᵢ| > 1e154; only then are the entries looked at one by one.
    """
    if math.isfinite(np.vdot(z, z)):
        return False
    return not np.isfinite(z).all()


def _check_forward(z: np.ndarray) -> None:
    """Finite x can still overflow W h + b (|x| ≈ 1e308): refuse the inf/NaN z^[L] it gives."""
    if not np.isfinite(z).all():
        raise ValueError("x: the forward pass overflowed to inf or NaN; expected inputs small enough for "
                         "W h + b to stay finite (scale the inputs)")


def _input_scale(c: Any, d0: int, dtype) -> np.ndarray | None:
    """MLP's ``input_scale``: None, or finite factors of shape () or (d₀,) in the model's dtype."""
    if c is None:
        return None
    try:
        arr = np.asarray(c.data if isinstance(c, Tensor) else c, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"input_scale: expected a number or {d0} numbers, got {type(c).__name__} ({e})") from None
    if arr.size == 1:
        arr = arr.reshape(())
    elif arr.shape in ((d0,), (1, d0)):
        arr = arr.reshape(d0)
    else:
        raise ValueError(f"input_scale: expected a number or one per input feature, shape ({d0},), "
                         f"got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("input_scale: expected finite values, got NaN or infinity")
    return arr.astype(dtype)


class Linear:
    """z = W h + b with W of shape (out_features, in_features): the practical's W^[l], b^[l].

    Parameters
    ----------
    in_features, out_features : int
        Units of h^[l−1] and of z^[l].
    weight_init, bias_init : number, callable or name
        See :func:`tinygrad_mlp.init.as_initializer`; a number fills every entry with it.
    rng : numpy.random.Generator, optional
        Source of the random initialisers' draws (W first, then b).
    dtype : float64 (default) or float32

    Calling it on one example h (a vector of ``in_features``) gives W h + b; on a batch
    (``n × in_features``, rows are examples) it gives h Wᵀ + b, each row that same z.
    """

    def __init__(self, in_features: int, out_features: int, weight_init="glorot_uniform",
                 bias_init="zeros", rng: np.random.Generator | None = None, dtype=np.float64) -> None:
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        rng = rng if rng is not None else np.random.default_rng()
        self.in_features, self.out_features = int(in_features), int(out_features)
        w = as_initializer(weight_init, "weight_init")((self.out_features, self.in_features), rng, dtype)
        b = as_initializer(bias_init, "bias_init")((self.out_features,), rng, dtype)
        self.W = Tensor(w, requires_grad=True)
        self.b = Tensor(b, requires_grad=True)

    def __call__(self, h: Tensor) -> Tensor:
        if type(h) is not Tensor:  # a direct call with user data: checked here, never per op inside an MLP
            h = as_tensor(h, "h", self.W.dtype)
            if h.ndim not in (1, 2) or h.shape[-1] != self.in_features:
                raise ValueError(f"h: expected {self.in_features} features, as a vector ({self.in_features},) or "
                                 f"a batch (n, {self.in_features}), got shape {h.shape}")
        return F.affine(self.W, h, self.b)

    def parameters(self) -> list[Tensor]:
        return [self.W, self.b]

    def named_parameters(self):
        """(name, tensor) pairs: ``("W", W)``, ``("b", b)`` — the attribute names, as in PyTorch."""
        yield "W", self.W
        yield "b", self.b

    def __repr__(self) -> str:
        return f"Linear(in_features={self.in_features}, out_features={self.out_features})"


class MLP:
    """A multilayer perceptron in one line: ``MLP([4, 4, 3, 3], hidden="tanh", output="identity")``.

    Parameters
    ----------
    sizes : sequence of int
        Units per layer, input first: [d₀, d₁, …, d_L].
    hidden : {"tanh", "sigmoid", "relu", "identity"}
        g of the hidden layers 1..L−1.
    output : {"identity", "softmax", "sigmoid"}
        g of the output layer L.
    weight_init, bias_init : number, callable or name
        A number means every entry equals it (the practical's 0.1).
    seed : int or numpy.random.Generator, optional
        Seeds the random initialisers, so runs repeat exactly.
    dtype : float64 (default) or float32
    input_scale : float or array of shape (d₀,), optional
        A fixed factor the inputs are multiplied by before layer 1, h^[0] = c ⊙ x (e.g. 1/16 for
        digit pixels 0..16), so the model takes raw inputs.  Not a parameter (never trained); it
        is saved and loaded with the model.  Applied by every forward (``__call__``, ``logits``,
        ``trace``, ``loss``).
    """

    def __init__(self, sizes: Sequence[int], hidden: str = "tanh", output: str = "identity",
                 weight_init="glorot_uniform", bias_init="zeros", seed=None, dtype=np.float64,
                 input_scale=None) -> None:
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) < 2:
            raise ValueError(f"sizes: expected a list of at least two layer sizes (input first), got {sizes!r}")
        if hidden not in F.ACTIVATIONS:
            raise ValueError(f"hidden: expected one of {sorted(F.ACTIVATIONS)}, got {hidden!r}")
        if output not in F.OUTPUTS:
            raise ValueError(f"output: expected one of {sorted(F.OUTPUTS)}, got {output!r}")
        try:
            dtype = np.dtype(dtype)
        except TypeError as e:
            raise TypeError(f"dtype: expected float64 or float32, got {dtype!r} ({e})") from None
        if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtype: expected float64 or float32, got {dtype}")
        if isinstance(seed, np.random.Generator):
            rng = seed
        elif seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0):
            rng = np.random.default_rng(seed)
        elif isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
            raise ValueError(f"seed: expected None, a non-negative int or a numpy.random.Generator, got {seed!r}")
        else:
            raise TypeError(f"seed: expected None, a non-negative int or a numpy.random.Generator, "
                            f"got {type(seed).__name__}")
        self.sizes = [int(s) if isinstance(s, numbers.Integral) and not isinstance(s, bool) else s for s in sizes]
        self.hidden, self.output, self.dtype = hidden, output, dtype
        self.layers = [Linear(i, o, weight_init, bias_init, rng, dtype)
                       for i, o in zip(self.sizes[:-1], self.sizes[1:])]
        # Every parameter lives in one contiguous buffer, in parameters() order, so that an update of
        # all of them can be one array operation (the compiled replay's SGD step is two NumPy calls,
        # not two per parameter).  Each .data is a view of it; in-place updates keep it so.
        params = self.parameters()
        flat = np.empty(sum(p.data.size for p in params), dtype)
        start = 0
        for p in params:
            view = flat[start:start + p.data.size].reshape(p.data.shape)
            view[...] = p.data
            p.data = view
            start += p.data.size
        self._g = F.ACTIVATIONS[hidden]
        self._g_out = F.OUTPUTS[output]
        self.input_scale = _input_scale(input_scale, self.sizes[0], dtype)

    @property
    def n_layers(self) -> int:
        """L, the number of weight layers."""
        return len(self.layers)

    def _input(self, x) -> Tensor:
        x = as_tensor(x, "x", self.dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.sizes[0]:
            raise ValueError(f"x: expected {self.sizes[0]} features, as a vector ({self.sizes[0]},) or a batch "
                             f"(n, {self.sizes[0]}), got shape {x.shape}")
        if self.input_scale is not None:
            x = x * self.input_scale
        return x

    def logits(self, x) -> Tensor:
        """z^[L], the output layer's pre-activation.

        Raises ValueError naming ``x`` when finite but huge inputs overflow the forward pass
        (e.g. |x| ≈ 1e308 through W^[1]), instead of returning inf or NaN.
        """
        h = self._input(x)
        # One errstate per forward, not per op: an overflow becomes the ValueError below, not a warning.
        with np.errstate(over="ignore", invalid="ignore"):
            g = self._g
            *hidden, last = self.layers
            for layer in hidden:
                z = F.affine(layer.W, h, layer.b)
                zd = z.data
                # A hidden tanh or sigmoid would turn an overflowed z^[l] into a confident ±1: check every layer.
                # vdot is one cheap pass; only an inf there (possibly a finite but huge z) pays the exact check.
                if not math.isfinite(np.vdot(zd, zd)) and not np.isfinite(zd).all():
                    _check_forward(zd)
                h = g(z)
            z = F.affine(last.W, h, last.b)
        _check_forward(z.data)
        return z

    def forward_logits(self, h: Tensor) -> Tensor:
        """z^[L] from h^[0] = ``h``, a Tensor already checked: the forward every training loop runs.

        One example (shape (d₀,)): z^[l] = W^[l] h^[l−1] + b^[l]; a batch (n, d₀), rows are
        examples: z^[l] = h^[l−1] W^[l]ᵀ + b^[l]; h^[l] = g(z^[l]) between layers.

        No checks here (that is :meth:`logits`' job, at the public boundary): the training loop
        validates its data once, then calls this for every step, where a per-step check would
        cost more than the arithmetic of a small layer.  An overflow shows up as a non-finite loss,
        which the loop checks.
        """
        g = self._g
        *hidden, last = self.layers
        for layer in hidden:
            h = g(F.affine(layer.W, h, layer.b))
        return F.affine(last.W, h, last.b)

    def __call__(self, x) -> Tensor:
        """h^[L] = g_out(z^[L]): the network's output ŷ (or p for softmax)."""
        return self._g_out(self.logits(x))

    forward = __call__

    def trace(self, x) -> tuple[list[Tensor], list[Tensor]]:
        """Forward pass keeping every z^[l] and h^[l] (l = 1..L), each with ``retain_grad()``.

        After a backward, ``z[l].grad`` is δ^[l+1] = ∂L/∂z^[l+1] and ``h[l].grad`` is ∂L/∂h^[l+1].
        """
        h = self._input(x)
        zs, hs = [], []
        with np.errstate(over="ignore", invalid="ignore"):
            for l, layer in enumerate(self.layers):
                z = layer(h).retain_grad()
                if _overflowed(z.data):
                    _check_forward(z.data)
                g = self._g_out if l == len(self.layers) - 1 else self._g
                h = g(z)
                if h is z:  # identity: give h its own node so both gradients can be read
                    h = z + 0.0
                h.retain_grad()
                zs.append(z)
                hs.append(h)
        _check_forward(zs[-1].data)
        return zs, hs

    def loss(self, x, y, loss: str = "cross_entropy", reduction: str = "sum") -> Tensor:
        """The training loss of a batch (or one example).

        Parameters
        ----------
        x : array_like
            One example (``d₀``,) or a batch (``n × d₀``, rows are examples).
        y : array_like
            Targets: one-hot rows (or integer class labels, cross-entropy only) or
            real vectors for the squared error; the output's shape.
        loss : {"cross_entropy", "squared_error"}
            ``cross_entropy`` is −Σₖ yₖ log pₖ = logsumexp(z^[L]) − yᵀz^[L], taken on the
            logits (the output must be softmax); ``squared_error`` is ½ Σᵢ (ŷᵢ − yᵢ)² on h^[L] = ŷ.
        reduction : {"sum", "mean"}
            Over the examples of a batch.  ``"sum"`` is the practical's batch loss, so its
            gradient is the sum of the per-example gradients; ``"mean"`` divides it by n.
        """
        if loss == "cross_entropy":
            if self.output != "softmax":
                raise ValueError(f"loss: cross_entropy needs output='softmax', this network's output is {self.output!r}")
            return F.cross_entropy(self.logits(x), y, reduction)
        if loss == "squared_error":
            return F.squared_error(self(x), y, reduction)
        raise ValueError(f"loss: expected one of {sorted(F.LOSSES)}, got {loss!r}")

    def parameters(self) -> list[Tensor]:
        """[W^[1], b^[1], …, W^[L], b^[L]]."""
        return [p for layer in self.layers for p in layer.parameters()]

    def named_parameters(self):
        """(name, tensor) pairs in ``parameters()`` order, named as :meth:`state_dict` keys them:
        ``W1, b1, …, WL, bL`` (PyTorch's named_parameters also match its state_dict keys)."""
        for l, layer in enumerate(self.layers, 1):
            yield f"W{l}", layer.W
            yield f"b{l}", layer.b

    def zero_grad(self) -> None:
        """Forget every parameter's ``.grad`` (backward accumulates, so call this between steps)."""
        for p in self.parameters():
            p.grad = None

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters, keyed ``W1, b1, …, WL, bL`` (1-based, as in the practical)."""
        out = {}
        for l, layer in enumerate(self.layers, 1):
            out[f"W{l}"] = layer.W.data.copy()
            out[f"b{l}"] = layer.b.data.copy()
        return out

    def load_state_dict(self, state: dict) -> None:
        """Copy parameters in; every key must be present with this network's shapes."""
        if not isinstance(state, dict):
            raise TypeError(f"state: expected a dict of arrays, got {type(state).__name__}")
        expected = {f"{k}{l}": getattr(layer, k) for l, layer in enumerate(self.layers, 1) for k in ("W", "b")}
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        if missing or extra:
            raise ValueError(f"state: expected keys {sorted(expected)}, missing {missing}, unexpected {extra}")
        new = {}
        for k, t in expected.items():
            arr = np.asarray(state[k])
            if arr.shape != t.shape:
                raise ValueError(f"state[{k!r}]: expected shape {t.shape}, got {arr.shape}")
            if arr.dtype.kind not in "iuf" or not np.isfinite(arr).all():
                raise ValueError(f"state[{k!r}]: expected finite numbers, got dtype {arr.dtype}")
            new[k] = arr
        for k, t in expected.items():  # only after every entry passed, so a bad dict changes nothing
            t.data[...] = new[k]

    def __repr__(self) -> str:
        return f"MLP({self.sizes}, hidden={self.hidden!r}, output={self.output!r})"
