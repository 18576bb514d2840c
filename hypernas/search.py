"""`hypernas search`: Optuna steers, the hypernetwork scores, the best are trained normally.

The data is read, the limits checked, the hypernetwork trained (or loaded), then
`hypernas.loop` asks, scores and tells, and `hypernas.finals` trains the best. Rerunning the
same command resumes: finished trials are loaded back, neither re-scored nor retrained.

Run directory (`--runs`/`--study`): `study.db` (SQLite, unless `--storage`), `hypernet.pt`,
`artifacts/` (drawings shown by optuna-dashboard), `final/` (weights of trained candidates).

Usage:
    result = run_search(SearchConfig(space="nb201", space_options={"channels": 8, "cells": 1}, trials=1000))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import optuna
import torch

from hypernas.budget import Measurer, check_meetable
from hypernas.config import SearchConfig
from hypernas.data import Dataset, load_dataset
from hypernas.errors import StorageError
from hypernas.finals import finalize
from hypernas.ghn.checkpoint import Hypernet, check_space, load_hypernet, warn_unfinished
from hypernas.ghn.fit import check_resumable, fit_hypernet, fit_record
from hypernas.loop import search_loop
from hypernas.samplers import make_sampler
from hypernas.score import Scorer
from hypernas.spaces import Space, get_space
from hypernas.study.record import check_record, find_study, open_study, scored_record, study_record
from hypernas.study.storage import check_not_gone, open_storage, study_lock
from hypernas.study.sync import FINISHED


@dataclass
class SearchResult:
    study: optuna.Study
    final: list[dict]  # one row per trained candidate
    tau: float | None  # Kendall tau between score and trained accuracy over `final`
    timing: dict[str, float]


def prepare_hypernet(cfg: SearchConfig, space: Space, options: dict[str, Any], data: Dataset,
                     scored_with: str | None = None) -> Hypernet:
    """The search's hypernetwork, loaded once: `cfg.hypernet` (checked against the space and
    data), or the run directory's, trained or continued first when it is not finished.
    `scored_with` is the digest of the hypernetwork a resumed study's trials were scored with:
    then only that one is taken, and it is never retrained under them."""
    if cfg.hypernet:  # refuse a checkpoint made for other data or another space early
        hypernet = load_hypernet(cfg.hypernet, data=data, device=cfg.device)
        check_space(hypernet.checkpoint, space.name, options, cfg.hypernet)
        _check_same(cfg, hypernet, scored_with)
        warn_unfinished(hypernet)
        return hypernet
    path = cfg.hypernet_path
    if scored_with and not os.path.exists(path):
        raise StorageError(f"study {cfg.study!r} was scored with the hypernetwork {path}, which is gone; "
                           "pass --hypernet with that checkpoint, or pick another --study")
    if os.path.exists(path):
        hypernet = load_hypernet(path, data=data, device=cfg.device)
        _check_same(cfg, hypernet, scored_with)
        steps = hypernet.checkpoint.get("step", 0)
        if scored_with and cfg.fit.steps > steps:
            raise StorageError(f"study {cfg.study!r} was scored with {path} after {steps} training steps; "
                               f"--fit-steps {cfg.fit.steps} would retrain it under those trials: pick another --study")
        if steps >= cfg.fit.steps or scored_with:
            check_resumable(hypernet.checkpoint, fit_record(space, options, data, cfg.fit), path)
            print(f"hypernetwork ready: {path}")  # trained by an earlier run or another worker
            return hypernet
    print(f"training the hypernetwork: {path}")
    fit_hypernet(space, options, data, cfg.fit, out=path, resume=True, device=cfg.device)
    return load_hypernet(path, data=data, device=cfg.device)


def _check_same(cfg: SearchConfig, hypernet: Hypernet, scored_with: str | None) -> None:
    if scored_with and hypernet.sha256 != scored_with:
        raise StorageError(f"study {cfg.study!r} was scored with another hypernetwork (digest {scored_with}) than "
                           f"{hypernet.path} (digest {hypernet.sha256}); pick another --study, or pass the original")


def run_search(cfg: SearchConfig, progress: bool = True) -> SearchResult:
    """Search, then train the top candidates. Rerun with the same config to resume."""
    space = get_space(cfg.space)
    options = space.resolve_options(cfg.space_options)
    make_sampler(cfg.sampler, cfg.seed, space, cfg.sampler_options)  # a bad sampler option fails now, not after training
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction, layout=cfg.layout)
    print(data.summary())  # what was read, before any training
    torch.manual_seed(cfg.seed)
    measurer = None
    if cfg.limits.active or "latency" in cfg.objectives:
        measurer = Measurer(cfg.limits, cfg.objectives, data.ndim, data.input_size, cfg.device)
        check_meetable(cfg.limits, measurer, space, options, data.in_channels, data.num_classes, progress)  # before training
    check_not_gone(cfg.storage_url, cfg.study)  # before anything writes to a file the study vanished from
    storage = open_storage(cfg.storage_url)
    record = study_record(cfg, space, options, data)
    scored = scored_record(find_study(storage, cfg.study))
    check_record(cfg.study, scored, record)  # before any training: a changed resume is refused at once
    with study_lock(storage, cfg.study, "hypernet"):  # workers started together train it once
        hypernet = prepare_hypernet(cfg, space, options, data, scored.get("hypernet_sha256"))
    study = open_study(cfg, storage, record, hypernet)
    scorer = Scorer(hypernet.model, data, samples=cfg.samples, seed=cfg.seed, device=cfg.device, split=cfg.score_split,
                    space=None)  # its graphs come from the space, checked against the checkpoint above
    initial = None
    if cfg.warm_start and not study.get_trials(deepcopy=False):  # a resumed study has its start already
        from hypernas.initial_design import synflow_design

        initial = synflow_design(space, options, data.in_channels, data.num_classes, data.input_size, cfg.warm_start,
                                 cfg.warm_pool, cfg.seed, progress=progress)
    timing = search_loop(cfg, study, space, options, data.in_channels, data.num_classes, scorer, progress, initial,
                         measurer, prune_copies=True)
    study.set_user_attr("search_timing", {k: round(v, 3) for k, v in timing.items()})  # the last run's
    if cfg.limits.active:
        study.set_user_attr("infeasible_trials", sum(not t.user_attrs.get("feasible", True) for t in study.get_trials(
            deepcopy=False, states=FINISHED)))
    final, tau = finalize(cfg, study, data, space, hypernet.model, progress) if cfg.top_k else ([], None)  # no final stage
    return SearchResult(study, final, tau, timing)
