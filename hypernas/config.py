"""Every option a user can set: one frozen dataclass per job, each field declared once.

The command line derives its flags from these fields and a study config (TOML) uses the
same names (`hypernas.options`): `top_k = 5` in TOML is `--top-k 5`, and the table `[fit]`
holds hypernetwork training, `--fit-steps` on `hypernas search`. Importing this module imports no
torch (a `SearchConfig` asks torch whether its device exists only when it is made).

- `TrainConfig`: normal training of one architecture (the reference protocol).
- `HyperConfig`: the hypernetwork's own shape; `FitConfig` embeds it with its training.
- `SearchConfig`: `hypernas search`, with `FitConfig` as its `[fit]` table.

Usage:
    cfg = load_search_config("studies/nb201_mnist1d.toml", overrides={"trials": 200})
    cfg = SearchConfig(space="nb201", space_options={"channels": 8, "cells": 1}, trials=1000)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from hypernas.certainty import PICKS
from hypernas.errors import OptionError
from hypernas.options import build, check, merge, option, read_mapping
from hypernas.rungs import SIGNALS, check_schedule, survivors

OBJECTIVES = {"score": "maximize", "params": "minimize", "flops": "minimize", "latency": "minimize"}  # -> direction
LAYOUTS = ("ncl", "nlc", "nchw", "nhwc", "nhw")  # how an .npz's x is laid out (`hypernas.data`)
SPLITS = ("val", "train")  # what a score is computed on (`hypernas.score` says when each helps)
VAL_FRACTION = 0.1  # share of the train split held out to score architectures
MAX_SEED = 2**32 - 1  # numpy's and the samplers' seeds stop there
MAX_SAMPLES = 1000  # draws per score: beyond, one architecture takes minutes for a std it does not need


LAYERS = ("mp", "transformer")  # the hypernetwork's layer kinds (`hypernas.ghn.model` binds each to its class)


def _samplers() -> tuple[str, ...]:
    from hypernas.samplers import SAMPLERS

    return tuple(SAMPLERS)


@dataclass(frozen=True)
class TrainConfig:
    """Normal training: SGD with Nesterov momentum and a cosine schedule to zero."""

    epochs: int = option(6, "training epochs (short on purpose: at 12 MNIST-1D saturates and ranks nothing)", low=0)
    lr: float = option(0.1, "learning rate", low=0)
    momentum: float = option(0.9, "Nesterov momentum", low=0)
    weight_decay: float = option(5e-4, "weight decay", low=0)
    batch_size: int = option(128, "samples per step", low=1)
    average_epochs: int = option(0, "average the weights over the last N epochs (SWA) and re-estimate BatchNorm's "
                                    "statistics; 0 keeps the last weights", low=0)

    def __post_init__(self):
        check(self)
        if self.average_epochs > self.epochs:
            raise OptionError(f"average_epochs ({self.average_epochs}) cannot exceed epochs ({self.epochs})")


@dataclass(frozen=True)
class HyperConfig:
    """The graph hypernetwork's shape (`hypernas.ghn.model`), fixed when it is created."""

    hidden: int = option(64, "width of the node embeddings", low=1)
    rounds: int = option(4, "message-passing rounds or transformer layers; with virtual edges up to s_max hops, "
                            "4 rounds reach ~40 nodes away", low=1)
    rank: int = option(16, "rank of each predicted weight's core (channels mix through it)", low=1)
    max_channels: int = option(1024, "the widest layer whose weights it can predict", low=1)
    max_kernel: int = option(7, "the largest kernel whose weights it can predict", low=1)
    noise: int = option(8, "dimensions of the noise input (a draw of the noise is a draw of the weights)", low=1)
    s_max: int = option(10, "virtual edges up to this many hops (1 = none)", low=0)
    layer: str = option("mp", "message passing (GHN-2) or a graph transformer (GHN-3)", choices=LAYERS)
    heads: int = option(4, "attention heads of the transformer layer", low=1)

    def __post_init__(self):
        check(self)
        if self.layer == "transformer" and self.hidden % self.heads:
            raise OptionError(f"hidden must be a multiple of the transformer's {self.heads} heads, not {self.hidden}")


@dataclass(frozen=True)
class FitConfig:
    """Training of the hypernetwork (`hypernas.ghn.fit`), with its shape in `hyper`."""

    steps: int = option(3000, "training steps", low=0)
    meta_batch: int = option(8, "architectures per data batch (as GHN-2)", low=1)
    batch_size: int = option(128, "samples per step", low=1)
    lr: float = option(2e-3, "AdamW learning rate", above=0)
    weight_decay: float = option(1e-5, "AdamW weight decay", low=0)
    warmup: int = option(100, "steps of linear learning-rate warm-up", low=0)
    grad_clip: float = option(5.0, "gradient norm clip", above=0)
    checkpoint_every: int = option(250, "steps between checkpoints", low=1)
    seed: int = option(0, "seed of the initialisation and the architecture draws", low=0, high=MAX_SEED)
    # Early stopping: every `eval_every` steps, the mean validation loss of `eval_archs` fixed
    # architectures; the checkpoint's `best` weights are those with the lowest. Trained too
    # long, the hypernetwork memorises the train split and ranks worse (BENCHMARKS.md).
    eval_every: int = option(100, "steps between early-stopping checks", low=1)
    eval_archs: int = option(16, "fixed architectures of the early-stopping check", low=1)
    hyper: HyperConfig = option(HyperConfig(), "the hypernetwork's shape")

    def __post_init__(self):
        check(self)

    def record(self) -> dict[str, Any]:
        """One flat dict of every option, as a checkpoint records it."""
        from dataclasses import asdict

        flat = asdict(self)
        return {**{k: v for k, v in flat.items() if k != "hyper"}, **flat["hyper"]}


