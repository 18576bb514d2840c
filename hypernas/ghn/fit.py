"""Train a graph hypernetwork on the user's data over architectures sampled from a space.

Each step pairs one batch of the train split (never validation or test) with `meta_batch`
architectures drawn from the space; the loss is their mean cross-entropy when run with
the predicted weights (BatchNorm on batch statistics). Gradients are clipped; a NaN or inf
loss skips the step, and repeated failures roll back to the last good state. A checkpoint
is written atomically every `checkpoint_every` steps and at the end; it records its own
configuration, so `resume` continues exactly where it stopped (the same result as an
uninterrupted run) and scoring refuses a checkpoint made for other data.

Usage:
    ckpt = fit_hypernet("nb201", {"channels": 8, "cells": 1}, load_dataset("mnist1d"),
                        FitConfig(steps=2000), out="runs/a/hypernet.pt")
"""

from __future__ import annotations

import copy
import math
import os
import random
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from hypernas.compile import Program
from hypernas.data import Dataset
from hypernas.errors import CheckpointError, HypernasError, require_int, require_number
from hypernas.ghn.checkpoint import check_writable, load_checkpoint, save_checkpoint
from hypernas.ghn.encode import encode
from hypernas.ghn.model import LAYERS, GraphHyperNetwork, HyperConfig
from hypernas.ops import RunContext, list_ops
from hypernas.spaces import RandomTrial, get_space


@dataclass(frozen=True)
class FitConfig:
    steps: int = 3000
    meta_batch: int = 8  # architectures per data batch, as GHN-2
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-5
    warmup: int = 100
    grad_clip: float = 5.0
    checkpoint_every: int = 250
    seed: int = 0
    hidden: int = 64
    rounds: int = 4
    rank: int = 16
    s_max: int = 10  # virtual edges up to this many hops (1 = none); hop buckets of attention
    layer: str = "mp"  # "mp" (GHN-2 message passing) or "transformer" (GHN-3); see BENCHMARKS.md
    # Early stopping: every `eval_every` steps, the mean validation loss of `eval_archs` fixed
    # architectures; the checkpoint's `best` weights are those with the lowest. Trained too
    # long, the hypernetwork memorises the train split and ranks worse (BENCHMARKS.md).
    eval_every: int = 100
    eval_archs: int = 16

    def __post_init__(self):
        # A TOML file or the command line can hand in anything: say which option is wrong,
        # before a bad value turns into a division by zero or an empty batch mid-training.
        for name, low in (("steps", 0), ("meta_batch", 1), ("batch_size", 1), ("warmup", 0), ("checkpoint_every", 1),
                          ("seed", None), ("hidden", 1), ("rounds", 1), ("rank", 1), ("s_max", 0), ("eval_every", 1),
                          ("eval_archs", 1)):
            require_int(f"hypernetwork option {name}", getattr(self, name), low)
        for name, zero_ok in (("lr", False), ("weight_decay", True), ("grad_clip", False)):
            require_number(f"hypernetwork option {name}", getattr(self, name), zero_ok)
        if self.layer not in LAYERS:
            raise HypernasError(f"hypernetwork option layer must be one of {', '.join(LAYERS)}, not {self.layer!r}")
        if self.layer == "transformer" and self.hidden % HyperConfig.heads:
            raise HypernasError(f"hypernetwork option hidden must be a multiple of the transformer's "
                                f"{HyperConfig.heads} heads, not {self.hidden}")


def _sample_infos(space, rng: random.Random, n: int, data: Dataset, options: dict) -> list:
    """`n` validated, non-degenerate architectures (a constant network teaches nothing)."""
    infos = []
    while len(infos) < n:
        _, info = space.build_info(RandomTrial(rng), data.in_channels, data.num_classes, **options)
        if not info.degenerate:
            infos.append(info)
    return infos


