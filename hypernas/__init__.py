"""hypernas: neural architecture search with a graph hypernetwork.

Usage:
    import hypernas
    G = hypernas.get_space("nb201").sample(0, in_channels=1, num_classes=10, channels=8, cells=1)
    result = hypernas.train(G, hypernas.load_dataset("mnist1d"))
    result = hypernas.run_search(hypernas.SearchConfig(space="nb201", space_options={"channels": 8, "cells": 1}))
"""

__version__ = "0.1.0"

from hypernas.compile import compile_graph, create_model  # noqa: E402 (the version first: the CLI reads it)
from hypernas.config import FitConfig, SearchConfig, TrainConfig  # noqa: E402
from hypernas.data import load_dataset  # noqa: E402
from hypernas.errors import HypernasError  # noqa: E402
from hypernas.export import load  # noqa: E402
from hypernas.graph import canonical_hash, flops, from_json, param_count, to_json, validate  # noqa: E402
from hypernas.score import Scorer  # noqa: E402
from hypernas.search import run_search  # noqa: E402
from hypernas.spaces import get_space, list_spaces  # noqa: E402
from hypernas.train import train  # noqa: E402

__all__ = ["FitConfig", "HypernasError", "Scorer", "SearchConfig", "TrainConfig", "canonical_hash", "compile_graph",
           "create_model",
           "flops", "from_json", "get_space", "list_spaces", "load", "load_dataset", "param_count", "run_search",
           "to_json", "train", "validate"]
