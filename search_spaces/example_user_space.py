"""An example of a user's own search space: copy this file and change the choices.

A space is one function. It takes an Optuna trial plus the data's `in_channels` and
`num_classes` (keyword-only), asks the trial for its choices, and returns a
`networkx.DiGraph` whose nodes name registered ops (`hypernas.ops.list_ops()`).
Keyword arguments with defaults become the space's options. Use it with:

    hypernas sample --space search_spaces/example_user_space.py:tiny_cnn -n 3
    hypernas train  --space search_spaces/example_user_space.py:tiny_cnn --arch arch.json --dataset digits

It is also registered as the built-in space `tiny_cnn`.
"""

from __future__ import annotations

import networkx as nx

from hypernas.spaces import Space


def tiny_cnn(trial, *, in_channels: int, num_classes: int, base: int = 8) -> nx.DiGraph:
    """A plain CNN: 1-4 conv-BN-act layers with chosen kernels, widths and activation."""
    G = nx.DiGraph()
    G.add_node("input", op="input", channels=in_channels)
    prev = "input"
    act = trial.suggest_categorical("activation", ["relu", "gelu", "silu"])
    for i in range(trial.suggest_int("layers", 1, 4)):
        G.add_node(f"conv{i}", op="conv", channels=base * trial.suggest_categorical(f"mult{i}", [1, 2, 4]),
                   kernel=trial.suggest_categorical(f"kernel{i}", [1, 3, 5]))
        G.add_node(f"bn{i}", op="bn")
        G.add_node(f"act{i}", op=act)
        nx.add_path(G, [prev, f"conv{i}", f"bn{i}", f"act{i}"])
        prev = f"act{i}"
    G.add_node("pool", op="global_pool")
    G.add_node("linear", op="linear", channels=num_classes)
    G.add_node("output", op="output")
    nx.add_path(G, [prev, "pool", "linear", "output"])
    return G


SPACE = Space(name="tiny_cnn", suggest=tiny_cnn, description=tiny_cnn.__doc__, options={"base": 8})
