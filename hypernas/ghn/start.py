"""Predicted weights as a start: training begins from the hypernetwork's central prediction.

GHN-3's published results make the case (74 ImageNet models after one epoch: 25.4% from
predicted weights against 17.4% from random ones). BatchNorm's running statistics start from
the statistics of the batch the score was computed on, as the score saw them.

Usage:
    start = predicted_start(ghn, G, scoring_samples(data, "val")[0])
    result = train(G, data, init=start)
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import torch

from hypernas.compile import GraphModule
from hypernas.graph import validate


def scoring_samples(data, split: str = "val") -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs and labels a score is computed on (`hypernas.score`), decided here alone: the
    validation slice, or as many training samples (the train split is in random order, so
    its first ones are a random sample)."""
    n = len(data.x_val)
    return (data.x_val, data.y_val) if split == "val" else (data.x_train[:n], data.y_train[:n])


def predicted_start(ghn, G: nx.DiGraph, x: torch.Tensor) -> Callable[[GraphModule], None]:
    """A function that sets a freshly built module of `G` to the hypernetwork's central
    prediction, with BatchNorm's running statistics taken from the batch `x`."""
    from hypernas.ghn.model import predict_weights

    info = validate(G)

    def start(model: GraphModule) -> None:
        with torch.no_grad():
            predicted = predict_weights(ghn, [info])[0]
        model.load_flat({name: tensor.to(next(model.parameters()).device) for name, tensor in predicted.items()})
        model.calibrate(x.to(next(model.parameters()).device))

    return start
