"""Turn a batch of validated graphs into tensors, as one disjoint union.

Per node: an op id and shape features (channels in and out, kernel, stride, cumulative
stride, groups, number of inputs, depth). Edges come in both directions, plus "virtual"
edges between nodes up to `s_max` hops apart (GHN-2), weighted 1/distance, so that a few
rounds of message passing see far along deep graphs.

The hop counts of every graph are kept too, for the graph-transformer layer, which turns
them into an attention bias per pair of nodes (GHN-3, Graphormer).

Usage:
    batch = encode([validate(G) for G in graphs], vocab=list_ops())
    batch.op_ids.shape   # (total nodes,)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra, shortest_path

from hypernas.errors import GraphError
from hypernas.graph import GraphInfo

NUM_FEATURES = 10


@dataclass
class ParamNode:
    """A node whose parameters the hypernetwork predicts."""

    graph: int  # index of its graph in the batch
    index: int  # global node index in the batch
    key: str  # node name, the prefix of its flat parameter names
    op: str
    shapes: dict[str, tuple[int, ...]]  # parameter name -> shape
    in_channels: int  # per group (conv weight's second dimension)
    out_channels: int
    kernel: int


@dataclass
class GraphBatch:
    op_ids: torch.Tensor  # (N,) long
    features: torch.Tensor  # (N, NUM_FEATURES)
    graph_index: torch.Tensor  # (N,) which graph each node belongs to
    edges: torch.Tensor  # (2, E) source -> target
    virtual: torch.Tensor  # (2, V) source -> target, 2 <= hops <= s_max
    virtual_weight: torch.Tensor  # (V,) 1 / hops
    param_nodes: list[ParamNode]
    num_graphs: int
    # Message passing as sparse (N, N) matrices, each row a weighted mean over a node's
    # neighbours: along edges forward, backward, and along virtual edges both ways. A sparse
    # product is ~20x faster on CPU than gathering messages and index_add-ing them.
    operators: list[torch.Tensor] = field(default_factory=list)
    adjacency: list[csr_matrix] = field(default_factory=list)  # per graph: (n, n) edges, for hop counts

    def distance_buckets(self, s_max: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Dense per-graph layout for attention, M the largest graph's size: (N,) slot of each
        node in a flat (G*M) layout; (G, M, M) bucket of each pair (0 itself, k = k hops
        forward and s_max+k = k hops backward for k <= s_max, 2 s_max+1 farther or unrelated,
        2 s_max+2 padding); (G, M) mask of real nodes."""
        sizes = [a.shape[0] for a in self.adjacency]
        m = max(sizes)
        buckets = np.full((len(sizes), m, m), 2 * s_max + 2, dtype=np.int64)
        for g, adj in enumerate(self.adjacency):
            hops = shortest_path(adj, directed=True, unweighted=True)  # (n, n): attention is dense anyway
            fwd = np.where(hops <= s_max, hops, np.inf)
            bucket = np.full(hops.shape, 2 * s_max + 1, dtype=np.int64)
            bucket[np.isfinite(fwd)] = fwd[np.isfinite(fwd)]
            bwd = fwd.T
            back = np.isfinite(bwd) & (bwd > 0)
            bucket[back] = s_max + bwd[back]
            buckets[g, : len(hops), : len(hops)] = bucket
        slots = torch.cat([torch.arange(n) + g * m for g, n in enumerate(sizes)])
        mask = torch.arange(m)[None, :] < torch.tensor(sizes)[:, None]
        device = self.op_ids.device
        return slots.to(device), torch.from_numpy(buckets).to(device), mask.to(device)

    def to(self, device: torch.device | str) -> "GraphBatch":
        for name in ("op_ids", "features", "graph_index", "edges", "virtual", "virtual_weight"):
            setattr(self, name, getattr(self, name).to(device))
        self.operators = [op.to(device) for op in self.operators]
        return self


def _mean_operator(targets: np.ndarray, sources: np.ndarray, weight: np.ndarray, n: int) -> torch.Tensor:
    """Sparse CSR (n, n): row t averages the sources s of pairs (t, s), weighted."""
    totals = np.bincount(targets, weights=weight, minlength=n)
    values = weight / np.maximum(totals[targets], 1e-12)
    m = csr_matrix((values.astype(np.float32), (targets, sources)), shape=(n, n))
    with warnings.catch_warnings():  # CSR is "beta" in torch; its product is what makes this fast
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                                       torch.from_numpy(m.indices.astype(np.int64)), torch.from_numpy(m.data), (n, n))


VIRTUAL_ROWS = 512  # source nodes per shortest-path call: bounds the dense distance block of a deep network


