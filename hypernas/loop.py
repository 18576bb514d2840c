"""The search loop: ask, build, dedupe, check limits, score, tell, write, one batch at a time.

The sampler steers an in-memory mirror of the study (`hypernas.study.sync`), and each finished
batch is written to the storage in the background while the next one is scored. A duplicate
(by canonical hash) gets the first trial's values and `duplicate_of`. Several processes may run
the loop on one study; together they reach the total exactly.

Usage:
    timing = search_loop(cfg, study, get_space("nb201"), {"channels": 8, "cells": 1}, 1, 10, scorer)
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import optuna
from tqdm.auto import tqdm

from hypernas.budget import Measurer, Measures
from hypernas.config import MAX_SEED, SearchConfig
from hypernas.errors import HypernasError, SpaceError
from hypernas.graph import canonical_hash
from hypernas.optuna_private import storage_of
from hypernas.samplers import TimedSampler, make_sampler
from hypernas.score import NetworkScorer
from hypernas.spaces import Networks
from hypernas.study.storage import worker_slot
from hypernas.study.sync import Mirror, Writer, shared_attrs

STALE_TRIALS = 2000  # stop after this many trials in a row found nothing new (the space looks exhausted)


def search_loop(cfg: SearchConfig, study: optuna.Study, space, options: dict[str, Any], in_channels: int,
                num_classes: int, scorer: NetworkScorer, progress: bool = True, initial: list[dict] | None = None,
                measurer: Measurer | None = None, prune_copies: bool = False,
                stale_trials: float = STALE_TRIALS) -> dict[str, float]:
    """Ask, build, deduplicate, score and tell until `study` holds `cfg.trials` completed trials
    (distinct architectures with `cfg.distinct`); returns seconds per phase. Several processes
    may run it on one study at once: together they reach the total exactly.

    `scorer` is a `NetworkScorer`: the hypernetwork's `Scorer`, or the benchmark's table
    oracle, which is how the oracle benchmark runs this very loop.
    `initial` holds parameters to try first (`hypernas.initial_design`), when the study is new.
    `measurer` (`hypernas.budget`) measures each new network against the search's limits, and
    its latency where an objective asks for it; without it the scorer's sizes are used.
    `prune_copies` stores duplicates PRUNED (`hypernas.study.sync.stored`), so that the
    dashboard's charts and "best trials" show each network once; the benchmarks replay this
    loop with duplicates complete, as their per-trial figures count them. `stale_trials` in a row
    that find nothing new stop it (`math.inf`: never, to grow a study past its space's size).

    Usage: search_loop(cfg, study, get_space("nb201"), {"channels": 8, "cells": 1}, 1, 10, scorer)
    """
    networks = Networks(space, options, in_channels, num_classes)
    timer = Timer()
    start_all = time.perf_counter()
    with worker_slot(storage_of(study), study.study_name) as index:  # a rerun after a crash keeps index and seed
        seed = (cfg.seed + 7919 * index) % (MAX_SEED + 1)  # apart per worker, and a seed numpy takes
        sampler = TimedSampler(make_sampler(cfg.sampler, seed, space, cfg.sampler_options, networks, cfg.limits.count,
                                             batch=cfg.trial_batch))
        with _optuna_quiet():  # the mirror is ours, not the user's: no "A new study created in memory" line
            steer = optuna.create_study(directions=[d for d in study.directions], sampler=sampler)
        writer = Writer(study, cfg.trials, cfg.distinct, limited=cfg.limits.active, prune_copies=prune_copies)
        mirror = Mirror(study, steer, writer)
        try:
            loop = _Loop(cfg, mirror, networks, scorer, measurer, stale_trials, done=mirror.sync())
            if mirror.known == 0:
                for params in initial or []:
                    steer.enqueue_trial(params)
            loop.run(timer, progress)
        finally:
            with timer("storage_wait"):
                writer.close()  # flush what was scored, also on Ctrl-C
    return {**timer.seconds, "sampler": sampler.seconds, "sampler_cpu": sampler.cpu_seconds,  # inside "ask",
            # which also builds the asked networks
            "storage_busy": writer.busy, "total": time.perf_counter() - start_all}


class Timer:
    """Seconds per phase, added up over the batches: `with timer("score"): ...`."""

    def __init__(self):
        self.seconds = dict.fromkeys(("ask", "score", "bookkeeping", "storage_wait"), 0.0)

    @contextlib.contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - start


@dataclass
class _Asked:
    """One asked trial and what building its network gave: the graph, or the error."""
    trial: optuna.trial.Trial
    graph: Any = None
    info: Any = None
    error: str | None = None
    key: str | None = None  # the canonical hash


@dataclass
class _Loop:
    """The search loop's steps, one batch at a time: ask, build, dedupe, check limits, score,
    tell, write. `done` counts toward the total; `stale` counts trials in a row with nothing new."""
    cfg: SearchConfig
    mirror: Mirror
    networks: Networks
    scorer: NetworkScorer
    measurer: Measurer | None
    stale_trials: float
    done: int = 0
    stale: int = 0
    told: list = field(default_factory=list)  # the last batch's finished trials, not yet handed to the writer

    @property
    def unit(self) -> str:
        return "arch" if self.cfg.distinct else "trial"

    def run(self, timer: Timer, progress: bool) -> None:
        cfg, started = self.cfg, time.perf_counter()
        with tqdm(total=cfg.trials, initial=min(self.done, cfg.trials), desc="search", unit=self.unit,
                  disable=not progress) as bar:
            try:
                while not self.finished(started):
                    with timer("ask"):
                        asked = self.ask()
                    with timer("storage_wait"):
                        self.write()  # the last batch, written while this one is scored (below)
                    if not asked:
                        continue  # others filled the room meanwhile: the storage's count decides, in `finished`
                    with timer("bookkeeping"):
                        new = self.dedupe(asked)
                        measures = self.check_limits(new)
                    with timer("score"):
                        scores = self.score(new, measures)
                    with timer("bookkeeping"):
                        self.told = self.tell(asked, new, measures, scores)
                    bar.update(min(self.done, cfg.trials) - bar.n)
                    best = max((v[0] for v, *_ in self.mirror.cache.values()), default=float("nan"))
                    bar.set_postfix(best=f"{best:.4f}", unique=len(self.mirror.cache), refresh=False)
            finally:
                with timer("storage_wait"):
                    self.write()  # also on Ctrl-C: what was scored is kept

    def write(self) -> None:
        """The last told batch handed to the background writer. It is handed over after the next
        batch was asked, so that the writer's Python work runs beside scoring, whose torch calls
        release the interpreter lock, and not beside the sampler, which needs it throughout."""
        if self.told:
            self.mirror.writer.put(self.told)
            self.told = []

    def finished(self, started: float) -> bool:
        """The total reached (by the storage's count), `--timeout` passed, or the space exhausted."""
        cfg, writer = self.cfg, self.mirror.writer
        if writer.full:
            return True
        if self.done >= cfg.trials:  # by this worker's count; the storage's decides
            self.write()  # counted with the rest
            self.mirror.sync()  # others' trials, taken in now so that they are not counted twice below
            self.done = writer.counted()
            if self.done >= cfg.trials:
                return True
        if cfg.timeout is not None and time.perf_counter() - started >= cfg.timeout:
            print(f"stopping the search at --timeout {cfg.timeout:g} s, after {self.done} {self.unit}s")
            return True
        if self.stale >= self.stale_trials:
            warnings.warn(f"stopping at {self.done} {self.unit}s: the last {self.stale} trials found nothing new, "
                          f"so the space (or the sampler's reach) looks exhausted")
            return True
        return False

    def ask(self) -> list[_Asked]:
        """Others' new trials taken in, then one batch asked and its networks built."""
        self.done += self.mirror.sync()
        asked = []
        for _ in range(max(0, min(self.cfg.trial_batch, self.cfg.trials - self.done))):
            a = _Asked(self.mirror.steer.ask())
            try:
                a.graph, a.info = self.networks.build(a.trial)
            except HypernasError as err:
                a.error = str(err)
            asked.append(a)
        if asked and all(a.error is not None for a in asked):
            raise SpaceError(f"every architecture of a batch failed to build; the first error: {asked[0].error}")
        return asked

    def dedupe(self, asked: list[_Asked]) -> dict[str, Any]:
        """The batch's networks seen neither before nor earlier in it: hash -> network."""
        for a in asked:
            if a.error is None:
                a.key = canonical_hash(a.info)
        return {a.key: a.info for a in asked if a.error is None and a.key not in self.mirror.cache}

    def check_limits(self, new: dict[str, Any]) -> dict[str, Measures]:
        """Each new network measured against the limits (and its latency), where they are set."""
        return {k: self.measurer.measure(info, k) for k, info in new.items()} if self.measurer else {}

    def score(self, new: dict[str, Any], measures: dict[str, Measures]) -> dict[str, Any]:
        """The new networks within the limits, scored in one batched pass: hash -> `Score`."""
        feasible = [k for k in new if k not in measures or measures[k].feasible]  # never one over a limit
        return dict(zip(feasible, self.scorer.score([new[k] for k in feasible], keys=feasible)))

    def tell(self, asked: list[_Asked], new: dict[str, Any], measures: dict[str, Measures],
             scores: dict[str, Any]) -> list[optuna.trial.FrozenTrial]:
        """Each trial told its values and recorded (a duplicate copies the first of its network's);
        returns the batch's finished trials, to be written."""
        cfg, steer, cache = self.cfg, self.mirror.steer, self.mirror.cache
        for a in asked:
            trial = a.trial
            if a.error is not None:
                trial.set_user_attr("error", a.error)
                steer.tell(trial, state=optuna.trial.TrialState.FAIL)
                self.stale += 1
                continue
            if a.key not in cache:  # the first trial with this network, in this batch or ever
                values, attrs = _told(cfg, scores.get(a.key), measures.get(a.key), new[a.key].degenerate)
                cache[a.key] = (values, trial.number, shared_attrs(attrs))
                counted = attrs.get("feasible", True)
                self.done += cfg.distinct and counted
                self.stale = 0 if counted else self.stale + 1
                record = {"arch": self.networks.space.describe(a.graph), "hash": a.key, "duplicate": False, **attrs}
            else:
                values, first, shared = cache[a.key]
                counted = shared.get("feasible", True)
                record = {"arch": self.networks.space.describe(a.graph), "hash": a.key, "duplicate_of": first,
                          "duplicate": True, **shared}  # `duplicate`: a filter in the dashboard
                self.stale += 1
            for name, value in record.items():
                trial.set_user_attr(name, value)
            steer.tell(trial, values)
            self.done += (not cfg.distinct) and counted
        numbers = {a.trial.number for a in asked}  # not simply the last trials: enqueued ones may wait behind
        return [t for t in steer.get_trials(deepcopy=False) if t.number in numbers]


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
