"""Drawings of architecture graphs with matplotlib (imported lazily: the engine needs no display).

Usage:
    draw_architecture(G, "arch.png")
"""

from __future__ import annotations

import networkx as nx

from hypernas.files import save_file
from hypernas.graph import validate

# One colour per op family, so a drawing reads at a glance.
_COLOURS = {"input": "#4c72b0", "output": "#4c72b0", "conv": "#dd8452", "linear": "#dd8452", "bn": "#8172b3",
            "sum": "#55a868", "concat": "#55a868", "zero": "#c44e52", "identity": "#bbbbbb"}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt, fig, path: str) -> None:
    """Write the figure as PNG, whole or not at all (`hypernas.files.save_file`)."""
    try:
        save_file(lambda f: fig.savefig(f, format="png", dpi=120), path)
    finally:
        plt.close(fig)


def draw_architecture(G: nx.DiGraph, path: str, title: str | None = None) -> None:
    """Draw the DAG left to right, one column per topological generation, to a PNG file."""
    plt = pyplot()
    info = validate(G)
    H = nx.DiGraph(G.edges)
    H.add_nodes_from(G.nodes)
    for depth, generation in enumerate(nx.topological_generations(H)):
        for n in generation:
            H.nodes[n]["depth"] = depth
    pos = nx.multipartite_layout(H, subset_key="depth")
    labels = {}
    for n in info.nodes:
        extra = n.attrs.get("kernel") if n.op.name in ("conv", "avg_pool", "max_pool") else None
        labels[n.name] = n.op.name + (f"\n{extra}" if extra else "") + (f"\n{n.shape.channels}ch" if n.op.name == "conv" else "")
    width = max(6.0, 0.45 * (max(nx.get_node_attributes(H, "depth").values()) + 1))
    fig, ax = plt.subplots(figsize=(min(width, 60.0), 5))
    colours = [_COLOURS.get(G.nodes[n]["op"], "#937860") for n in H.nodes]
    nx.draw_networkx(H, pos, ax=ax, labels=labels, node_color=colours, node_size=520, font_size=6,
                     arrowsize=8, edge_color="#666666")
    ax.set_title(title or G.graph.get("arch", f"{G.number_of_nodes()} nodes") + (" (degenerate)" if info.degenerate else ""),
                 fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    save_figure(plt, fig, path)
