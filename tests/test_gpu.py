"""The CUDA path: training and scoring on a GPU agree with the CPU. Skipped where there is no GPU.

These run on a lent GPU machine (BENCHMARKS.md, "On a GPU"); CI has none.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from conftest import fit_config

from hypernas.cli import main
from hypernas.ghn.checkpoint import load_checkpoint
from hypernas.ghn.fit import fit_hypernet
from hypernas.score import Scorer
from hypernas.spaces import get_space
from hypernas.train import TrainConfig, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

NB201_TINY = {"channels": 4, "cells": 1}
TINY = fit_config(steps=6, meta_batch=2, batch_size=32, hidden=16, rounds=2, rank=4, warmup=2, eval_archs=2)


@pytest.fixture(autouse=True)
def exact_float32():
    # TF32 would round matrix products to 10 mantissa bits and hide real CPU/GPU disagreements.
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.mark.parametrize("layer", ["mp", "transformer"])
def test_a_hypernetwork_trained_on_the_gpu_scores_alike_on_gpu_and_cpu(mnist1d, tmp_path, layer):
    path = str(tmp_path / "gpu.pt")
    state = fit_hypernet(get_space("nb201"), NB201_TINY, mnist1d, replace(TINY, hyper=replace(TINY.hyper, layer=layer)),
                         out=path, device="cuda", progress=False)
    assert state["step"] == TINY.steps and state["skipped"] == 0
    # The checkpoint holds CPU tensors once loaded (map_location), so a CPU-only machine can use it.
    assert all(v.device.type == "cpu" for v in load_checkpoint(path)["model"].values())

    graphs = get_space("nb201").sample_distinct(12, 0, mnist1d.in_channels, mnist1d.num_classes, **NB201_TINY)
    on_gpu = Scorer.from_checkpoint(path, mnist1d, samples=2, device="cuda").score(graphs)
    on_cpu = Scorer.from_checkpoint(path, mnist1d, samples=2, device="cpu").score(graphs)
    for g, c in zip(on_gpu, on_cpu):
        assert (g.hash, g.params, g.flops) == (c.hash, c.params, c.flops)
        assert g.loss == pytest.approx(c.loss, rel=1e-3, abs=1e-4)
        assert abs(g.accuracy - c.accuracy) <= 0.01  # a few borderline predictions may flip


def test_ordinary_training_on_the_gpu(mnist1d):
    G = get_space("nb201").sample(0, mnist1d.in_channels, mnist1d.num_classes, **NB201_TINY)
    on_gpu = train(G, mnist1d, TrainConfig(epochs=1), seed=0, device="cuda", progress=False)
    assert next(on_gpu.model.parameters()).device.type == "cuda"
    on_cpu = train(G, mnist1d, TrainConfig(epochs=1), seed=0, device="cpu", progress=False)
    # The same seed gives the same start and the same batches; float rounding differs, so only close.
    assert abs(on_gpu.test_accuracy - on_cpu.test_accuracy) < 0.05


def test_the_command_line_trains_and_scores_on_cuda(tmp_path, capsys):
    out = str(tmp_path / "h.pt")
    assert main(["train-hypernet", "--space", "nb201", "--dataset", "mnist1d", "--channels", "4", "--cells", "1",
                 "--steps", "4", "--meta-batch", "2", "--device", "cuda", "--out", out]) == 0
    archs = tmp_path / "archs.txt"
    archs.write_text("|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|\n")
    capsys.readouterr()
    assert main(["score", "--hypernet", out, "--archs", str(archs), "--json", "--device", "cuda"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= row["accuracy"] <= 1.0 and row["params"] > 0
