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

import networkx as nx
import torch
from torch import nn

from hypernas.graph import GraphInfo, validate
from hypernas.ops import RunContext


class _NodeParams(nn.Module):
    """Holds one node's parameters and buffers under the op's own names (weight, bias, ...)."""


class GraphModule(nn.Module):
    """A compiled architecture. Set `batch_stats = True` to make BatchNorm use batch statistics."""

    def __init__(self, G: nx.DiGraph, ndim: int, info: GraphInfo | None = None):
        super().__init__()
        if ndim not in (1, 2):
            raise ValueError(f"ndim must be 1 (sequences) or 2 (images), got {ndim}")
        info = info or validate(G)
        self.ndim = ndim
        self.batch_stats = False
        self.degenerate = info.degenerate
        self.nodes = nn.ModuleDict()
        self._steps = []  # (key, op, attrs, indices of inputs), in execution order
        index = {}
        for i, n in enumerate(info.nodes):
            key = str(n.name)
            index[n.name] = i
            params = n.op.param_shapes(n.attrs, list(n.in_shapes), ndim)
            buffers = n.op.buffer_shapes(n.attrs, list(n.in_shapes))
            if params or buffers:
                holder = _NodeParams()
                for pname, shape in params.items():
                    holder.register_parameter(pname, nn.Parameter(torch.empty(shape)))
                for bname, shape in buffers.items():
                    holder.register_buffer(bname, torch.ones(shape) if bname == "running_var" else torch.zeros(shape))
                self.nodes[key] = holder
            self._steps.append((key, n.op, n.attrs, tuple(index[p] for p in n.inputs)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan-out, as torch's ResNets) for conv/linear weights; BN at 1 and 0."""
        for key, op, _, _ in self._steps:
            if key not in self.nodes:
                continue
            holder = self.nodes[key]
            for name, p in holder.named_parameters():
                if op.name == "bn":
                    nn.init.ones_(p) if name == "weight" else nn.init.zeros_(p)
                elif name == "weight":
                    fan_out = p.shape[0] * math.prod(p.shape[2:])
                    nn.init.normal_(p, 0.0, math.sqrt(2.0 / fan_out))
                else:
                    nn.init.zeros_(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, *spatial) -> (N, classes) logits."""
        if x.dim() != self.ndim + 2:
            raise ValueError(f"expected input of shape (N, C, {'L' if self.ndim == 1 else 'H, W'}), got {tuple(x.shape)}")
        ctx = RunContext(self.ndim, training=self.training, batch_stats=self.batch_stats)
        values: list[torch.Tensor] = []
        empty: dict[str, torch.Tensor] = {}
        for key, op, attrs, inputs in self._steps:
            if op.name == "input":
                values.append(x)
                continue
            holder = self.nodes[key] if key in self.nodes else None
            p = dict(holder.named_parameters(recurse=False)) | dict(holder.named_buffers(recurse=False)) if holder else empty
            values.append(op.forward(attrs, [values[i] for i in inputs], p, ctx))
        return values[-1]


def compile_graph(G: nx.DiGraph, ndim: int) -> GraphModule:
    """Validate `G` and build its module for `ndim`-D data (1 = sequences, 2 = images)."""
    return GraphModule(G, ndim)