def hypernet_loss(ghn: GraphHyperNetwork, infos: list, x: torch.Tensor, y: torch.Tensor,
                  noise: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the architectures run with their predicted weights."""
    ndim = ghn.config.ndim
    weights = ghn(encode(infos, ghn.config.ops, ndim, ghn.config.s_max).to(x.device), noise)
    ctx = RunContext(ndim, training=True, batch_stats=True)
    losses = [F.cross_entropy(Program(info, ndim).run(x, w, ctx), y) for info, w in zip(infos, weights)]
    return torch.stack(losses).mean()


def fit_hypernet(
    space_name: str,
    space_options: dict[str, Any],
    data: Dataset,
    config: FitConfig = FitConfig(),
    out: str | None = None,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Train (or with `resume`, continue) a hypernetwork; returns the final checkpoint dict."""
    space = get_space(space_name)
    options = space.resolve_options(space_options)
    if out:
        check_writable(out)
    record = {"space": space_name, "space_options": options, "data": data.signature(), "fit": asdict(config)}
    hyper = HyperConfig(ops=tuple(list_ops()), ndim=data.ndim, hidden=config.hidden, rounds=config.rounds,
                        rank=config.rank, s_max=config.s_max, layer=config.layer)
    torch.manual_seed(config.seed)  # seeded initialisation
    ghn = GraphHyperNetwork(hyper).to(device)
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
    if resume and out and os.path.exists(out):
        ckpt = load_checkpoint(out)
        _check_resumable(ckpt, record)
        ghn.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        arch_rng.setstate(_to_tuple(ckpt["rng"]["python"]))
        gen.set_state(ckpt["rng"]["torch"])
        step, skipped, ema, best = ckpt["step"], ckpt["skipped"], ckpt["loss_ema"], ckpt["best"]

    def state() -> dict:
        return {"format": "hypernas-hypernet", "version": 1, **record, "hyper": ghn.config.to_dict(),
                "step": step, "skipped": skipped, "loss_ema": ema, "model": ghn.state_dict(), "best": best,
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "rng": {"python": arch_rng.getstate(), "torch": gen.get_state()}}

    good = copy.deepcopy(state())  # the last good state, to roll back to after repeated NaNs
    failures = 0
    x_all, y_all = data.x_train, data.y_train  # train split only: validation is for scoring
    ghn.train()
    with tqdm(total=config.steps, initial=step, desc="hypernet", unit="step", disable=not progress) as bar:
        while step < config.steps:
            idx = torch.randint(len(x_all), (config.batch_size,), generator=gen)
            noise = torch.randn(config.meta_batch, ghn.config.noise, generator=gen).to(device)
            infos = _sample_infos(space, arch_rng, config.meta_batch, data, options)
            loss = hypernet_loss(ghn, infos, x_all[idx].to(device), y_all[idx].to(device), noise)
            opt.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
                torch.nn.utils.clip_grad_norm_(ghn.parameters(), config.grad_clip)
                opt.step()
            if torch.isfinite(loss) and all(torch.isfinite(p).all() for p in ghn.parameters()):
                failures = 0
                ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
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
                if out:
                    save_checkpoint(good, out)
    final = state()
    if out:
        save_checkpoint(final, out)
    return final


@torch.no_grad()
def validation_loss(ghn: GraphHyperNetwork, infos: list, data: Dataset, device: str = "cpu") -> float:
    """Mean cross-entropy of `infos` with central predicted weights on the validation slice."""
    ghn.eval()
    noise = torch.zeros(len(infos), ghn.config.noise, device=device)
    return hypernet_loss(ghn, infos, data.x_val.to(device), data.y_val.to(device), noise).item()


def _to_tuple(value: Any) -> Any:
    """`random.setstate` needs tuples; a checkpoint may hand back lists."""
    return tuple(_to_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def _check_resumable(ckpt: dict, record: dict) -> None:
    for key in ("space", "space_options", "data", "fit"):
        if key == "fit":
            mismatch = {k for k in record["fit"] if k != "steps" and ckpt["fit"].get(k) != record["fit"][k]}
        else:
            mismatch = ckpt.get(key) != record[key]
        if mismatch:
            raise CheckpointError(f"cannot resume: the checkpoint was made with {key} = {ckpt.get(key)}, "
                                  f"this run asks for {record[key]}")
