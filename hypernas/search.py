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

import hashlib
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch
from scipy import stats
from tqdm.auto import tqdm

from hypernas.data import VAL_FRACTION, Dataset, load_dataset
from hypernas.errors import HypernasError, SpaceError
from hypernas.ghn.checkpoint import load_hypernet
from hypernas.ghn.fit import FitConfig, fit_hypernet
from hypernas.graph import canonical_hash, validate
from hypernas.score import Scorer
from hypernas.spaces import get_space
from hypernas.study import StorageError, annotate_trial, attach_artifact, open_storage, redact
from hypernas.train import TrainConfig, train

OBJECTIVES = {"score": "maximize", "params": "minimize", "flops": "minimize"}
SAMPLERS = ("tpe", "nsga2", "random", "grid")


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
    objectives: tuple[str, ...] = ("score",)
    batch: int = 64
    samples: int = 2  # hypernetwork draws per score: the std is their spread
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
        if self.sampler == "grid" and len(self.objectives) > 1:
            raise HypernasError("the grid sampler enumerates one objective's space; use tpe or nsga2 for several objectives")
        if self.trials < 1 or self.batch < 1 or self.top_k < 0 or self.samples < 1:
            raise HypernasError("--trials, --batch and --samples must be >= 1 and --top-k >= 0")

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


