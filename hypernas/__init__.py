"""hypernas: neural architecture search with a graph hypernetwork.

Usage:
    import hypernas
    G = hypernas.get_space("nb201").sample(0, in_channels=1, num_classes=10, channels=8, cells=1)
    result = hypernas.train(G, hypernas.load_dataset("mnist1d"))
"""

from hypernas.compile import compile_graph
from hypernas.data import load_dataset
from hypernas.errors import HypernasError
from hypernas.export import load
from hypernas.graph import canonical_hash, flops, from_json, param_count, to_json, validate
from hypernas.spaces import get_space, list_spaces
from hypernas.train import TrainConfig, train

__version__ = "0.1.0"
__all__ = ["HypernasError", "TrainConfig", "canonical_hash", "compile_graph", "flops", "from_json", "get_space",
           "list_spaces", "load", "load_dataset", "param_count", "to_json", "train", "validate"]
