"""`hypernas search`: Optuna steers, the hypernetwork scores, the best are trained normally.

The loop asks Optuna for a batch of trials, builds their graphs, looks each canonical
hash up in a cache (a duplicate gets the cached score and `duplicate_of`), scores the new
ones in one batched pass, and tells Optuna the results. The sampler steers an in-memory
mirror of the study, and each finished batch is written to the storage in the background
(`hypernas.study.sync`). Rerunning the same command resumes: finished trials are loaded
back, neither re-scored nor retrained. Then `hypernas.finals` trains the best.

Run directory (`--runs`/`--study`): `study.db` (SQLite, unless `--storage`), `hypernet.pt`,
`artifacts/` (drawings shown by optuna-dashboard), `final/` (weights of trained candidates).

Usage:
    result = run_search(SearchConfig(space="nb201", space_options={"channels": 8, "cells": 1}, trials=1000))
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from tqdm.auto import tqdm

from hypernas.budget import Measurer, Measures, check_meetable
from hypernas.config import MAX_SEED, SearchConfig
from hypernas.data import Dataset, load_dataset
from hypernas.errors import HypernasError, SpaceError, StorageError
from hypernas.finals import finalize
from hypernas.ghn.checkpoint import Hypernet, check_space, load_hypernet, warn_unfinished
from hypernas.ghn.fit import check_resumable, fit_hypernet, fit_record
from hypernas.graph import canonical_hash
from hypernas.optuna_private import storage_of
from hypernas.samplers import TimedSampler, make_sampler
from hypernas.score import Scorer
from hypernas.spaces import Space, get_space
from hypernas.study.record import check_record, find_study, open_study, scored_record, study_record
from hypernas.study.storage import check_not_gone, open_storage, study_lock, worker_slot
from hypernas.study.sync import FINISHED, Mirror, Writer, shared_attrs

STALE_TRIALS = 2000  # stop after this many trials in a row found nothing new (the space looks exhausted)


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
    final, tau = finalize(cfg, study, data, space, hypernet.model, progress)
    return SearchResult(study, final, tau, timing)


def search_loop(cfg: SearchConfig, study: optuna.Study, space, options: dict[str, Any], in_channels: int,
                num_classes: int, scorer, progress: bool = True, initial: list[dict] | None = None,
                measurer: Measurer | None = None, prune_copies: bool = False,
                stale_trials: float = STALE_TRIALS) -> dict[str, float]:
    """Ask, build, deduplicate, score and tell until `study` holds `cfg.trials` completed trials
    (distinct architectures with `cfg.distinct`); returns seconds per phase. Several processes
    may run it on one study at once: together they reach the total exactly.

    `scorer` is anything with `score(infos, keys) -> list[Score]`: the hypernetwork's `Scorer`,
    or the benchmark's table oracle, which is how the oracle benchmark runs this very loop.
    `initial` holds parameters to try first (`hypernas.initial_design`), when the study is new.
    `measurer` (`hypernas.budget`) measures each new network against the search's limits, and
    its latency where an objective asks for it; without it the scorer's sizes are used.
    `prune_copies` stores duplicates PRUNED (`hypernas.study.sync.stored`), so that the
    dashboard's charts and "best trials" show each network once; the benchmarks replay this
    loop with duplicates complete, as their per-trial figures count them. `stale_trials` in a row
    that find nothing new stop it (`math.inf`: never, to grow a study past its space's size).

    Usage: search_loop(cfg, study, get_space("nb201"), {"channels": 8, "cells": 1}, 1, 10, scorer)
    """
    def graph_of(params: dict[str, Any]):
        return space.build_info(optuna.trial.FixedTrial(params), in_channels, num_classes, **options)[1]

    graph_of.context = (space.name, json.dumps(options, sort_keys=True, default=str), in_channels, num_classes)

    timing = {"ask": 0.0, "score": 0.0, "bookkeeping": 0.0, "storage_wait": 0.0}
    start_all = time.perf_counter()
    with worker_slot(storage_of(study), study.study_name) as index:  # a rerun after a crash keeps index and seed
        seed = (cfg.seed + 7919 * index) % (MAX_SEED + 1)  # apart per worker, and a seed numpy takes
        sampler = TimedSampler(make_sampler(cfg.sampler, seed, space, cfg.sampler_options, graph_of, cfg.limits.count))
        with _optuna_quiet():  # the mirror is ours, not the user's: no "A new study created in memory" line
            steer = optuna.create_study(directions=[d for d in study.directions], sampler=sampler)
        writer = Writer(study, cfg.trials, cfg.distinct, limited=cfg.limits.active, prune_copies=prune_copies)
        mirror = Mirror(study, steer, writer)
        try:
            done = mirror.sync()
            if mirror.known == 0:
                for params in initial or []:
                    steer.enqueue_trial(params)
            _batches(cfg, mirror, done, space, options, (in_channels, num_classes), scorer, timing, progress, measurer,
                     stale_trials)
        finally:
            start = time.perf_counter()
            writer.close()  # flush what was scored, also on Ctrl-C
            timing["storage_wait"] += time.perf_counter() - start
    timing["sampler"] = sampler.seconds  # inside "ask", which also builds the networks the sampler is asked for
    timing["storage_busy"] = writer.busy
    timing["total"] = time.perf_counter() - start_all
    return timing


@contextlib.contextmanager
def _optuna_quiet():
    """Optuna's informational log lines held back for the block, its verbosity restored after."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _told(cfg: SearchConfig, s: Any, m: Measures | None, degenerate: bool) -> tuple[list[float], dict[str, Any]]:
    """What a new network's trial tells Optuna and records. One over a limit was not scored:
    its score is 0, the worst, so that every sampler steers away from it, and its constraint
    values say by how much it missed (`hypernas.budget`). A degenerate network (cut off from
    its input) is marked: it is never a finalist."""
    if m is not None and not m.feasible:
        attrs = {"params": m.params, "flops": m.flops, "degenerate": degenerate, **m.attrs}
        score = 0.0
    else:
        attrs = {"params": s.params, "flops": s.flops, "score": s.score, "score_std": s.score_std,
                 "accuracy": s.accuracy, "accuracy_std": s.accuracy_std, "loss": s.loss, "loss_std": s.loss_std,
                 "degenerate": degenerate, **(m.attrs if m is not None else {})}
        score = s.score
    others = {"params": attrs["params"], "flops": attrs["flops"], "latency": attrs.get("latency_ms")}
    return [score] + [others[o] for o in cfg.objectives[1:]], attrs


def _batches(cfg, mirror: Mirror, done: int, space, options, io, scorer, timing, progress, measurer,
             stale_trials) -> None:
    steer, writer, cache = mirror.steer, mirror.writer, mirror.cache
    stale = 0  # trials in a row that found no new architecture
    started = time.perf_counter()
    unit = "arch" if cfg.distinct else "trial"
    with tqdm(total=cfg.trials, initial=min(done, cfg.trials), desc="search", unit=unit, disable=not progress) as bar:
        while not writer.full:
            if done >= cfg.trials:  # by this worker's count; the storage's decides
                mirror.sync()  # others' trials, taken in now so that they are not counted twice below
                done = writer.counted()
                if done >= cfg.trials:
                    break
            if cfg.timeout is not None and time.perf_counter() - started >= cfg.timeout:
                print(f"stopping the search at --timeout {cfg.timeout:g} s, after {done} {unit}s")
                break
            if stale >= stale_trials:
                warnings.warn(f"stopping at {done} {unit}s: the last {stale} trials found nothing new, "
                              f"so the space (or the sampler's reach) looks exhausted")
                break
            t0 = time.perf_counter()
            done += mirror.sync()
            asked, graphs, infos, errors = [], [], [], []
            for _ in range(max(0, min(cfg.trial_batch, cfg.trials - done))):
                trial = steer.ask()
                asked.append(trial)
                try:
                    G, info = space.build_info(trial, *io, **options)
                    error = None
                except HypernasError as err:
                    G, info, error = None, None, str(err)
                graphs.append(G)
                infos.append(info)
                errors.append(error)
            if not asked:
                continue  # others filled the room meanwhile: the storage's count decides, above
            if all(e is not None for e in errors):
                raise SpaceError(f"every architecture of a batch failed to build; the first error: {errors[0]}")
            t1 = time.perf_counter()
            keys = [canonical_hash(info) if info is not None else None for info in infos]
            new = {k: info for k, info in zip(keys, infos) if k is not None and k not in cache}
            measures = {k: measurer.measure(info, k) for k, info in new.items()} if measurer else {}
            feasible = {k: info for k, info in new.items() if k not in measures or measures[k].feasible}
            t2 = time.perf_counter()
            fresh = dict(zip(feasible, scorer.score(list(feasible.values()), keys=list(feasible))))  # never over a limit
            t3 = time.perf_counter()
            for trial, G, key, error in zip(asked, graphs, keys, errors):
                if error is not None:
                    trial.set_user_attr("error", error)
                    steer.tell(trial, state=optuna.trial.TrialState.FAIL)
                    stale += 1
                    continue
                if key not in cache:  # the first trial with this network, in this batch or ever
                    m = measures.get(key)
                    values, attrs = _told(cfg, fresh.get(key), m, new[key].degenerate)
                    cache[key] = (values, trial.number, shared_attrs(attrs))
                    counted = attrs.get("feasible", True)
                    done, stale = done + (cfg.distinct and counted), 0 if counted else stale + 1
                    for name, value in {"arch": space.describe(G), "hash": key, "duplicate": False, **attrs}.items():
                        trial.set_user_attr(name, value)
                else:
                    values, first, shared = cache[key]
                    counted = shared.get("feasible", True)
                    for name, value in {"arch": space.describe(G), "hash": key, "duplicate_of": first,
                                        "duplicate": True, **shared}.items():  # `duplicate`: a filter in the dashboard
                        trial.set_user_attr(name, value)
                    stale += 1
                steer.tell(trial, values)
                done += (not cfg.distinct) and counted
            numbers = {t.number for t in asked}  # not simply the last trials: enqueued ones may wait behind
            batch = [t for t in steer.get_trials(deepcopy=False) if t.number in numbers]
            t4 = time.perf_counter()
            writer.put(batch)
            t5 = time.perf_counter()
            for name, seconds in (("ask", t1 - t0), ("bookkeeping", t2 - t1 + t4 - t3), ("score", t3 - t2),
                                  ("storage_wait", t5 - t4)):
                timing[name] += seconds
            bar.update(min(done, cfg.trials) - bar.n)
            best = max((v[0] for v, *_ in cache.values()), default=float("nan"))
            bar.set_postfix(best=f"{best:.4f}", unique=len(cache), refresh=False)
