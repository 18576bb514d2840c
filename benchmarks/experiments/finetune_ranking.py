"""Exploratory, development table only: does a few SGD steps from the predicted weights rank better?

Scores each of the development table's 80 cells by exp(-validation loss) after K steps of SGD
(Nesterov momentum 0.9, batch 128 drawn from the train split without the validation slice)
started from the hypernetwork's predicted weights, and prints Kendall tau against the mean
accuracy. K=0 is the hypernetwork's own score. Not a product feature: see BENCHMARKS.md.

Usage: python -m benchmarks.experiments.finetune_ranking runs/ens0/hypernet.pt
"""
import math
import sys

import torch
import torch.nn.functional as F

from benchmarks.core.stats import ranking_metrics
from benchmarks.core.tables import SPACE_OPTIONS, read_table, table_path
from hypernas.compile import Program
from hypernas.data import load_dataset_like
from hypernas.ghn.checkpoint import load_hypernet
from hypernas.ghn.model import predict_weights
from hypernas.graph import validate
from hypernas.ops import RunContext
from search_spaces import nb201


def score(info, w0, K, lr, data, nd):
    x, y = data.x_train, data.y_train
    w = {k: v.detach().clone().requires_grad_() for k, v in w0.items()}
    prog = Program(info, nd)
    if K and w:
        opt = torch.optim.SGD(list(w.values()), lr=lr, momentum=0.9, nesterov=True)
        g = torch.Generator().manual_seed(0)
        ctx = RunContext(nd, training=True, batch_stats=True)
        for _ in range(K):
            idx = torch.randint(len(x), (128,), generator=g)
            loss = F.cross_entropy(prog.run(x[idx], w, ctx), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return math.exp(-F.cross_entropy(prog.run(data.x_val, w, RunContext(nd, batch_stats=True)), data.y_val).item())


def main() -> None:
    torch.set_num_threads(1)
    table = read_table(table_path("nb201_mnist1d_dev.csv"))
    path = sys.argv[1]
    hypernet = load_hypernet(path)
    ghn, data = hypernet.model, load_dataset_like(hypernet.checkpoint["data"])
    infos = [validate(nb201.from_string(a, data.in_channels, data.num_classes, **SPACE_OPTIONS["nb201"]))
             for a in table.archs]
    with torch.no_grad():
        W = predict_weights(ghn, infos)
    for K, lr in [(0, 0), (10, 0.01), (10, 0.05), (30, 0.01), (30, 0.05)]:
        s = [score(i, w, K, lr, data, ghn.ndim) for i, w in zip(infos, W)]
        print(path, K, lr, round(ranking_metrics(s, table.mean)["kendall_tau"], 3), flush=True)


if __name__ == "__main__":
    main()
