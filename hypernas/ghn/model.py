"""The graph hypernetwork: message passing over a batch of graphs, then a weight decoder.

Encoder: each node starts from its op embedding, its shape features and the graph's noise
vector (SMASH: a draw of the noise is a draw of the weights). Then `rounds` layers, all
graphs and nodes at once, of one of two kinds (`layer`):
- "mp" (GHN-2): synchronous message passing along edges forward and backward and along
  virtual (shortest-path) edges;
- "transformer" (GHN-3): every node attends to every node of its graph, with a learned
  per-head bias for the pair's signed hop distance (Graphormer).
BENCHMARKS.md compares the two on ranking and speed.

Decoder: a conv or linear weight of shape (out, in, *taps) is `P[:out] @ core(h) @ Q[:in].T`
per tap: `core` is a (rank x rank) matrix per tap predicted from the node's embedding `h`,
and `P`, `Q` are learned channel bases shared by all nodes. So one head serves every shape
in the space, nothing is tiled (tiling makes duplicate channels), and the cost is small.
Vectors (BatchNorm scale and shift, biases) are `P_vec[:C] @ v(h)`. Weights are scaled by
sqrt(beta / fan_in), so activations start in range whatever the shape.

Usage:
    ghn = GraphHyperNetwork(HyperConfig(), ops=list_ops(), ndim=1)
    weights = predict_weights(ghn, [validate(G) for G in graphs])   # one {name: tensor} per graph
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch import nn

from hypernas.config import LAYERS as LAYER_NAMES
from hypernas.config import HyperConfig
from hypernas.errors import GraphError
from hypernas.ghn.encode import NUM_FEATURES, GraphBatch, encode
from hypernas.graph import GraphInfo


class _Round(nn.Module):
    """One round: h <- h + MLP([h, fwd, bwd, virtual fwd, virtual bwd])."""

    def __init__(self, config: HyperConfig):
        super().__init__()
        d = config.hidden
        self.messages = nn.Linear(d, 4 * d)
        self.update = nn.Sequential(nn.LayerNorm(5 * d), nn.Linear(5 * d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, h: torch.Tensor, b: GraphBatch, dense=None) -> torch.Tensor:
        messages = self.messages(h).chunk(4, dim=1)  # forward, backward, virtual fwd, virtual bwd: (N, d) each
        parts = [h] + [op @ m for op, m in zip(b.operators, messages)]  # neighbour means, (N, d) each
        return h + self.update(torch.cat(parts, dim=1))


class _Attention(nn.Module):
    """One pre-norm transformer layer over each graph's nodes, biased by hop distance."""

    def __init__(self, config: HyperConfig):
        super().__init__()
        d, self.heads = config.hidden, config.heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.bias = nn.Embedding(2 * config.s_max + 3, self.heads)  # the buckets of `distance_buckets`
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, h: torch.Tensor, b: GraphBatch, dense) -> torch.Tensor:
        slots, buckets, mask = dense
        (g, m), d = mask.shape, h.shape[1]
        x = h.new_zeros(g * m, d).index_copy(0, slots, self.norm1(h)).view(g, m, d)
        q, k, v = self.qkv(x).view(g, m, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.bias(buckets).permute(0, 3, 1, 2).masked_fill(~mask[:, None, None, :], float("-inf"))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (g, heads, m, d / heads)
        h = h + self.proj(out.transpose(1, 2).reshape(g * m, d)[slots])
        return h + self.mlp(self.norm2(h))


LAYERS = dict(zip(LAYER_NAMES, (_Round, _Attention)))  # the names are declared with the options


class GraphHyperNetwork(nn.Module):
    """Predicts the weights of any graph whose ops are in `ops`, for `ndim`-D data. The op
    vocabulary is fixed at creation, so a checkpoint stays readable when ops are added."""

    def __init__(self, config: HyperConfig, ops: Sequence[str], ndim: int):
        super().__init__()
        if ndim not in (1, 2):
            raise GraphError(f"a hypernetwork serves 1-D or 2-D data, not {ndim}-D")
        self.config, self.ops, self.ndim = config, tuple(ops), ndim
        d, r, k = config.hidden, config.rank, config.max_kernel
        self.taps = k**ndim
        self.op_embed = nn.Embedding(len(self.ops), d)
        self.shape_embed = nn.Linear(NUM_FEATURES, d)
        self.noise_embed = nn.Linear(config.noise, d)
        self.rounds = nn.ModuleList(LAYERS[config.layer](config) for _ in range(config.rounds))
        self.norm = nn.LayerNorm(d)
        self.core = nn.Linear(d, r * r * self.taps)
        self.vector = nn.Linear(d, 3 * r)  # BN scale, BN shift / bias, spare for linear bias
        self.P = nn.Parameter(torch.randn(config.max_channels, r))
        self.Q = nn.Parameter(torch.randn(config.max_channels, r))
        self.P_vec = nn.Parameter(torch.randn(config.max_channels, r) / math.sqrt(r))
        # Small-init heads (GHN-3): start near a He-initialised network with unit BN.
        nn.init.normal_(self.core.weight, std=0.1 / (r * math.sqrt(d)))
        nn.init.normal_(self.core.bias, std=1.0 / r)
        nn.init.zeros_(self.vector.weight)
        nn.init.zeros_(self.vector.bias)

    def embed(self, b: GraphBatch, noise: torch.Tensor) -> torch.Tensor:
        """(N, d) node embeddings; `noise` is (graphs, noise dims)."""
        # index_select, not `[b.graph_index]`: the backward of advanced indexing adds the many
        # nodes of a graph into one row with parallel atomic adds on CPU, whose order (and so the
        # float result) changes from run to run when the cores are busy; index_add does not.
        graph_noise = torch.index_select(self.noise_embed(noise), 0, b.graph_index)
        h = self.op_embed(b.op_ids) + self.shape_embed(b.features) + graph_noise
        dense = b.distance_buckets(self.config.s_max) if self.config.layer == "transformer" else None
        for layer in self.rounds:
            h = layer(h, b, dense)
        return self.norm(h)

    def forward(self, b: GraphBatch, noise: torch.Tensor | None = None) -> list[dict[str, torch.Tensor]]:
        """Predict every parameter of every graph in the batch: one {flat name: tensor} per graph."""
        self.check_fits(b)
        if noise is None:
            noise = torch.zeros(b.num_graphs, self.config.noise, device=b.op_ids.device)
        h = self.embed(b, noise)
        out: list[dict[str, torch.Tensor]] = [{} for _ in range(b.num_graphs)]
        groups = defaultdict(list)  # same op and shapes -> decoded together
        for p in b.param_nodes:
            groups[p.op, tuple(sorted(p.shapes.items()))].append(p)
        for (op, _), nodes in groups.items():
            idx = torch.tensor([p.index for p in nodes], device=h.device)
            decoded = self._decode(op, nodes[0], h[idx])
            for name, tensor in decoded.items():
                for i, p in enumerate(nodes):
                    out[p.graph][f"{p.key}.{name}"] = tensor[i]
        return out

    def record(self) -> dict:
        """The shape a checkpoint records (`hyper`): the config, the op vocabulary and ndim."""
        return {**asdict(self.config), "ops": list(self.ops), "ndim": self.ndim}

    def check_fits(self, b: GraphBatch) -> None:
        """Refuse a node wider than the channel bases or with a kernel beyond `max_kernel`: its
        weights cannot be predicted (they would come out of the wrong shape, or too few taps)."""
        c, k = self.config.max_channels, self.config.max_kernel
        for p in b.param_nodes:
            if max(p.in_channels, p.out_channels) > c or p.kernel > k:
                raise GraphError(f"{p.op} with {p.in_channels} -> {p.out_channels} channels and kernel {p.kernel} is "
                                 f"beyond this hypernetwork (at most {c} channels and kernel {k})", p.key)

    def _decode(self, op: str, like, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """Parameters for a group of nodes that share an op and shapes; h is (n, d)."""
        r, k = self.config.rank, self.config.max_kernel
        vec = self.vector(h).view(len(h), 3, r)  # (n, 3, r)
        if op == "bn":
            c = like.shapes["weight"][0]
            scale, shift = vec[:, 0] @ self.P_vec[:c].T, vec[:, 1] @ self.P_vec[:c].T  # (n, C)
            return {"weight": 1 + scale, "bias": shift}
        out_c, in_c = like.out_channels, like.in_channels
        kernel = like.kernel if op == "conv" else 1
        core = self.core(h).view(len(h), r, r, *([k] * self.ndim))
        lo = (k - kernel) // 2
        core = core[(..., *[slice(lo, lo + kernel)] * self.ndim)]  # centre taps
        weight = torch.einsum("oa,nab...,ib->noi...", self.P[:out_c], core, self.Q[:in_c])
        fan_in = in_c * kernel**self.ndim
        beta = 1.0 if op == "linear" else 2.0  # He gain before ReLUs, plain for the classifier
        result = {"weight": weight * math.sqrt(beta / fan_in)}
        if "bias" in like.shapes:
            result["bias"] = vec[:, 2] @ self.P_vec[:out_c].T
        if op == "linear":
            result["weight"] = result["weight"].reshape(len(h), out_c, in_c)
        return result


def predict_weights(ghn: GraphHyperNetwork, graphs: list[GraphInfo] | GraphBatch,
                    noise: torch.Tensor | None = None) -> list[dict[str, torch.Tensor]]:
    """Every parameter of every graph: one {flat name: tensor} per graph, for `Program.run`.
    `graphs` are validated graphs, or their batch already encoded (to draw several noises
    for one batch); `noise` is (graphs, noise dims), zero (the central prediction) by default.

    Usage: weights = predict_weights(ghn, [validate(G)])[0]
    """
    device = next(ghn.parameters()).device
    batch = graphs if isinstance(graphs, GraphBatch) else encode(graphs, ghn.ops, ghn.ndim, ghn.config.s_max).to(device)
    return ghn(batch, noise)
