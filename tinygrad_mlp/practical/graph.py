"""The tape of one exercise step as a Graphviz DOT graph.

The forward pass of the step (the spec's network on its examples, up to the
loss) is run with the autograd :class:`~tinygrad_mlp.nn.MLP` and the tape
records it appended are read *before* any backward frees them.  Each record
``(prim, parents, weakref(out), ctx, args)`` becomes one node, labelled with
``prim.name`` and the output's shape; an edge runs from each parent's node
to the op that consumed it.  Leaves get their own nodes: the parameters
W^[l], b^[l] and the input x (one example: a vector, so z^[l] = W^[l] h^[l−1]
+ b^[l] appears as a matvec; a batch: a matrix with one row per example).
Constants that do not require grad (the targets y, the ½ of the squared
error) are not on the tape and are left out.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from ..autograd import tape as _tape
from ..autograd import tensor as _tensor

__all__ = ["step_records", "tape_dot", "write_graph"]


def step_records(spec):
    """Run the step's forward and return ``(records, leaf_names, loss)`` without calling backward.

    ``records`` are ``(output tensor, Record)`` pairs in the order the forward recorded them; ``leaf_names``
    maps ``id(tensor)`` to ``W^[l]``, ``b^[l]`` or ``x``.  The caller holds ``loss`` so the
    records stay alive; ``loss.backward()`` afterwards frees them from the tape.
    """
    from .exercise import build_model

    model = build_model(spec)
    names = {}
    for l, layer in enumerate(model.layers, 1):
        names[id(layer.W)] = f"W^[{l}]"
        names[id(layer.b)] = f"b^[{l}]"
    X = spec.X[0] if len(spec.X) == 1 else np.stack(spec.X)
    Y = spec.Y[0] if len(spec.Y) == 1 else np.stack(spec.Y)
    x = _tensor.Tensor(X)
    names[id(x)] = "x" if len(spec.X) == 1 else "X"
    tape = _tape.state().tape
    start = len(tape)
    loss = model.loss(x, Y, spec.loss, reduction="sum")
    records = [(ref(), ref()._rec) for ref in tape[start:]]
    return records, names, loss


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def tape_dot(spec, title: str | None = None) -> str:
    """The step's tape as DOT text: op nodes (name and shape), leaf nodes, data-flow edges."""
    records, names, loss = step_records(spec)
    lines = ["digraph tape {", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=11];',
             '  edge [color="#555555"];']
    if title:
        lines.append(f"  label={_quote(title)}; labelloc=t; fontname=\"Helvetica\";")
    node_of = {}  # id(tensor) -> node name
    leaves = []
    for k, (out, rec) in enumerate(records):
        prim, parents = rec.prim, rec.parents
        node = f"op{k}"
        shape = "×".join(str(d) for d in out.shape) if out is not None and out.shape else "scalar"
        final = out is loss
        style = ', style="filled,bold", fillcolor="#f4cccc"' if final else ', style=filled, fillcolor="#fff2cc"'
        label = f"{prim.name}\\n{shape}" + ("\\n(loss L)" if final else "")
        lines.append(f'  {node} [shape=box{style}, label="{label}"];')
        if out is not None:
            node_of[id(out)] = node
        for p in parents:
            if p is None:
                continue
            pid = id(p)
            if pid not in node_of:  # a leaf: parameter or input
                leaf = f"leaf{len(leaves)}"
                name = names.get(pid, "const")
                pshape = "×".join(str(d) for d in p.shape) if p.shape else "scalar"
                color = "#cfe2f3" if name.startswith(("W", "b")) else "#d9ead3"
                lines.append(f'  {leaf} [shape=ellipse, style=filled, fillcolor="{color}", '
                             f'label="{name}\\n{pshape}"];')
                node_of[pid] = leaf
                leaves.append(leaf)
            lines.append(f"  {node_of[pid]} -> {node};")
    lines.append("}")
    loss.backward()  # frees the records from this thread's tape
    return "\n".join(lines) + "\n"


INSTALL_DOT = ("an SVG of it needs Graphviz's `dot`, which is not installed (Debian/Ubuntu: "
               "apt-get install graphviz; macOS: brew install graphviz; or render it at any DOT viewer)")


def write_graph(spec, path, render: bool = True) -> list[str]:
    """Write the step's tape to ``path`` (DOT, atomically); also ``path`` with ``.svg`` if ``dot`` is on the PATH.

    Returns one line per outcome for the user: ``wrote PATH`` for each file written, and, when
    ``dot`` is missing, that an SVG needs it and how to install it.
    """
    from ..files import atomic_write_text
    from .exercise import SpecError

    p = Path(path)
    text = tape_dot(spec, title=f"tape of one step: {spec.name}")
    try:
        atomic_write_text(p, text, "--graph")
    except OSError as e:
        raise SpecError(f"--graph: cannot write {str(p)!r} ({e.strerror or e})") from None
    notes = [f"wrote {p}"]
    if not render:
        return notes
    dot = shutil.which("dot")
    if dot is None:
        notes.append(f"note: {INSTALL_DOT}; then: dot -Tsvg {p} -o {p.with_suffix('.svg')}")
        return notes
    svg = p.with_suffix(".svg")
    done = subprocess.run([dot, "-Tsvg", str(p), "-o", str(svg)], capture_output=True, text=True)
    if done.returncode == 0:
        notes.append(f"wrote {svg}")
    else:
        notes.append(f"note: dot could not render {p}: {done.stderr.strip()[:200]}")
    return notes