@dataclass(frozen=True)
class SearchConfig:
    """`hypernas search`: what to search, how to steer, how to score, what to train at the end."""

    space: str | None = option(None, "built-in space name, or path/to/file.py:function", group="search")
    dataset: str = option("mnist1d", "mnist1d, digits, cifar10, or path/to/file.npz", group="search")
    layout: str | None = option(None, "how the .npz's x is laid out: N samples, C channels, L steps, H x W images "
                                      "[default: read from the shape where a small channel axis settles it]",
                                choices=LAYOUTS, group="search")
    space_options: dict = option({}, "the space's options (--space-option KEY=VALUE, --channels, --cells)", flag=False,
                                 group="search")
    data_dir: str | None = option(None, "directory holding the cifar10 python-pickle files", group="search")
    val_fraction: float = option(VAL_FRACTION, "share of the train split held out for scoring", above=0, below=1,
                                 group="search")
    study: str = option("hypernas", "study name; the run directory is RUNS/STUDY", group="storage")
    runs: str = option("runs", "folder of run directories", group="storage")
    storage: str | None = option(None, "Optuna storage URL [default: SQLite in the run directory]", group="storage")
    trials: int = option(1000, "scored trials to reach in total", low=1, group="search")
    sampler: str = option("tpe", "the sampler that steers ([sampler_options] in --config for its own options)",
                          choices=_samplers, group="search")
    sampler_options: dict = option({}, "keyword arguments of the sampler", flag=False, group="search")
    distinct: bool = option(False, "--trials counts distinct architectures; isomorphic duplicates are free",
                            group="search")
    warm_start: int = option(0, "try first the K best of warm_pool random architectures by synflow (data-free)", low=0,
                             group="search")
    warm_pool: int = option(200, "random architectures the warm start ranks", low=1, group="search")
    objectives: tuple[str, ...] = option(("score",), "comma-separated: score, then params, flops or latency for a "
                                         "Pareto front", choices=tuple(OBJECTIVES), group="search")
    max_params: int | None = option(None, "limit: at most this many parameters", low=1, group="limits")
    max_flops: int | None = option(None, "limit: at most this many multiply-accumulates per sample", low=1,
                                   group="limits")
    max_latency: float | None = option(None, "limit: at most this many milliseconds per batch-1 forward pass on "
                                             "--device (median of repeats after a warm-up)", above=0, group="limits")
    trial_batch: int = option(64, "trials asked and scored together", low=1, group="search")
    samples: int = option(2, "hypernetwork draws per score: the std is their spread", low=1, high=MAX_SAMPLES,
                          group="search")
    score_split: str = option("val", "score on the validation slice, or on as many samples of the hypernetwork's "
                                     "training split (it ranked better on MNIST-1D, worse on digits)", choices=SPLITS,
                                     group="search")
    hypernet: str | None = option(None, "a trained hypernetwork checkpoint; without it one is trained first",
                                  group="hypernetwork")
    fit: FitConfig = option(FitConfig(), "hypernetwork training", table="fit", group="hypernetwork")
    timeout: float | None = option(None, "stop scoring after this many seconds (as Optuna's optimize), then train "
                                         "the finalists; a rerun goes on", above=0, group="search")
    top_k: int = option(5, "distinct best architectures to train normally at the end", low=0, group="final stage")
    final_epochs: int = option(6, "epochs of each final training", low=0, group="final stage")
    final_rounds: int = option(1, "train the --top-k in this many rounds, each after refitting a model of trained "
                                  "accuracy on the ones before (hypernas.recalibrate)", low=1, group="final stage")
    final_seeds: int = option(1, "train each finalist this many times (seeds seed, seed+1, ...): its accuracy is "
                                  "their mean, its 95% interval from their spread", low=1, high=100,
                              group="final stage")
    final_race: int = option(0, "extra trainings to spend on the finalists whose interval overlaps the leader's, "
                                "one at a time, until the leader stands apart (needs --final-seeds 2 or more)", low=0,
                             group="final stage")
    final_pick: str = option("smallest", "the pick among the finalists tied with the best: the fewest parameters, "
                                         "the lowest latency, or the highest score; `--trial best` exports it",
                             choices=PICKS, group="final stage")
    final_init: str = option("random", "start each final training from random weights, or from the "
                                       "hypernetwork's prediction", choices=("random", "hypernet"), group="final stage")
    rungs: tuple[int, ...] | None = option(None, "epochs of short trainings between the score and the finals, e.g. "
                                                  "1,3: successive halving from the predicted weights, ranked on the "
                                                  "validation slice; the finals take its survivors [default: off]",
                                           group="rungs")
    rung_pool: int = option(15, "the best scored architectures the first rung trains", low=2, group="rungs")
    rung_keep: float = option(1 / 3, "the share of a rung promoted to the next (0.333: a third)", above=0, high=1,
                              group="rungs")
    rung_signal: str = option("loss", "what a rung ranks by on the validation slice: loss (finer with few samples) "
                                      "or accuracy", choices=SIGNALS, group="rungs")
    seed: int = option(0, "seed of the sampler, the scores' noise draws and the final training", low=0, high=MAX_SEED,
                       group="search")
    device: str = option("cpu", "cpu, cuda or cuda:N", group="search")

    def __post_init__(self):
        if self.space is None:
            raise OptionError("no search space: pass --space or a --config that names one")
        check(self)
        if self.objectives[0] != "score" or len(set(self.objectives)) != len(self.objectives):
            raise OptionError(f"objectives must start with 'score' and may add params, flops or latency, "
                              f"got {','.join(self.objectives)}")
        check_study_name(self.study)
        if self.final_rounds > max(1, self.top_k):
            raise OptionError(f"final_rounds {self.final_rounds} is more rounds than top_k {self.top_k} trainings")
        if self.final_rounds > 1 and len(self.objectives) > 1:
            raise OptionError("final_rounds serves one objective: with several the finalists spread along the front")
        if self.final_race and self.final_seeds < 2:
            raise OptionError("final_race compares intervals over training seeds: give final_seeds 2 or more "
                              "(--final-seeds 2)")
        if self.rungs is not None:
            self._check_rungs()
        if self.warm_start > self.warm_pool:
            raise OptionError(f"warm_start {self.warm_start} is more than the pool it is drawn from ({self.warm_pool})")
        from hypernas.device import check_device
        from hypernas.samplers import check_objectives

        check_objectives(self.sampler, len(self.objectives))
        check_device(self.device)  # from a flag, a study config or Python alike

    def _check_rungs(self) -> None:
        check_schedule(self.rungs)
        if len(self.objectives) > 1:
            raise OptionError("rungs rank by one validation signal: with several objectives the finalists spread "
                              "along the front instead (drop --rungs or the extra objectives)")
        if self.final_rounds > 1:
            raise OptionError("rungs and final_rounds are two ways to pick the finalists: use one of them")
        left = survivors(self.rung_pool, self.rungs, self.rung_keep)
        if left < self.top_k:
            raise OptionError(f"rungs over a pool of {self.rung_pool} keeping {self.rung_keep:g} leave {left} "
                              f"survivors, fewer than top_k {self.top_k}: raise rung_pool or rung_keep, or lower top_k")

    @property
    def limits(self):
        from hypernas.budget import Limits

        return Limits(self.max_params, self.max_flops, self.max_latency)

    @property
    def run_dir(self) -> str:
        return os.path.join(self.runs, self.study)

    @property
    def storage_url(self) -> str:
        return self.storage or sqlite_url(self.run_dir)

    @property
    def hypernet_path(self) -> str:
        return self.hypernet or os.path.join(self.run_dir, "hypernet.pt")


