"""Drawings of architecture graphs with matplotlib (imported lazily: the engine needs no display).

Two views. `sketch` draws what a space varies, as its `Space.sketch` describes it: NB201's
cell as 4 nodes and 6 labelled edges with the skeleton in one line of text, a macro network
as one box per block. `ops` draws the whole op-level graph, one column per topological
generation: exact, but some 80 nodes for an NB201 network.

Usage:
    draw_architecture(G, "arch.png", sketch=get_space("nb201").sketch)   # the cell
    draw_architecture(G, "arch.png", view="ops")
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx

from hypernas.errors import OptionError
from hypernas.files import save_file
from hypernas.graph import validate
from hypernas.spaces import Sketch

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


VIEWS = ("auto", "sketch", "ops")


def draw_architecture(G: nx.DiGraph, path: str, title: str | None = None, view: str = "auto",
                      sketch: Callable[[nx.DiGraph], Sketch] | None = None) -> None:
    """Draw an architecture to a PNG file: its sketch where the space has one (`view="auto"`),
    or the op-level graph (`view="ops"`)."""
    if view not in VIEWS:
        raise OptionError(f"a drawing's view is one of {', '.join(VIEWS)}, not {view!r}")
    if view == "sketch" and sketch is None:
        raise OptionError("this space has no sketch to draw; use the view ops")
    if view != "ops" and sketch is not None:
        info = validate(G)
        heading = title or G.graph.get("arch", "") or f"{len(info.nodes)} nodes"
        drawn = sketch(G)
        (_draw_cell if drawn.kind == "cell" else _draw_chain)(drawn, path, heading + (
            " (degenerate)" if info.degenerate else ""))
        return
    _draw_ops(G, path, title)


# Edge colours of a cell by what the op does: convolutions, pooling, the identity, nothing.
_EDGE_COLOURS = {"conv": "#dd8452", "pool": "#4c72b0", "skip": "#555555", "none": "#bbbbbb"}


def _edge_colour(label: str) -> str:
    return next((c for key, c in _EDGE_COLOURS.items() if key in label), "#937860")


def _draw_cell(sketch: Sketch, path: str, title: str) -> None:
    """Nodes in a row; an edge to the next node straight, longer ones as arcs above (two
    apart) or below (further), each labelled at its middle."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    xs = [1.6 * i for i in range(len(sketch.nodes))]
    for i, j, label in sketch.edges:
        span = j - i
        height = 0.0 if span == 1 else (0.95 if span == 2 else -0.95 * (span - 1))
        x0, x1 = xs[i] + 0.22, xs[j] - 0.22
        t = [k / 40 for k in range(41)]  # a quadratic Bezier through a control point above or below the middle
        cx = (x0 + x1) / 2
        px = [(1 - u) ** 2 * x0 + 2 * u * (1 - u) * cx + u**2 * x1 for u in t]
        py = [2 * u * (1 - u) * height for u in t]
        colour = _edge_colour(label)
        style = ":" if label == "none" else "-"
        ax.plot(px, py, style, color=colour, lw=2)
        ax.annotate("", xy=(px[-1], py[-1]), xytext=(px[-3], py[-3]),
                    arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 2})
        ax.text(cx, height / 2 + (0.13 if span == 1 else 0), label, ha="center", va="center", fontsize=10,
                color="#222222", bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": colour, "lw": 1})
    for x, name in zip(xs, sketch.nodes):
        ax.add_patch(plt.Circle((x, 0), 0.22, color="#4c72b0", zorder=3))
        ax.text(x, 0, name, ha="center", va="center", color="white", fontsize=12, fontweight="bold", zorder=4)
    ax.set_xlim(-0.5, xs[-1] + 0.5)
    ax.set_ylim(-1.15, 0.75)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(_wrap(title, 70), fontsize=9)
    fig.text(0.5, 0.03, _wrap(sketch.caption, 100), ha="center", va="bottom", fontsize=8, color="#444444")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(plt, fig, path)


def _draw_chain(sketch: Sketch, path: str, title: str) -> None:
    """One box per block, joined by arrows, in rows of at most six that snake: left to right,
    then right to left below, so every arrow is short."""
    plt = pyplot()
    per_row = 6
    rows = -(-len(sketch.nodes) // per_row)
    fig, ax = plt.subplots(figsize=(9.0, 1.0 + 1.35 * rows))

    def place(k: int) -> tuple[float, float]:
        row, col = divmod(k, per_row)
        return 1.5 * (col if row % 2 == 0 else per_row - 1 - col), -1.4 * row

    for k, text in enumerate(sketch.nodes):
        x, y = place(k)
        ax.text(x, y, text, ha="center", va="center", fontsize=9, family="monospace",
                bbox={"boxstyle": "round,pad=0.45", "fc": "#fdf0e6", "ec": "#dd8452", "lw": 1.2})
        if k + 1 < len(sketch.nodes):
            (nx_, ny), step = place(k + 1), 0.62
            if ny == y:  # along the row
                direction = 1 if nx_ > x else -1
                start, end = (x + direction * step, y), (nx_ - direction * step, ny)
            else:  # down to the next row
                start, end = (x, y - 0.48), (nx_, ny + 0.48)
            ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "-|>", "color": "#666666"})
    ax.set_xlim(-0.8, 1.5 * (per_row - 1) + 0.8)
    ax.set_ylim(-1.4 * (rows - 1) - 0.8, 0.8)
    ax.axis("off")
    ax.set_title(_wrap(title, 100), fontsize=9)
    fig.text(0.5, 0.02, sketch.caption, ha="center", va="bottom", fontsize=8, color="#444444")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save_figure(plt, fig, path)


def _wrap(text: str, width: int) -> str:
    """Lines of at most `width` characters, broken after a space or an NB201 string's '+'."""
    import re

    lines = [""]
    for token in re.split(r"(?<=[ +])", text):
        if lines[-1] and len(lines[-1]) + len(token) > width:
            lines.append("")
        lines[-1] += token
    return "\n".join(line.rstrip() for line in lines)


def _draw_ops(G: nx.DiGraph, path: str, title: str | None) -> None:
    """Draw the DAG left to right, one column per topological generation."""
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
