"""`hypernas search`: Optuna steers, the hypernetwork scores, the best are trained normally.

The loop asks Optuna for a batch of trials, builds their graphs, looks each canonical
hash up in a cache (a duplicate gets the cached score and `duplicate_of`), scores the new
ones in one batched pass, and tells Optuna the results. The sampler works on an in-memory
mirror of the study; each finished batch is written to the persistent storage at once, so
storage costs one write per trial instead of one per parameter and attribute, and a crash
loses at most the batch in flight. Rerunning the same command resumes: finished trials
are loaded back, neither re-scored nor retrained.

Run directory (`--runs`/`--study`): `study.db` (SQLite, unless `--storage`), `hypernet.pt`,
`artifacts/` (drawings shown by optuna-dashboard), `final/` (weights of trained candidates).

Usage:
    result = run_search(SearchConfig(space="nb201", space_options={"channels": 8, "cells": 1}, trials=1000))
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import optuna
import torch
from scipy import stats
from tqdm.auto import tqdm

from hypernas.data import VAL_FRACTION, Dataset, load_dataset
from hypernas.errors import HypernasError, SpaceError, require_int
from hypernas.ghn.checkpoint import check_space, load_checkpoint, load_hypernet
from hypernas.ghn.fit import FitConfig, fit_hypernet
from hypernas.graph import canonical_hash
from hypernas.score import SPLITS, Scorer
from hypernas.spaces import get_space
from hypernas.study import StorageError, annotate_trial, attach_artifact, open_storage, redact, study_lock
from hypernas.train import TrainConfig, train

OBJECTIVES = {"score": "maximize", "params": "minimize", "flops": "minimize"}
SAMPLERS = ("tpe", "gp", "nsga2", "random", "grid", "evolution", "local", "wlgp")
LOCAL_STARTUPS = ("random", "tpe", "gp", "wlgp")  # samplers local search may take its first trials from
STALE_TRIALS = 2000  # with `distinct`, stop after this many trials in a row found nothing new


@dataclass
class SearchConfig:
    space: str
    dataset: str = "mnist1d"
    space_options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    val_fraction: float = VAL_FRACTION
    study: str = "hypernas"
    runs: str = "runs"
    storage: str | None = None  # default: SQLite in the run directory
    trials: int = 1000
    sampler: str = "tpe"
    sampler_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the Optuna sampler
    distinct: bool = False  # `trials` counts distinct architectures; duplicates are free (cache hits)
    warm_start: int = 0  # first trials: the best of `warm_pool` random architectures by synflow (data-free)
    warm_pool: int = 200
    objectives: tuple[str, ...] = ("score",)
    batch: int = 64
    samples: int = 2  # hypernetwork draws per score: the std is their spread
    score_split: str = "val"  # "train" scores on training samples instead (hypernas.score says when that helps)
    hypernet: str | None = None  # a trained checkpoint; otherwise one is trained with `fit`
    fit: FitConfig = FitConfig()
    top_k: int = 5
    final_epochs: int = 6
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        self.objectives = tuple(self.objectives)
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown or not self.objectives or self.objectives[0] != "score" or len(set(self.objectives)) != len(self.objectives):
            raise HypernasError(f"--objectives must start with 'score' and may add params or flops, got {','.join(self.objectives)}")
        if self.sampler not in SAMPLERS:
            raise HypernasError(f"unknown sampler {self.sampler!r}; choose from {', '.join(SAMPLERS)}")
        if self.score_split not in SPLITS:
            raise HypernasError(f"--score-split must be one of {', '.join(SPLITS)}, not {self.score_split!r}")
        if self.sampler in ("grid", "evolution", "local", "wlgp") and len(self.objectives) > 1:
            raise HypernasError(f"the {self.sampler} sampler serves one objective; use tpe or nsga2 for several objectives")
        for name, low in (("trials", 1), ("batch", 1), ("samples", 1), ("top_k", 0), ("final_epochs", 0), ("seed", 0),
                          ("warm_start", 0), ("warm_pool", 1)):
            require_int(f"--{name.replace('_', '-')}", getattr(self, name), low)
        for name, kind in (("space", str), ("study", str), ("space_options", dict), ("sampler_options", dict),
                           ("distinct", bool)):
            if not isinstance(getattr(self, name), kind) or getattr(self, name) == "":
                raise HypernasError(f"study option {name} must be a {'non-empty string' if kind is str else kind.__name__},"
                                    f" got {getattr(self, name)!r}")
        if self.warm_start > self.warm_pool:
            raise HypernasError(f"--warm-start {self.warm_start} is more than the pool it is drawn from ({self.warm_pool})")

    @property
    def run_dir(self) -> str:
        return os.path.join(self.runs, self.study)

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{os.path.abspath(os.path.join(self.run_dir, 'study.db'))}"

    @property
    def hypernet_path(self) -> str:
        return self.hypernet or os.path.join(self.run_dir, "hypernet.pt")


@dataclass
class SearchResult:
    study: optuna.Study
    final: list[dict]  # one row per trained candidate
    tau: float | None  # Kendall tau between score and trained accuracy over `final`
    timing: dict[str, float]


def search_config(path: str | None, overrides: dict[str, Any]) -> SearchConfig:
    """A SearchConfig from a TOML study config, with command-line overrides on top.

    The TOML holds SearchConfig fields at the top level, `[space_options]`, and
    `[hypernet]` for hypernetwork training (FitConfig fields). Unknown keys are errors.
    """
    import tomllib

    raw: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise HypernasError(f"cannot read study config {path!r}: {err}") from None
    for table in ("space_options", "hypernet"):
        if not isinstance(raw.get(table, {}), dict):
            raise HypernasError(f"study option {table} must be a table ([{table}] in TOML), got {raw[table]!r}")
    fit = {**raw.pop("hypernet", {}), **overrides.pop("hypernet_fit", {})}
    merged = {**raw, **overrides, "space_options": {**raw.get("space_options", {}), **overrides.get("space_options", {})}}
    known = set(SearchConfig.__dataclass_fields__) - {"fit"}
    unknown = sorted(set(merged) - known)
    bad_fit = sorted(set(fit) - set(FitConfig.__dataclass_fields__))
    if unknown or bad_fit:
        raise HypernasError(f"unknown study option(s) {unknown + [f'hypernet.{k}' for k in bad_fit]}")
    if "space" not in merged:
        raise HypernasError("no search space: pass --space or a --config that names one")
    if "dataset" not in merged:
        merged["dataset"] = "mnist1d"
    return SearchConfig(**merged, fit=FitConfig(**fit))


def make_sampler(name: str, seed: int, space, options: dict[str, Any] | None = None,
                 graph_of: Callable[[dict[str, Any]], Any] | None = None) -> optuna.samplers.BaseSampler:
    """A seeded sampler: Optuna's TPE, Gaussian-process (gp), NSGA-II, random or grid, or
    regularized evolution, or local search.
    `options` are the sampler's own keyword arguments (e.g. {"multivariate": True} for TPE).
    `grid` needs a space that lists its grid. Local search takes `startup` (a sampler name) and
    `startup_options` for the sampler of its first `n_startup_trials`. `wlgp` (a GP over the
    graphs, `hypernas.wlgp`) needs `graph_of`, parameters -> network, which `search_loop` gives it.

    Usage: make_sampler("tpe", 0, get_space("nb201"), {"n_startup_trials": 5})
           make_sampler("local", 0, get_space("nb201"), {"n_startup_trials": 20, "startup": "tpe"})
    """
    classes = {"tpe": optuna.samplers.TPESampler, "gp": optuna.samplers.GPSampler,
               "nsga2": optuna.samplers.NSGAIISampler, "random": optuna.samplers.RandomSampler}
    args = dict(options or {})
    if name == "evolution":
        from hypernas.samplers import RegularizedEvolutionSampler as cls
    elif name == "local":
        from hypernas.samplers import LocalSearchSampler as cls

        startup = args.pop("startup", "random")
        if startup not in LOCAL_STARTUPS:  # grid and evolution keep state of their own that moves would confuse
            raise HypernasError(f"local search starts from {', '.join(LOCAL_STARTUPS)}, not {startup!r}")
        args["startup"] = make_sampler(startup, seed, space, args.pop("startup_options", None), graph_of)
    elif name == "wlgp":
        from hypernas.wlgp import WLGPSampler as cls

        args["graph_of"] = graph_of
    elif name == "grid":
        if space.grid is None:
            raise HypernasError(f"space {space.name!r} has no finite grid; use tpe, nsga2 or random")
        cls, args = optuna.samplers.GridSampler, {"search_space": space.grid, **args}
    elif name in classes:
        cls = classes[name]
    else:
        raise HypernasError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
    try:
        return cls(seed=seed, **args)
    except TypeError as err:  # a misspelt or foreign option: name it, do not ignore it
        raise HypernasError(f"sampler {name!r} does not take these options {sorted(args)}: {err}") from None


def file_digest(path: str) -> str:
    """The first 16 hex digits of a file's sha256: which checkpoint a study or cache was made with."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def _prepare_hypernet(cfg: SearchConfig, data: Dataset) -> str:
    if cfg.hypernet:  # refuse a checkpoint made for other data or another space early
        _, ckpt = load_hypernet(cfg.hypernet, data=data)
        check_space(ckpt, cfg.space, get_space(cfg.space).resolve_options(cfg.space_options), cfg.hypernet)
        return cfg.hypernet
    if os.path.exists(cfg.hypernet_path) and load_checkpoint(cfg.hypernet_path).get("step", 0) >= cfg.fit.steps:
        print(f"hypernetwork ready: {cfg.hypernet_path}")  # trained by an earlier run or another worker
    else:
        print(f"training the hypernetwork: {cfg.hypernet_path}")
    fit_hypernet(cfg.space, cfg.space_options, data, cfg.fit, out=cfg.hypernet_path, resume=True, device=cfg.device)
    return cfg.hypernet_path


