"""Normal training of one architecture: the ground truth every score is checked against.

Defaults follow the reference protocol (BENCHMARKS.md): 6 epochs of SGD with Nesterov
momentum 0.9, lr 0.1 with a cosine schedule to 0 over all steps, weight decay 5e-4, batch
128, on the whole train split; the result is accuracy on the test split. With
`holdout_val=True` it trains on the train split without the validation slice and reports
accuracy on that slice instead: a training-based scorer that never sees the test set.

Usage:
    result = train(G, load_dataset("mnist1d"), TrainConfig(epochs=6), seed=0)
    result.test_accuracy
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from hypernas.compile import GraphModule, compile_graph
from hypernas.config import TrainConfig
from hypernas.data import Dataset
from hypernas.device import check_memory
from hypernas.graph import activation_numel, param_count


@dataclass
class TrainResult:
    test_accuracy: float
    test_loss: float
    params: int
    seconds: float
    model: GraphModule
    split: str = "test"  # where test_accuracy and test_loss were measured: "test", or "val" with holdout_val


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of `model` in its current mode on (x, y)."""
    device = next(iter(model.parameters()), torch.empty(0)).device
    correct, loss = 0, 0.0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
        logits = model(xb)
        loss += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    return correct / len(x), loss / len(x)


def train(
    G: nx.DiGraph,
    data: Dataset,
    config: TrainConfig = TrainConfig(),
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    holdout_val: bool = False,
    init: Callable[[GraphModule], None] | None = None,
) -> TrainResult:
    """Train `G` from scratch on the whole train split and report test accuracy.

    `holdout_val=True`: train without the validation slice and report accuracy on it.
    `init` sets the fresh module's starting weights (`hypernas.ghn.start.predicted_start`).
    """
    start = time.perf_counter()
    # forward values, their gradients and BatchNorm's saved inputs, in float32
    check_memory(3 * 4 * config.batch_size * activation_numel(G, data.input_size), f"training at batch "
                 f"{config.batch_size}", device)
    torch.manual_seed(seed)
    model = compile_graph(G, data.ndim).to(device)
    if init is not None:
        init(model)
    x, y = (data.x_train, data.y_train) if holdout_val else data.train_and_val()
    steps_per_epoch = -(-len(x) // config.batch_size)
    total = config.epochs * steps_per_epoch
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay, nesterov=True)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
    shuffle = torch.Generator().manual_seed(seed)
    averaged = AveragedModel(model) if config.average_epochs else None
    model.train()
    with tqdm(total=total, desc="train", unit="step", disable=not progress, leave=False) as bar:
        for epoch in range(config.epochs):
            perm = torch.randperm(len(x), generator=shuffle)
            for i in range(0, len(x), config.batch_size):
                idx = perm[i : i + config.batch_size]
                loss = F.cross_entropy(model(x[idx].to(device)), y[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
                if averaged is not None and epoch >= config.epochs - config.average_epochs:
                    averaged.update_parameters(model)
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    if averaged is not None:
        with torch.no_grad():
            for p, mean in zip(model.parameters(), averaged.module.parameters()):
                p.copy_(mean)
        # The averaged weights need BatchNorm statistics of their own: one pass over the train split.
        model.calibrate(x[i : i + config.batch_size].to(device) for i in range(0, len(x), config.batch_size))
    model.eval()
    x_eval, y_eval = (data.x_val, data.y_val) if holdout_val else (data.x_test, data.y_test)
    acc, test_loss = evaluate(model, x_eval, y_eval)
    return TrainResult(acc, test_loss, param_count(G, data.ndim), time.perf_counter() - start, model,
                       split="val" if holdout_val else "test")