def make_sampler(name: str, seed: int, space) -> optuna.samplers.BaseSampler:
    """Optuna's samplers, seeded. `grid` needs a space that lists its grid."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if space.grid is None:
        raise HypernasError(f"space {space.name!r} has no finite grid; use tpe, nsga2 or random")
    return optuna.samplers.GridSampler(space.grid, seed=seed)


def _file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def _prepare_hypernet(cfg: SearchConfig, data: Dataset) -> str:
    if cfg.hypernet:
        load_hypernet(cfg.hypernet, data=data)  # refuse a checkpoint made for other data early
        return cfg.hypernet
    print(f"training the hypernetwork: {cfg.hypernet_path}")
    fit_hypernet(cfg.space, cfg.space_options, data, cfg.fit, out=cfg.hypernet_path, resume=True, device=cfg.device)
    return cfg.hypernet_path


def _open_study(cfg: SearchConfig, hypernet: str, data: Dataset) -> optuna.Study:
    storage = open_storage(cfg.storage_url)
    directions = [OBJECTIVES[o] for o in cfg.objectives]
    try:
        study = optuna.create_study(study_name=cfg.study, storage=storage, directions=directions, load_if_exists=True)
    except ValueError as err:
        raise StorageError(f"study {cfg.study!r} in {redact(cfg.storage_url)}: {err}") from None
    record = {"space": cfg.space, "space_options": get_space(cfg.space).resolve_options(cfg.space_options),
              "dataset": cfg.dataset, "objectives": list(cfg.objectives)}
    for key, value in record.items():
        if key in study.user_attrs and study.user_attrs[key] != value:
            raise StorageError(f"study {cfg.study!r} was created with {key} = {study.user_attrs[key]!r}, this run "
                               f"asks for {value!r}; pick another --study or the original options")
    if [d.name.lower() for d in study.directions] != directions:
        raise StorageError(f"study {cfg.study!r} has directions {study.directions}, not {directions}")
    new = {**record, **data.signature(), "ndim": data.ndim, "hypernet": os.path.abspath(hypernet), "hypernet_sha256": _file_digest(hypernet),
           "sampler": cfg.sampler, "seed": cfg.seed, "run_dir": os.path.abspath(cfg.run_dir)}
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
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction)
    torch.manual_seed(cfg.seed)
    hypernet = _prepare_hypernet(cfg, data)
    study = _open_study(cfg, hypernet, data)
    scorer = Scorer.from_checkpoint(hypernet, data, samples=cfg.samples, seed=cfg.seed, device=cfg.device)
    timing = _search_loop(cfg, study, space, options, data, scorer, progress)
    study.set_user_attr("search_timing", {k: round(v, 3) for k, v in timing.items()})  # the last run's
    final, tau = finalize(cfg, study, data)
    return SearchResult(study, final, tau, timing)


class _Writer:
    """Writes finished batches to the study's storage on a background thread.

    SQLite through SQLAlchemy costs ~10 ms per trial (a query per parameter and attribute);
    done in line it would rival scoring. Writing runs while the next batch is scored, in
    order, by one thread, so trial numbers stay sequential. `close` waits for the queue.
    """

    def __init__(self, study: optuna.Study):
        import queue
        import threading

        self.study, self.queue, self.error = study, queue.Queue(maxsize=4), None
        self.busy = 0.0  # seconds spent writing
        self.thread = threading.Thread(target=self._run, name="hypernas-storage-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (batch := self.queue.get()) is not None:
            start = time.perf_counter()
            try:
                if self.error is None:
                    self.study.add_trials(batch)
            except Exception as err:  # reported by the main thread at its next put or at close
                self.error = err
            self.busy += time.perf_counter() - start

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


def _search_loop(cfg, study, space, options, data, scorer, progress) -> dict[str, float]:
    steer = optuna.create_study(directions=[d for d in study.directions], sampler=make_sampler(cfg.sampler, cfg.seed, space))
    existing = study.get_trials(deepcopy=False)
    finished = [t for t in existing if t.state.is_finished()]
    steer.add_trials(finished)
    cache: dict[str, tuple[list[float], int]] = {}  # hash -> (values, trial number that was scored)
    for t in existing:
        if t.state == optuna.trial.TrialState.COMPLETE and "duplicate_of" not in t.user_attrs:
            cache[t.user_attrs["hash"]] = (t.values, t.number)
    next_number = len(existing)
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in existing)
    timing = {"ask": 0.0, "score": 0.0, "bookkeeping": 0.0, "storage_wait": 0.0}
    start_all = time.perf_counter()
    writer = _Writer(study)
    try:
        _batches(cfg, steer, writer, space, options, data, scorer, cache, next_number, done, timing, progress)
    finally:
        start = time.perf_counter()
        writer.close()  # flush what was scored, also on Ctrl-C
        timing["storage_wait"] += time.perf_counter() - start
    timing["storage_busy"] = writer.busy
    timing["total"] = time.perf_counter() - start_all
    return timing


def _batches(cfg, steer, writer, space, options, data, scorer, cache, next_number, done, timing, progress) -> None:
    with tqdm(total=cfg.trials, initial=min(done, cfg.trials), desc="search", unit="trial", disable=not progress) as bar:
        while done < cfg.trials:
            t0 = time.perf_counter()
            asked, graphs, errors = [], [], []
            for _ in range(min(cfg.batch, cfg.trials - done)):
                trial = steer.ask()
                asked.append(trial)
                try:
                    graphs.append(space.build(trial, data.in_channels, data.num_classes, **options))
                    errors.append(None)
                except HypernasError as err:
                    graphs.append(None)
                    errors.append(str(err))
            if all(e is not None for e in errors):
                raise SpaceError(f"every architecture of a batch failed to build; the first error: {errors[0]}")
            t1 = time.perf_counter()
            infos = [validate(G) if G is not None else None for G in graphs]
            keys = [canonical_hash(info) if info is not None else None for info in infos]
            new = {k: info for k, info in zip(keys, infos) if k is not None and k not in cache}
            t2 = time.perf_counter()
            fresh = dict(zip(new, scorer.score(list(new.values()), keys=list(new))))
            t3 = time.perf_counter()
            for trial, G, key, error in zip(asked, graphs, keys, errors):
                number, next_number = next_number, next_number + 1
                if error is not None:
                    trial.set_user_attr("error", error)
                    steer.tell(trial, state=optuna.trial.TrialState.FAIL)
                    continue
                if key not in cache:  # the first trial with this network, in this batch or ever
                    s = fresh[key]
                    values = [s.score] + [s.params if o == "params" else s.flops for o in cfg.objectives[1:]]
                    cache[key] = (values, number)
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
                steer.tell(trial, values)
                done += 1
            batch = steer.get_trials(deepcopy=False)[-len(asked):]
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
    return sorted(pool, key=lambda t: (-t.values[0], t.number))[:k]


def finalize(cfg: SearchConfig, study: optuna.Study, data: Dataset) -> tuple[list[dict], float | None]:
    """Train the top candidates normally, write `trained_accuracy` onto their trials, and leave
    a drawing artifact and a dashboard note with the final table. Finished trainings are kept."""
    from optuna.artifacts import FileSystemArtifactStore

    from hypernas.export import trial_graph
    from hypernas.plots import draw_architecture

    storage = study._storage._backend if hasattr(study._storage, "_backend") else study._storage
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
            attach_artifact(storage, t._trial_id, store, png)
            annotate_trial(storage, t._trial_id, user_attrs={
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