def _open_study(cfg: SearchConfig, storage, hypernet: str, data: Dataset) -> optuna.Study:
    directions = [OBJECTIVES[o] for o in cfg.objectives]
    try:
        study = optuna.create_study(study_name=cfg.study, storage=storage, directions=directions, load_if_exists=True)
    except ValueError as err:
        raise StorageError(f"study {cfg.study!r} in {redact(cfg.storage_url)}: {err}") from None
    record = {"space": cfg.space, "space_options": get_space(cfg.space).resolve_options(cfg.space_options),
              "dataset": cfg.dataset, "objectives": list(cfg.objectives), "score_split": cfg.score_split}
    for key, value in record.items():
        if key in study.user_attrs and study.user_attrs[key] != value:
            raise StorageError(f"study {cfg.study!r} was created with {key} = {study.user_attrs[key]!r}, this run "
                               f"asks for {value!r}; pick another --study or the original options")
    if [d.name.lower() for d in study.directions] != directions:
        raise StorageError(f"study {cfg.study!r} has directions {study.directions}, not {directions}")
    new = {**record, **data.signature(), "ndim": data.ndim, "hypernet": os.path.abspath(hypernet), "hypernet_sha256": file_digest(hypernet),
           "sampler": cfg.sampler, "sampler_options": cfg.sampler_options, "warm_start": cfg.warm_start, "seed": cfg.seed,
           "run_dir": os.path.abspath(cfg.run_dir)}
    for key, value in new.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)
    with warnings.catch_warnings():  # experimental since Optuna 3.2, and what the dashboard shows
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(cfg.objectives))
    return study


