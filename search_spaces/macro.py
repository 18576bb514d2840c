"""A macro space of dynamic architectures: MobileNetV2-style inverted residual networks.

Depth, widths, kernel sizes and expansion ratios all vary, so architectures differ in the
number of nodes and in tensor shapes, not only in which ops they use:
- stem: conv3 with `stem` channels, BN, ReLU6;
- 3 stages, each with 1-3 blocks and a width from the stage's choices (times `width`);
  the first block of stages 2 and 3 has stride 2;
- block: [1x1 expand, BN, ReLU6 when expansion > 1] -> depthwise k x k (k in 3, 5, 7),
  BN, ReLU6 -> 1x1 project, BN; plus a skip sum wherever the shapes allow it;
- head: 1x1 conv to `head` channels, BN, ReLU6, global pool, linear.

Usage:
    G = get_space("macro").sample(seed=0, in_channels=1, num_classes=10)
"""

from __future__ import annotations

import networkx as nx

from hypernas.spaces import Sketch, Space

STAGE_WIDTHS = ((8, 12, 16), (16, 24, 32), (24, 32, 48))
BLOCKS = (1, 2, 3)
KERNELS = (3, 5, 7)
EXPANSIONS = (1, 3, 6)


def _conv_bn(G: nx.DiGraph, src: str, name: str, relu: bool, **conv: int) -> str:
    G.add_node(f"{name}_conv", op="conv", **conv)
    G.add_node(f"{name}_bn", op="bn")
    path = [src, f"{name}_conv", f"{name}_bn"]
    if relu:
        G.add_node(f"{name}_act", op="relu6")
        path.append(f"{name}_act")
    nx.add_path(G, path)
    return path[-1]


def _block(G: nx.DiGraph, src: str, name: str, c_in: int, c_out: int, stride: int, kernel: int, expansion: int) -> str:
    hidden = c_in * expansion
    x = src if expansion == 1 else _conv_bn(G, src, f"{name}_exp", True, channels=hidden, kernel=1)
    x = _conv_bn(G, x, f"{name}_dw", True, channels=hidden, kernel=kernel, stride=stride, groups=hidden)
    x = _conv_bn(G, x, f"{name}_proj", False, channels=c_out, kernel=1)
    if stride == 1 and c_in == c_out:
        G.add_node(f"{name}_sum", op="sum")
        G.add_edges_from([(src, f"{name}_sum"), (x, f"{name}_sum")])
        x = f"{name}_sum"
    return x


def suggest(trial, *, in_channels: int, num_classes: int, width: float = 1.0, stem: int = 8, head: int = 64) -> nx.DiGraph:
    """Define-by-run: the number of blocks decides which per-block choices are asked."""
    G = nx.DiGraph()
    G.add_node("input", op="input", channels=in_channels)
    x = _conv_bn(G, "input", "stem", True, channels=stem, kernel=3)
    c_in = stem
    for s, widths in enumerate(STAGE_WIDTHS):
        c_out = max(1, round(trial.suggest_categorical(f"s{s}_width", widths) * width))
        for b in range(trial.suggest_categorical(f"s{s}_blocks", BLOCKS)):
            kernel = trial.suggest_categorical(f"s{s}_b{b}_kernel", KERNELS)
            expansion = trial.suggest_categorical(f"s{s}_b{b}_expansion", EXPANSIONS)
            stride = 2 if s > 0 and b == 0 else 1
            x = _block(G, x, f"s{s}b{b}", c_in, c_out, stride, kernel, expansion)
            c_in = c_out
    x = _conv_bn(G, x, "head", True, channels=head, kernel=1)
    G.add_node("pool", op="global_pool")
    G.add_node("linear", op="linear", channels=num_classes)
    G.add_node("output", op="output")
    nx.add_path(G, [x, "pool", "linear", "output"])
    return G


def sketch(G: nx.DiGraph) -> Sketch:
    """One box per block, with its kernel, expansion and width (and /2 where it halves the length)."""
    boxes = [f"stem\nconv 3x3\n{G.nodes['stem_conv']['channels']} ch"]
    c_in = G.nodes["stem_conv"]["channels"]
    for s in range(len(STAGE_WIDTHS)):
        b = 0
        while f"s{s}b{b}_dw_conv" in G:
            dw, width = G.nodes[f"s{s}b{b}_dw_conv"], G.nodes[f"s{s}b{b}_proj_conv"]["channels"]
            stride = " /2" if dw.get("stride", 1) > 1 else ""
            skip = " +skip" if f"s{s}b{b}_sum" in G else ""
            boxes.append(f"s{s}b{b}{stride}\nk{dw['kernel']} e{dw['channels'] // c_in}\n{width} ch{skip}")
            c_in, b = width, b + 1
    boxes.append(f"head\nconv 1x1\n{G.nodes['head_conv']['channels']} ch")
    caption = f"pool, linear ({G.nodes['linear']['channels']} classes); k kernel, e expansion, ch width"
    return Sketch("chain", boxes, caption=caption)


def _size() -> int:
    per_block = len(KERNELS) * len(EXPANSIONS)
    per_stage = len(STAGE_WIDTHS[0]) * sum(per_block**b for b in BLOCKS)
    return per_stage ** len(STAGE_WIDTHS)


SPACE = Space(
    name="macro",
    suggest=suggest,
    description="MobileNetV2-style networks: 1-3 blocks per stage, kernels 3/5/7, expansion 1/3/6, varying widths",
    size=_size(),
    options={"width": 1.0, "stem": 8, "head": 64},
    sketch=sketch,
)
