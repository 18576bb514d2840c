"""The hypernetwork trained by several processes (torchrun, gloo on CPU) equals one process that
sees the same architectures and data."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
from conftest import fit_config

from hypernas.ghn.checkpoint import load_checkpoint
from hypernas.ghn.fit import fit_hypernet
from hypernas.spaces import get_space

OPTIONS = {"channels": 2, "cells": 1}
FLAGS = ["--steps", "4", "--meta-batch", "2", "--batch-size", "16", "--hidden", "8", "--rounds", "1", "--rank", "2",
         "--warmup", "1", "--eval-archs", "2", "--eval-every", "2", "--checkpoint-every", "2"]
FIT = fit_config(steps=4, meta_batch=2, batch_size=16, hidden=8, rounds=1, rank=2, warmup=1, eval_archs=2, eval_every=2,
                 checkpoint_every=2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(tmp_path, out, *extra) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.getcwd(), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), "-m", "hypernas.cli", "train-hypernet", "--space", "nb201",
           "--channels", "2", "--cells", "1", "--threads", "1", "--out", str(out), *FLAGS, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=os.getcwd())


def test_two_gloo_processes_equal_one_process_of_two_shards(tmp_path, mnist1d):
    out = tmp_path / "ddp.pt"
    proc = torchrun(tmp_path, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("4 steps") == 1 and "2 processes" in proc.stdout  # rank 0 alone reports and writes
    distributed = load_checkpoint(str(out))
    torch.set_num_threads(1)
    single = fit_hypernet(get_space("nb201"), OPTIONS, mnist1d, FIT, shards=2, progress=False)
    assert distributed["world_size"] == single["world_size"] == 2 and distributed["step"] == 4
    for name, tensor in single["model"].items():
        assert torch.allclose(distributed["model"][name], tensor, atol=1e-5, rtol=1e-4), name
    # the same format as a single-process checkpoint: it scores, and it resumes only as it was trained
    plain = fit_hypernet(get_space("nb201"), OPTIONS, mnist1d, FIT, progress=False)
    assert set(plain) == set(distributed) and plain["world_size"] == 1
    proc = torchrun(tmp_path, out, "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]  # already finished: nothing to do
    from hypernas.errors import CheckpointError

    with pytest.raises(CheckpointError, match="trained in 2 shard"):
        fit_hypernet(get_space("nb201"), OPTIONS, mnist1d, FIT, out=str(out), resume=True, progress=False)