def run_search(cfg: SearchConfig, progress: bool = True) -> SearchResult:
    """Search, then train the top candidates. Rerun with the same config to resume."""
    space = get_space(cfg.space)
    options = space.resolve_options(cfg.space_options)
    make_sampler(cfg.sampler, cfg.seed, space, cfg.sampler_options)  # a bad sampler option fails now, not after training
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction)
    torch.manual_seed(cfg.seed)
    storage = open_storage(cfg.storage_url)
    with study_lock(storage, cfg.study, "hypernet"):  # workers started together train it once
        hypernet = _prepare_hypernet(cfg, data)
    study = _open_study(cfg, storage, hypernet, data)
    scorer = Scorer.from_checkpoint(hypernet, data, samples=cfg.samples, seed=cfg.seed, device=cfg.device,
                                    split=cfg.score_split)
    initial = None
    if cfg.warm_start and not study.get_trials(deepcopy=False):  # a resumed study has its start already
        from hypernas.initial_design import synflow_design

        initial = synflow_design(space, options, data.in_channels, data.num_classes, data.input_size, cfg.warm_start,
                                 cfg.warm_pool, cfg.seed, progress=progress)
    timing = search_loop(cfg, study, space, options, data.in_channels, data.num_classes, scorer, progress, initial)
    study.set_user_attr("search_timing", {k: round(v, 3) for k, v in timing.items()})  # the last run's
    final, tau = finalize(cfg, study, data)
    return SearchResult(study, final, tau, timing)


