"""Train a graph hypernetwork on the user's data over architectures sampled from a space.

Each step pairs one batch of the train split (never validation or test) with `meta_batch`
architectures drawn from the space; the loss is their mean cross-entropy when run with
the predicted weights (BatchNorm on batch statistics). Gradients are clipped; a NaN or inf
loss skips the step, and repeated failures roll back to the last good state. A checkpoint
is written atomically every `checkpoint_every` steps and at the end; it records its own
configuration, so `resume` continues exactly where it stopped (the same result as an
uninterrupted run) and scoring refuses a checkpoint made for other data.

Usage:
    state = fit_hypernet(get_space("nb201"), {"channels": 8, "cells": 1}, load_dataset("mnist1d"),
                         FitConfig(steps=2000), out="runs/a/hypernet.pt")
"""

from __future__ import annotations

import copy
import math
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from hypernas.compile import Program
from hypernas.config import FitConfig
from hypernas.data import Dataset, signature_mismatch
from hypernas.device import check_memory
from hypernas.errors import CheckpointError
from hypernas.files import check_writable
from hypernas.ghn.checkpoint import load_checkpoint, save_checkpoint
from hypernas.ghn.encode import encode
from hypernas.ghn.model import GraphHyperNetwork, predict_weights
from hypernas.graph import activation_numel
from hypernas.ops import RunContext, list_ops
from hypernas.spaces import RandomTrial, Space


def _sample_infos(space, rng: random.Random, n: int, data: Dataset, options: dict) -> list:
    """`n` validated, non-degenerate architectures (a constant network teaches nothing)."""
    infos = []
    while len(infos) < n:
        _, info = space.build_info(RandomTrial(rng), data.in_channels, data.num_classes, **options)
        if not info.degenerate:
            infos.append(info)
    return infos


def hypernet_loss(ghn: GraphHyperNetwork, infos: list, x: torch.Tensor, y: torch.Tensor,
                  noise: torch.Tensor, forward: Any = None) -> torch.Tensor:
    """Mean cross-entropy of the architectures run with their predicted weights. `forward`
    runs the hypernetwork where it is wrapped (DistributedDataParallel)."""
    if forward is None:
        weights = predict_weights(ghn, infos, noise)
    else:
        weights = forward(encode(infos, ghn.ops, ghn.ndim, ghn.config.s_max).to(x.device), noise)
    ctx = RunContext(ghn.ndim, training=True, batch_stats=True)
    losses = [F.cross_entropy(Program(info, ghn.ndim).run(x, w, ctx), y) for info, w in zip(infos, weights)]
    return torch.stack(losses).mean()