def check_study_name(name: Any) -> None:
    """A study name is a plain name: it names a folder under `runs`, so it must not leave it."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", name):
        raise OptionError(f"a study name is letters, digits, '.', '_' and '-' (not starting with '.'), "
                          f"at most 128 of them, got {name!r}")


def sqlite_url(run_dir: str) -> str:
    """The default storage: `study.db` in the run directory."""
    return f"sqlite:///{os.path.abspath(os.path.join(run_dir, 'study.db'))}"


# Keys that were renamed: a config that still uses the old name learns the new one.
RENAMED = {"batch": "trial_batch"}


def load_search_config(path: str | None, overrides: dict[str, Any] | None = None,
                       override_label: Any = None) -> SearchConfig:
    """A SearchConfig from a TOML study config, with `overrides` (TOML-shaped, e.g. the flags
    a user set) on top. Every key is checked against its option, naming the key.

    Usage: load_search_config("studies/nb201_mnist1d.toml", {"trials": 200, "fit": {"steps": 100}})
    """
    import tomllib

    raw: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else err
            raise OptionError(f"cannot read study config {path!r}: {reason}") from None
        if isinstance(raw.get("hypernet"), dict):
            raise OptionError(f"{path}: the [hypernet] table is now [fit] (hypernetwork training); "
                              "`hypernet` names a checkpoint file")
        for old, new in RENAMED.items():
            if old in raw:
                raise OptionError(f"{path}: option {old!r} is now {new!r}")
    values = read_mapping(SearchConfig, raw, path or "study config")
    if overrides:
        values = merge(values, read_mapping(SearchConfig, overrides, "command line", override_label))
    return build(SearchConfig, values)