def _counts(t: optuna.trial.FrozenTrial, distinct: bool) -> bool:
    """Whether a finished trial counts toward `trials`: every completed one, or only the
    first of each architecture with `distinct`."""
    return t.state == optuna.trial.TrialState.COMPLETE and not (distinct and "duplicate_of" in t.user_attrs)


def _count_done(study: optuna.Study, distinct: bool) -> int:
    if not distinct:
        return study._storage.get_n_trials(study._study_id, state=optuna.trial.TrialState.COMPLETE)
    return sum(_counts(t, True) for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]))


class _Writer:
    """Writes finished batches to the study's storage on a background thread.

    SQLite through SQLAlchemy costs ~10 ms per trial (a query per parameter and attribute);
    done in line it would rival scoring. Writing runs while the next batch is scored, in
    order, by one thread. `close` waits for the queue.

    Several workers may share one study. Each batch is written under the study's lock, and
    only as many counted trials as the requested total still has room for, so the total is
    exact; the rest of a batch is dropped and `full` is set. The storage numbers the trials
    (`first`, `first + 1`, ... while the lock is held); `duplicate_of` is kept in the
    mirror's numbering until then and mapped here.
    """

    def __init__(self, study: optuna.Study, total: int, distinct: bool):
        import queue
        import threading

        self.study, self.total, self.distinct = study, total, distinct
        self.queue, self.error, self.full = queue.Queue(maxsize=4), None, False
        self.numbers: dict[int, int] = {}  # mirror trial number -> storage trial number
        self.busy = 0.0  # seconds spent writing
        self.thread = threading.Thread(target=self._run, name="hypernas-storage-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (batch := self.queue.get()) is not None:
            start = time.perf_counter()
            try:
                if self.error is None:
                    self._write(batch)
            except Exception as err:  # reported by the main thread at its next put or at close
                self.error = err
            self.busy += time.perf_counter() - start

    def _write(self, batch: list[optuna.trial.FrozenTrial]) -> None:
        with study_lock(self.study._storage, self.study.study_name):
            room = self.total - _count_done(self.study, self.distinct)
            keep = []
            for t in batch:  # in order; failed trials ride along with the counted ones
                if _counts(t, self.distinct):
                    if room <= 0:
                        break
                    room -= 1
                keep.append(t)
            first = self.study._storage.get_n_trials(self.study._study_id)
            for i, t in enumerate(keep):
                self.numbers[t.number] = first + i
            self.study.add_trials([self._resolved(t) for t in keep])
            self.full = room <= 0

    def _resolved(self, t: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
        if "duplicate_of" not in t.user_attrs:
            return t
        t = copy.copy(t)
        t.user_attrs = {**t.user_attrs, "duplicate_of": self.numbers[t.user_attrs["duplicate_of"]]}
        return t

    def put(self, batch: list) -> None:
        self._raise()
        self.queue.put(batch)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            raise StorageError(f"writing trials to the storage failed: {self.error}") from self.error


class _Mirror:
    """The in-memory study the sampler works on, kept in step with the storage.

    Before each batch it takes in the trials other workers finished since the last look (one
    count query when there are none), so the sampler and the duplicate cache see the whole
    study. Trials this process wrote carry its token and are not taken in twice.
    """

    def __init__(self, study: optuna.Study, steer: optuna.Study, writer: _Writer):
        import uuid

        self.study, self.steer, self.writer = study, steer, writer
        self.token = uuid.uuid4().hex
        self.cache: dict[str, tuple[list[float], int]] = {}  # hash -> (values, mirror number of the scored trial)
        self.seen: set[int] = set()  # storage trial ids already in the mirror
        self.known = 0  # storage trials at the last look

    def sync(self) -> int:
        """Take in new finished trials from other workers; returns how many count toward the total."""
        storage = self.study._storage
        if storage.get_n_trials(self.study._study_id) == self.known:
            return 0
        trials = self.study.get_trials(deepcopy=False)
        self.known = len(trials)
        new = [t for t in trials if t.state.is_finished() and t._trial_id not in self.seen
               and t.system_attrs.get("hypernas:worker") != self.token]
        self.seen.update(t._trial_id for t in new)
        self.steer.add_trials(new)
        mirrored = self.steer.get_trials(deepcopy=False)[-len(new):] if new else []
        for t, m in zip(new, mirrored):
            self.writer.numbers[m.number] = t.number
            if t.state == optuna.trial.TrialState.COMPLETE and "duplicate_of" not in t.user_attrs:
                self.cache.setdefault(t.user_attrs["hash"], (t.values, m.number))
        return sum(_counts(t, self.writer.distinct) for t in new)


def _join(study: optuna.Study) -> int:
    """This worker's index among all that have run on the study (0 for the first). Workers of
    one study seed their samplers apart by it, or the same command would propose the same
    trials in every worker; a single fresh run keeps the seed it was given."""
    storage, key = study._storage, "hypernas:workers"
    with study_lock(storage, study.study_name):
        index = storage.get_study_system_attrs(study._study_id).get(key, 0)
        storage.set_study_system_attr(study._study_id, key, index + 1)
    return index


def search_loop(cfg: SearchConfig, study: optuna.Study, space, options: dict[str, Any], in_channels: int,
                num_classes: int, scorer, progress: bool = True, initial: list[dict] | None = None) -> dict[str, float]:
    """Ask, build, deduplicate, score and tell until `study` holds `cfg.trials` completed trials
    (distinct architectures with `cfg.distinct`); returns seconds per phase. Several processes
    may run it on one study at once: together they reach the total exactly.

    `scorer` is anything with `score(infos, keys) -> list[Score]`: the hypernetwork's `Scorer`,
    or the benchmark's table oracle, which is how the oracle benchmark runs this very loop.
    `initial` holds parameters to try first (`hypernas.initial_design`), when the study is new.

    Usage: search_loop(cfg, study, get_space("nb201"), {"channels": 8, "cells": 1}, 1, 10, scorer)
    """
    def graph_of(params: dict[str, Any]):
        return space.build_info(optuna.trial.FixedTrial(params), in_channels, num_classes, **options)[1]

    graph_of.context = (space.name, json.dumps(options, sort_keys=True, default=str), in_channels, num_classes)

    sampler = make_sampler(cfg.sampler, cfg.seed + 7919 * _join(study), space, cfg.sampler_options, graph_of)
    steer = optuna.create_study(directions=[d for d in study.directions], sampler=sampler)
    timing = {"ask": 0.0, "score": 0.0, "bookkeeping": 0.0, "storage_wait": 0.0}
    start_all = time.perf_counter()
    writer = _Writer(study, cfg.trials, cfg.distinct)
    mirror = _Mirror(study, steer, writer)
    try:
        done = mirror.sync()
        if mirror.known == 0:
            for params in initial or []:
                steer.enqueue_trial(params)
        _batches(cfg, mirror, done, space, options, (in_channels, num_classes), scorer, timing, progress)
    finally:
        start = time.perf_counter()
        writer.close()  # flush what was scored, also on Ctrl-C
        timing["storage_wait"] += time.perf_counter() - start
    timing["storage_busy"] = writer.busy
    timing["total"] = time.perf_counter() - start_all
    return timing


def _batches(cfg, mirror: _Mirror, done: int, space, options, io, scorer, timing, progress) -> None:
    steer, writer, cache = mirror.steer, mirror.writer, mirror.cache
    stale = 0  # trials in a row that found no new architecture
    unit = "arch" if cfg.distinct else "trial"
    with tqdm(total=cfg.trials, initial=min(done, cfg.trials), desc="search", unit=unit, disable=not progress) as bar:
        while done < cfg.trials and not writer.full:
            if stale >= STALE_TRIALS:
                warnings.warn(f"stopping at {done} distinct architectures: the last {stale} trials found nothing new, "
                              f"so the space (or the sampler's reach) looks exhausted")
                break
            t0 = time.perf_counter()
            done += mirror.sync()
            asked, graphs, infos, errors = [], [], [], []
            for _ in range(max(0, min(cfg.batch, cfg.trials - done))):
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
                break
            if all(e is not None for e in errors):
                raise SpaceError(f"every architecture of a batch failed to build; the first error: {errors[0]}")
            t1 = time.perf_counter()
            keys = [canonical_hash(info) if info is not None else None for info in infos]
            new = {k: info for k, info in zip(keys, infos) if k is not None and k not in cache}
            t2 = time.perf_counter()
            fresh = dict(zip(new, scorer.score(list(new.values()), keys=list(new))))
            t3 = time.perf_counter()
            for trial, G, key, error in zip(asked, graphs, keys, errors):
                steer._storage.set_trial_system_attr(trial._trial_id, "hypernas:worker", mirror.token)  # hidden from users
                if error is not None:
                    trial.set_user_attr("error", error)
                    steer.tell(trial, state=optuna.trial.TrialState.FAIL)
                    stale += 1
                    continue
                if key not in cache:  # the first trial with this network, in this batch or ever
                    done, stale = done + cfg.distinct, 0
                    s = fresh[key]
                    values = [s.score] + [s.params if o == "params" else s.flops for o in cfg.objectives[1:]]
                    cache[key] = (values, trial.number)
                    for name, value in (("arch", space.describe(G)), ("hash", key), ("params", s.params),
                                        ("flops", s.flops), ("score", s.score), ("score_std", s.score_std),
                                        ("accuracy", s.accuracy), ("accuracy_std", s.accuracy_std),
                                        ("loss", s.loss), ("loss_std", s.loss_std)):
                        trial.set_user_attr(name, value)
                else:
                    values, first = cache[key]
                    trial.set_user_attr("arch", space.describe(G))
                    trial.set_user_attr("hash", key)
                    trial.set_user_attr("duplicate_of", first)
                    stale += 1
                steer.tell(trial, values)
                done += not cfg.distinct
            numbers = {t.number for t in asked}  # not simply the last trials: enqueued ones may wait behind
            batch = [t for t in steer.get_trials(deepcopy=False) if t.number in numbers]
            t4 = time.perf_counter()
            writer.put(batch)
            t5 = time.perf_counter()
            for name, seconds in (("ask", t1 - t0), ("bookkeeping", t2 - t1 + t4 - t3), ("score", t3 - t2),
                                  ("storage_wait", t5 - t4)):
                timing[name] += seconds
            bar.update(min(done, cfg.trials) - bar.n)
            best = max((v[0] for v, _ in cache.values()), default=float("nan"))
            bar.set_postfix(best=f"{best:.4f}", unique=len(cache), refresh=False)


def _candidates(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """The top-k distinct architectures by score (from the Pareto front when multi-objective)."""
    complete = [t for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
                if "duplicate_of" not in t.user_attrs]
    pool = study.best_trials if len(study.directions) > 1 else complete
    pool = [t for t in pool if "duplicate_of" not in t.user_attrs]
    # Two workers can score one architecture at the same moment: keep its first trial only.
    first = {}
    for t in sorted(pool, key=lambda t: t.number):
        first.setdefault(t.user_attrs["hash"], t)
    return sorted(first.values(), key=lambda t: (-t.values[0], t.number))[:k]


def finalize(cfg: SearchConfig, study: optuna.Study, data: Dataset) -> tuple[list[dict], float | None]:
    """Train the top candidates normally, write `trained_accuracy` onto their trials, and leave
    a drawing artifact and a dashboard note with the final table. Finished trainings are kept."""
    with study_lock(study._storage, study.study_name, "final"):  # one worker trains; the others then find the results
        return _finalize(cfg, study, data)


def _finalize(cfg: SearchConfig, study: optuna.Study, data: Dataset) -> tuple[list[dict], float | None]:
    from optuna.artifacts import FileSystemArtifactStore

    from hypernas.export import trial_graph
    from hypernas.plots import draw_architecture

    store_dir = os.path.join(cfg.run_dir, "artifacts")
    os.makedirs(store_dir, exist_ok=True)
    store = FileSystemArtifactStore(store_dir)
    os.makedirs(os.path.join(cfg.run_dir, "final"), exist_ok=True)
    rows = []
    for t in tqdm(_candidates(study, cfg.top_k), desc="final training", unit="arch"):
        G = trial_graph(study, t)
        if "trained_accuracy" in t.user_attrs:
            acc, seconds = t.user_attrs["trained_accuracy"], t.user_attrs["trained_seconds"]
        else:
            r = train(G, data, TrainConfig(epochs=cfg.final_epochs), seed=cfg.seed, device=cfg.device, progress=False)
            acc, seconds = r.test_accuracy, r.seconds
            weights = os.path.abspath(os.path.join(cfg.run_dir, "final", f"trial_{t.number}.pt"))
            torch.save(r.model.state_dict(), weights)
            png = os.path.join(cfg.run_dir, "final", f"trial_{t.number}.png")
            draw_architecture(G, png, title=f"trial {t.number}: {t.user_attrs['arch'][:80]}")
            attach_artifact(study._storage, t._trial_id, store, png)
            annotate_trial(study._storage, t._trial_id, user_attrs={
                "trained_accuracy": acc, "trained_seconds": round(seconds, 2), "trained_epochs": cfg.final_epochs,
                "trained_weights": weights})
        rows.append({"trial": t.number, "arch": t.user_attrs["arch"], "score": t.values[0],
                     "score_std": t.user_attrs["score_std"], "trained_accuracy": acc, "params": t.user_attrs["params"],
                     "seconds": seconds})
    tau = None
    if len(rows) >= 2:
        tau = float(stats.kendalltau([r["score"] for r in rows], [r["trained_accuracy"] for r in rows]).statistic)
    table = final_table(rows, tau)
    print(table)
    try:
        import optuna_dashboard

        optuna_dashboard.save_note(study, table)
    except ImportError:  # the note is a courtesy for dashboard users; the table is printed anyway
        pass
    return rows, tau


def final_table(rows: list[dict], tau: float | None) -> str:
    """Markdown: rank, architecture, score +- std, true accuracy, params, seconds; and tau."""
    lines = ["| rank | trial | architecture | score ± std | true accuracy | params | seconds |",
             "|---|---|---|---|---|---|---|"]
    for rank, r in enumerate(rows, start=1):
        arch = r["arch"] if len(r["arch"]) <= 90 else r["arch"][:87] + "..."
        lines.append(f"| {rank} | {r['trial']} | `{arch}` | {r['score']:.4f} ± {r['score_std']:.4f} | "
                     f"{r['trained_accuracy']:.4f} | {r['params']} | {r['seconds']:.1f} |")
    lines.append("")
    lines.append(f"Kendall tau between score and true accuracy over these {len(rows)}: "
                 + ("n/a" if tau is None else f"{tau:.3f}"))
    return "\n".join(lines)
