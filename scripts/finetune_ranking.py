"""Exploratory, development table only: does a few SGD steps from the predicted weights rank better?

Scores each of the development table's 80 cells by exp(-validation loss) after K steps of SGD
(Nesterov momentum 0.9, batch 128 drawn from the train split without the validation slice)
started from the hypernetwork's predicted weights, and prints Kendall tau against the mean
accuracy. K=0 is the hypernetwork's own score. Not a product feature: see BENCHMARKS.md.

Usage: python scripts/finetune_ranking.py runs/ens0/hypernet.pt
"""
import math
import sys

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
from hypernas.bench.ground_truth import PROTOCOL
from hypernas.bench.metrics import ranking_metrics
from hypernas.bench.table import read_table
from hypernas.compile import Program
from hypernas.data import load_dataset_like
from hypernas.ghn.checkpoint import load_hypernet
from hypernas.ghn.model import predict_weights
from hypernas.graph import validate
from hypernas.ops import RunContext
from search_spaces import nb201

table = read_table("hypernas/bench/data/nb201_mnist1d_dev.csv")
path = sys.argv[1]
hypernet = load_hypernet(path)
ghn, data = hypernet.model, load_dataset_like(hypernet.checkpoint["data"])
infos = [validate(nb201.from_string(a, data.in_channels, data.num_classes, **PROTOCOL)) for a in table.archs]
nd = ghn.ndim
with torch.no_grad():
    W = predict_weights(ghn, infos)
x, y = data.x_train, data.y_train
def score(info, w0, K, lr):
    w = {k: v.detach().clone().requires_grad_() for k, v in w0.items()}
    prog = Program(info, nd)
    if K and w:
        opt = torch.optim.SGD(list(w.values()), lr=lr, momentum=0.9, nesterov=True)
        g = torch.Generator().manual_seed(0)
        ctx = RunContext(nd, training=True, batch_stats=True)
        for _ in range(K):
            idx = torch.randint(len(x), (128,), generator=g)
            loss = F.cross_entropy(prog.run(x[idx], w, ctx), y[idx])
            opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        return math.exp(-F.cross_entropy(prog.run(data.x_val, w, RunContext(nd, batch_stats=True)), data.y_val).item())
for K, lr in [(0, 0), (10, 0.01), (10, 0.05), (30, 0.01), (30, 0.05)]:
    s = [score(i, w, K, lr) for i, w in zip(infos, W)]
    print(path, K, lr, round(ranking_metrics(s, table.mean)["kendall_tau"], 3), flush=True)