def fit_hypernet(
    space: Space,
    space_options: dict[str, Any],
    data: Dataset,
    config: FitConfig = FitConfig(),
    out: str | None = None,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
    shards: int | None = None,
) -> dict:
    """Train (or with `resume`, continue) a hypernetwork; returns the final checkpoint dict.

    Under `torchrun` (torch.distributed initialised) each of the W processes takes its shard
    of every step: `meta_batch` architectures and `batch_size` samples of a step that draws W
    times as many from streams every process seeds alike, so the union is the same whatever W;
    gradients are averaged across processes (DistributedDataParallel) and only rank 0 writes
    the checkpoint. `shards` runs W shards in this one process instead, with the same result
    to float tolerance: how a distributed run is checked, or reproduced without one."""
    options = space.resolve_options(space_options)
    rank, world = _world()
    local_shards = list(range(shards)) if shards else [rank]
    width = shards or world  # shards of a step
    if out and rank == 0:
        check_writable(out, CheckpointError, "checkpoint")
    record = fit_record(space, options, data, config)
    torch.manual_seed(config.seed)  # seeded initialisation
    ghn = GraphHyperNetwork(config.hyper, list_ops(), data.ndim).to(device)
    opt = torch.optim.AdamW(ghn.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def lr_at(step: int) -> float:  # linear warm-up, then cosine to zero
        if step < config.warmup:
            return (step + 1) / config.warmup
        return 0.5 * (1 + math.cos(math.pi * (step - config.warmup) / max(1, config.steps - config.warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    arch_rng = random.Random(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    step, skipped, ema = 0, 0, None
    best = {"loss": float("inf"), "step": 0, "model": copy.deepcopy(ghn.state_dict())}
    # Fixed validation architectures, from their own seed so they never shift the training draw.
    eval_infos = _sample_infos(space, random.Random(f"eval-{config.seed}"), config.eval_archs, data, options)
    ghn.check_fits(encode(eval_infos, ghn.ops, ghn.ndim, ghn.config.s_max))  # a space too wide fails now
    largest = max(activation_numel(info, data.input_size) for info in eval_infos)
    check_memory(3 * 4 * config.batch_size * config.meta_batch * largest,
                 f"hypernetwork training at meta-batch {config.meta_batch} and batch {config.batch_size}", device)
    forward = None
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # find_unused_parameters: a step's architectures need not use every head (a bias, a transformer bias)
        forward = DistributedDataParallel(ghn, find_unused_parameters=True)
    if resume and out and os.path.exists(out):
        ckpt = load_checkpoint(out)
        check_resumable(ckpt, record, out)
        if ckpt.get("world_size", 1) != width:
            raise CheckpointError(f"cannot continue {out}: it was trained in {ckpt.get('world_size', 1)} shard(s) "
                                  f"per step, this run has {width}; resume with as many processes")
        ghn.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        arch_rng.setstate(_to_tuple(ckpt["rng"]["python"]))
        gen.set_state(ckpt["rng"]["torch"])
        step, skipped, ema, best = ckpt["step"], ckpt["skipped"], ckpt["loss_ema"], ckpt["best"]

    def state() -> dict:
        return {"format": "hypernas-hypernet", "version": 1, **record, "hyper": ghn.record(),
                "step": step, "skipped": skipped, "loss_ema": ema, "model": ghn.state_dict(), "best": best,
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "rng": {"python": arch_rng.getstate(), "torch": gen.get_state()}, "world_size": width}

    good = copy.deepcopy(state())  # the last good state, to roll back to after repeated NaNs
    failures = 0
    x_all, y_all = data.x_train, data.y_train  # train split only: validation is for scoring
    ghn.train()
    mb, bs = config.meta_batch, config.batch_size
    with tqdm(total=config.steps, initial=step, desc="hypernet", unit="step", disable=not progress or rank) as bar:
        while step < config.steps:
            # One step, drawn whole in every process (W = 1: exactly as a single process draws it);
            # shard k trains on its slice of the architectures, noise and samples.
            idx = torch.randint(len(x_all), (width * bs,), generator=gen)
            noise = torch.randn(width * mb, ghn.config.noise, generator=gen).to(device)
            infos = _sample_infos(space, arch_rng, width * mb, data, options)
            loss = torch.stack([hypernet_loss(ghn, infos[k * mb:(k + 1) * mb], x_all[idx[k * bs:(k + 1) * bs]].to(device),
                                              y_all[idx[k * bs:(k + 1) * bs]].to(device), noise[k * mb:(k + 1) * mb],
                                              forward) for k in local_shards]).mean()
            finite = _all(bool(torch.isfinite(loss)))  # every process skips a step together, or none does
            opt.zero_grad(set_to_none=True)
            if finite:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(ghn.parameters(), config.grad_clip)
                opt.step()
            if finite and all(torch.isfinite(p).all() for p in ghn.parameters()):
                failures = 0
                value = _mean(loss.item())
                ema = value if ema is None else 0.98 * ema + 0.02 * value
            else:
                skipped, failures = skipped + 1, failures + 1
                if failures >= 3 or not all(torch.isfinite(p).all() for p in ghn.parameters()):
                    ghn.load_state_dict(good["model"])
                    opt.load_state_dict(good["optimizer"])
                    failures = 0
            sched.step()
            step += 1
            bar.update()
            bar.set_postfix(loss=f"{ema if ema is not None else float('nan'):.3f}", skipped=skipped, refresh=False)
            if step % config.eval_every == 0 or step == config.steps:
                val = validation_loss(ghn, eval_infos, data, device)
                if val < best["loss"]:
                    best = {"loss": val, "step": step, "model": copy.deepcopy(ghn.state_dict())}
                ghn.train()
            if step % config.checkpoint_every == 0:
                good = copy.deepcopy(state())
                if out and rank == 0:
                    save_checkpoint(good, out)
    final = state()
    if out and rank == 0:
        save_checkpoint(final, out)
    return final


@contextmanager
def process_group(device: str) -> Iterator[tuple[str, int]]:
    """Under `torchrun` (WORLD_SIZE > 1), this process joined to the others for the block (NCCL
    on GPU, gloo on CPU) and left after; yields (its device, its rank). Otherwise (`device`, 0).

    Usage:
        with process_group("cpu") as (device, rank):
            fit_hypernet(space, options, data, config, out=path, device=device)
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield device, 0
        return
    import torch.distributed as dist

    if device.startswith("cuda"):  # one GPU per process
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    try:
        yield device, dist.get_rank()
    finally:
        dist.destroy_process_group()


def _world() -> tuple[int, int]:
    """(this process's rank, the number of processes) of a torch.distributed run, or (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all(flag: bool) -> bool:
    """Whether `flag` holds in every process."""
    rank, world = _world()
    if world == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([int(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def _mean(value: float) -> float:
    """`value` averaged over the processes (the loss every process logs alike)."""
    rank, world = _world()
    if world == 1:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return t.item() / world


@torch.no_grad()
def validation_loss(ghn: GraphHyperNetwork, infos: list, data: Dataset, device: str = "cpu") -> float:
    """Mean cross-entropy of `infos` with central predicted weights on the validation slice."""
    ghn.eval()
    noise = torch.zeros(len(infos), ghn.config.noise, device=device)
    return hypernet_loss(ghn, infos, data.x_val.to(device), data.y_val.to(device), noise).item()


def _to_tuple(value: Any) -> Any:
    """`random.setstate` needs tuples; a checkpoint may hand back lists."""
    return tuple(_to_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def fit_record(space: Space, options: dict[str, Any], data: Dataset, config: FitConfig) -> dict[str, Any]:
    """What a checkpoint records of how it was made: space, options, data and training options."""
    return {"space": space.name, "space_options": options, "data": data.signature(), "fit": config.record()}


def check_resumable(ckpt: dict, record: dict, path: str) -> None:
    """Refuse to continue a checkpoint made for another space, data or training options
    (any but the number of steps, which a resume may raise)."""
    defaults = FitConfig().record()  # an older checkpoint lacks options added since: it had their defaults
    for key in ("space", "space_options", "data", "fit"):
        if key == "fit":
            for k in record["fit"]:
                if k != "steps" and ckpt["fit"].get(k, defaults[k]) != record["fit"][k]:
                    raise CheckpointError(f"cannot continue {path}: it was made with fit.{k} = "
                                          f"{ckpt['fit'].get(k, defaults[k])!r}, this run asks for {record['fit'][k]!r}")
        elif key == "data":
            differs = signature_mismatch(ckpt.get("data", {}), record["data"])
            if differs:
                raise CheckpointError(f"cannot continue {path}: it was made for other data ({differs})")
        elif ckpt.get(key) != record[key]:
            raise CheckpointError(f"cannot continue {path}: it was made with {key} = {ckpt.get(key)!r}, "
                                  f"this run asks for {record[key]!r}")