def _virtual_edges(adj: csr_matrix, s_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sources, targets, hops) of every pair 2 to `s_max` hops apart along the edges, in row
    order. scipy's breadth-first search (Dijkstra on unit weights, stopped at `s_max` hops), a
    block of source rows at a time, so that a deep network never holds all its pairs at once."""
    n = adj.shape[0]
    parts = []
    for first in range(0, n, VIRTUAL_ROWS):
        rows = np.arange(first, min(first + VIRTUAL_ROWS, n))
        hops = dijkstra(adj, directed=True, indices=rows, unweighted=True, limit=s_max)  # (rows, n), inf beyond
        u, v = np.nonzero((hops >= 2) & np.isfinite(hops))
        parts.append((rows[u], v, hops[u, v]))
    u, v, k = (np.concatenate(p) for p in zip(*parts))
    return u.astype(np.int64), v.astype(np.int64), k.astype(np.float64)


def _features(info: GraphInfo) -> list[list[float]]:
    depth: dict = {}
    rows = []
    for n in info.nodes:
        depth[n.name] = 1 + max((depth[p] for p in n.inputs), default=-1)
    max_depth = max(depth.values()) or 1
    for n in info.nodes:
        c_in = n.in_shapes[0].channels if n.in_shapes else n.shape.channels
        stride = n.shape.stride
        rows.append([
            math.log2(1 + c_in), math.log2(1 + n.shape.channels), n.attrs.get("kernel", 0) / 7,
            n.attrs.get("stride", 1) - 1, math.log2(stride) if stride else 0.0, float(stride is None),
            float(n.attrs.get("groups", 1) > 1), math.log2(1 + len(n.inputs)), depth[n.name] / max_depth,
            n.attrs.get("dilation", 1) - 1,
        ])
    return rows


def encode(infos: list[GraphInfo], vocab: list[str] | tuple[str, ...], ndim: int, s_max: int = 10) -> GraphBatch:
    """Encode validated graphs (see `hypernas.graph.validate`) as one disjoint union."""
    op_index = {name: i for i, name in enumerate(vocab)}
    op_ids, feats, graph_index, src, dst, vsrc, vdst, vw, params = [], [], [], [], [], [], [], [], []
    adjacencies = []
    offset = 0
    for g, info in enumerate(infos):
        local = {n.name: i for i, n in enumerate(info.nodes)}
        feats.extend(_features(info))
        for n in info.nodes:
            if n.op.name not in op_index:
                raise GraphError(f"op {n.op.name!r} is unknown to this hypernetwork (it knows {', '.join(vocab)})", n.name)
            op_ids.append(op_index[n.op.name])
            shapes = n.op.param_shapes(n.attrs, list(n.in_shapes), ndim)
            if shapes:
                c_in = n.in_shapes[0].channels // n.attrs.get("groups", 1)
                params.append(ParamNode(g, offset + local[n.name], str(n.name), n.op.name, shapes, c_in,
                                        n.shape.channels, n.attrs.get("kernel", 1)))
        e_src = [local[p] for n in info.nodes for p in n.inputs]
        e_dst = [local[n.name] for n in info.nodes for _ in n.inputs]
        src.extend(offset + i for i in e_src)
        dst.extend(offset + i for i in e_dst)
        size = len(info.nodes)
        adj = csr_matrix((np.ones(len(e_src)), (e_src, e_dst)), shape=(size, size))
        adjacencies.append(adj)
        if s_max > 1 and size > 2:
            u, v, hops = _virtual_edges(adj, s_max)
            vsrc.append(u + offset)
            vdst.append(v + offset)
            vw.append(1.0 / hops)
        graph_index.extend([g] * size)
        offset += size
    e_src, e_dst = np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64)
    v_src, v_dst, v_w = (np.concatenate(a) if a else np.zeros(0, dtype=dt)
                         for a, dt in ((vsrc, np.int64), (vdst, np.int64), (vw, np.float64)))
    ones = np.ones(len(e_src))
    operators = [_mean_operator(e_dst, e_src, ones, offset), _mean_operator(e_src, e_dst, ones, offset),
                 _mean_operator(v_dst, v_src, v_w, offset), _mean_operator(v_src, v_dst, v_w, offset)]
    edges = torch.from_numpy(np.stack([e_src, e_dst]))
    virtual = torch.from_numpy(np.stack([v_src, v_dst]))
    virtual_weight = torch.from_numpy(v_w.astype(np.float32))
    return GraphBatch(
        op_ids=torch.tensor(op_ids, dtype=torch.long),
        features=torch.tensor(feats, dtype=torch.float32),
        graph_index=torch.tensor(graph_index, dtype=torch.long),
        edges=edges,
        virtual=virtual,
        virtual_weight=virtual_weight,
        param_nodes=params,
        num_graphs=len(infos),
        operators=operators,
        adjacency=adjacencies,
    )
