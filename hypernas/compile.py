"""Compile an architecture graph into a torch module that runs it in topological order.

The module owns ordinary parameters named `<node>.<param>` (e.g. `c1.weight`), so it
trains like any `nn.Module`. The hypernetwork instead hands in an external dict with the
same names through `torch.func.functional_call`; both paths run the same `forward`.

Usage:
    model = compile_graph(G, ndim=1)                      # sequences (N, C, L)
    logits = model(x)
    logits = torch.func.functional_call(model, predicted, (x,))   # predicted weights
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx
import torch
from torch import nn

from hypernas.errors import DatasetError, GraphError, OptionError
from hypernas.graph import GraphInfo, validate
from hypernas.ops import RunContext


class Program:
    """The executable form of a validated graph: ops in order, each with its input indices.

    `run(x, params)` takes parameters by their flat names (`<node>.<param>`). It is what a
    `GraphModule` runs with its own weights, and what the hypernetwork runs with predicted
    ones, without building a module.
    """

    def __init__(self, info: GraphInfo, ndim: int):
        if ndim not in (1, 2):
            raise GraphError(f"ndim must be 1 (sequences) or 2 (images), got {ndim}")
        self.ndim = ndim
        self.degenerate = info.degenerate
        index = {n.name: i for i, n in enumerate(info.nodes)}
        self.param_shapes: dict[str, tuple[int, ...]] = {}  # flat name -> shape, in node order
        self.buffer_shapes: dict[str, tuple[int, ...]] = {}
        self.steps = []  # (key, op, attrs, input indices, names of its tensors)
        self.out_shapes = [n.shape for n in info.nodes]  # (channels, stride) of each step's value
        for n in info.nodes:
            key = str(n.name)
            params = n.op.param_shapes(n.attrs, list(n.in_shapes), ndim)
            buffers = n.op.buffer_shapes(n.attrs, list(n.in_shapes))
            self.param_shapes.update({f"{key}.{k}": v for k, v in params.items()})
            self.buffer_shapes.update({f"{key}.{k}": v for k, v in buffers.items()})
            self.steps.append((key, n.op, n.attrs, tuple(index[p] for p in n.inputs), tuple(params) + tuple(buffers)))
        # After step j, the values whose last consumer it is can go (without autograd they are
        # then freed): a deep network holds a few activations at a time, not one per node.
        last_use: dict[int, int] = {}
        for j, (*_, inputs, _names) in enumerate(self.steps):
            for i in inputs:
                last_use[i] = j
        self.release = [tuple(i for i in set(inputs) if last_use[i] == j) for j, (*_, inputs, _n) in enumerate(self.steps)]

    def run(self, x: torch.Tensor, params: Mapping[str, torch.Tensor], ctx: RunContext) -> torch.Tensor:
        """(N, C, *spatial) -> (N, classes). Missing buffers mean BatchNorm uses batch statistics."""
        if x.dim() != self.ndim + 2:
            raise DatasetError(f"expected input of shape (N, C, {'L' if self.ndim == 1 else 'H, W'}), got {tuple(x.shape)}")
        values: list[torch.Tensor | None] = []
        for (key, op, attrs, inputs, names), release in zip(self.steps, self.release):
            if not inputs:  # the input node
                values.append(x)
                continue
            p = {name: params[f"{key}.{name}"] for name in names if f"{key}.{name}" in params}
            values.append(op.forward(attrs, [values[i] for i in inputs], p, ctx))
            for i in release:
                values[i] = None
        return values[-1]


class _Node(nn.Module):
    """One node of the graph: its op's parameters and buffers under the op's own names (weight,
    bias, ...), and what it computes, so that `repr(model)` lists the layers in the order they run."""

    def __init__(self, op, attrs: Mapping, inputs: list[str]):
        super().__init__()
        self.op_name = op.name
        self.shown = ", ".join(f"{k}={v}" for k, v in attrs.items() if op.attrs.get(k) != v)
        self.inputs = inputs

    def _get_name(self) -> str:  # what nn.Module's repr calls the module: its op
        return self.op_name

    def extra_repr(self) -> str:
        return self.shown + (f"; from {', '.join(self.inputs)}" if self.inputs else "")


class GraphModule(nn.Module):
    """A compiled architecture. Set `batch_stats = True` to make BatchNorm use batch statistics."""

    def __init__(self, G: nx.DiGraph, ndim: int, info: GraphInfo | None = None):
        super().__init__()
        self.program = Program(info or validate(G), ndim)
        self.ndim = ndim
        self.batch_stats = False
        self.degenerate = self.program.degenerate
        self.nodes = nn.ModuleDict()
        steps = self.program.steps
        for key, op, attrs, inputs, _ in steps:
            self.nodes[key] = _Node(op, attrs, [steps[i][0] for i in inputs])
        for flat, shape in self.program.param_shapes.items():
            key, name = flat.rsplit(".", 1)
            self.nodes[key].register_parameter(name, nn.Parameter(torch.empty(shape)))
        for flat, shape in self.program.buffer_shapes.items():
            key, name = flat.rsplit(".", 1)
            self.nodes[key].register_buffer(name, torch.ones(shape) if name == "running_var" else torch.zeros(shape))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan-out, as torch's ResNets) for conv/linear weights; BN at 1 and 0."""
        ops = {key: op.name for key, op, *_ in self.program.steps}
        for key, holder in self.nodes.items():
            for name, p in holder.named_parameters():
                if ops[key] == "bn":
                    nn.init.ones_(p) if name == "weight" else nn.init.zeros_(p)
                elif name == "weight":
                    fan_out = p.shape[0] * math.prod(p.shape[2:])
                    nn.init.normal_(p, 0.0, math.sqrt(2.0 / fan_out))
                else:
                    nn.init.zeros_(p)

    @torch.no_grad()
    def load_flat(self, weights: Mapping[str, torch.Tensor]) -> None:
        """Copy in weights named `<node>.<param>` (as the hypernetwork predicts them)."""
        for flat, tensor in weights.items():
            key, name = flat.rsplit(".", 1)
            getattr(self.nodes[key], name).copy_(tensor)

    def _tensors(self) -> dict[str, torch.Tensor]:
        # Read the live tensors each call: functional_call swaps them in and out.
        return {f"{key}.{name}": t for key, holder in self.nodes.items()
                for name, t in (*holder._parameters.items(), *holder._buffers.items())}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, *spatial) -> (N, classes) logits."""
        ctx = RunContext(self.ndim, training=self.training, batch_stats=self.batch_stats)
        return self.program.run(x, self._tensors(), ctx)

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor | Iterable[torch.Tensor]) -> None:
        """Set BatchNorm's running statistics to those of the batch `x` (or the average over a
        sequence of batches), and use them from now on: predicted or averaged weights come
        without running statistics of their own, and a model that normalises each batch by
        itself answers differently for one sample than inside a batch."""
        for k, batch in enumerate([x] if isinstance(x, torch.Tensor) else x):
            # momentum 1/(k+1) keeps the running statistics the mean over the batches seen
            self.program.run(batch, self._tensors(), RunContext(self.ndim, training=True, momentum=1.0 / (k + 1)))
        self.batch_stats = False


def compile_graph(G: nx.DiGraph, ndim: int) -> GraphModule:
    """Validate `G` and build its module for `ndim`-D data (1 = sequences, 2 = images)."""
    return GraphModule(G, ndim)


def create_model(space: str, arch: str, in_channels: int | None = None, num_classes: int | None = None,
                 ndim: int | None = None, *, data: Any = None, **options) -> GraphModule:
    """A trainable module from a space's name and an architecture's text (its string form,
    JSON, or a JSON file), with freshly initialised weights, as timm's `create_model`. It
    follows `data` (a `Dataset`: its channels, classes and dimension) where given; without it
    all three are needed, since a graph compiles for sequences and images alike.

    Usage: model = hypernas.create_model("nb201", "|nor_conv_3x3~0|+...", data=data, channels=8, cells=1)
    """
    from hypernas.spaces import get_space

    if data is not None:
        in_channels = data.in_channels if in_channels is None else in_channels
        num_classes = data.num_classes if num_classes is None else num_classes
        ndim = data.ndim if ndim is None else ndim
    if None in (in_channels, num_classes, ndim):
        raise OptionError("create_model needs data=, or in_channels, num_classes and ndim (1 for sequences, "
                          "2 for images)")
    return compile_graph(get_space(space).from_text(arch, in_channels, num_classes, **options), ndim)
