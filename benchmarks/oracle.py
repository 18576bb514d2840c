"""`python -m benchmarks.oracle`: the steering of `hypernas search`, measured on NAS-Bench-201's CIFAR-10 table.

The search loop is the one `hypernas search` runs (`hypernas.loop.search_loop`: ask, build,
hash, deduplicate, score, tell, store), with the hypernetwork replaced by a lookup of each
cell's 200-epoch CIFAR-10 test accuracy in the shipped table. The space is `nb201` with its
default skeleton (C=16, N=5) on CIFAR-10's input (3 channels, 10 classes).

A query is one table lookup, that is one distinct architecture: the loop serves isomorphic
duplicates from its cache by canonical hash, for every method alike, as it does for users.
The curves are also reported per trial (every trial a query, as in the published
baselines), from the same runs. Regret = the table's best accuracy minus the best found.

Methods (each through the same loop, one trial per ask unless `--trial-batch` says more):
- random, tpe (Optuna's defaults), nsga2 (population 20): Optuna's samplers;
- evolution: regularized evolution, population 10, sample 3 (`hypernas.samplers`);
- tuned (`TUNED`): the candidate that won on the development objectives (below), chosen by a
  criterion fixed beforehand, so it uses no knowledge of this table (see BENCHMARKS.md).

Choosing the tuned configuration without this table: `--dev-hypernet PATH` swaps the table
for a development objective that shares nothing with it, namely a hypernetwork's own score
(100 x exp(-validation loss) on the data it was trained for, e.g. MNIST-1D) of every one of
the 15,625 cells, and `--seed-offset` keeps the development seeds apart from the final ones.
A warm start's synflow then reads that hypernetwork's own input shape and skeleton, as a
search on its data would.
The candidates (`benchmarks/data/oracle_candidates.toml`) are compared there, by the sum of
the mean regrets at 50 and 100 queries; docs/history.md says how each round was decided.

Usage:
    python -m benchmarks.oracle --seeds 20 --queries 200 --out-md runs/oracle/oracle.md --out-png runs/oracle/oracle.png
    python -m benchmarks.oracle --methods tpe --trial-batch 16   # asked as a search asks, 16 at a time
    python -m benchmarks.oracle --dev-hypernet runs/rank_e2e/hypernet.pt --seed-offset 1000 --methods tpe,tpe_mv,...
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass, field, replace

import numpy as np
import optuna
import torch
from tqdm.auto import tqdm

from benchmarks.cifar10_table import load_cifar10_table
from benchmarks.core.report import command
from hypernas.config import SearchConfig
from hypernas.data import load_dataset_like
from hypernas.errors import CheckpointError
from hypernas.ghn.checkpoint import file_digest, load_checkpoint, load_hypernet
from hypernas.graph import GraphInfo, as_info, canonical_hash, flops, param_count
from hypernas.initial_design import synflow_design
from hypernas.loop import search_loop
from hypernas.options import check, option, read_mapping
from hypernas.score import NetworkScorer, Score, Scorer
from hypernas.spaces import get_space
from search_spaces import nb201


@dataclass(frozen=True)
class Networks:
    """The networks an objective's cells stand for: what a warm start's synflow is computed on,
    as `hypernas search` computes it on the user's input shape and skeleton."""
    in_channels: int
    num_classes: int
    input_size: tuple[int, ...]
    space_options: dict = field(default_factory=dict)


CIFAR10 = Networks(in_channels=3, num_classes=10, input_size=(32, 32))  # the table's: NB201's default skeleton
CHECKPOINTS = (50, 100, 200)
BASE = SearchConfig(space="nb201", trials=200, trial_batch=1, distinct=True, top_k=0)
METHODS: dict[str, SearchConfig] = {
    "random": replace(BASE, sampler="random"),
    "tpe": replace(BASE, sampler="tpe"),
    "nsga2": replace(BASE, sampler="nsga2", sampler_options={"population_size": 20}),
    "evolution": replace(BASE, sampler="evolution", sampler_options={"population_size": 10, "sample_size": 3}),
}
CANDIDATES_FILE = os.path.join(os.path.dirname(__file__), "data", "oracle_candidates.toml")


def load_candidates(path: str = CANDIDATES_FILE) -> tuple[dict[str, SearchConfig], str]:
    """The steering candidates (name -> config: the base with each entry's options) and the
    name of the tuned one, from the data file that lists them with their rounds."""
    import tomllib

    with open(path, "rb") as f:
        raw = tomllib.load(f)
    candidates = {}
    for name, entry in raw["candidates"].items():
        settings = {k: v for k, v in entry.items() if k not in ("round", "note")}
        candidates[name] = replace(BASE, **read_mapping(SearchConfig, settings, f"{path}: {name}"))
    return candidates, raw["tuned"]


CANDIDATES, _TUNED_NAME = load_candidates()
TUNED = CANDIDATES[_TUNED_NAME]  # chosen on the development objectives by a criterion fixed in advance


class TableScorer(NetworkScorer):
    """A stand-in for the hypernetwork's `Scorer`: each architecture's score is its table
    accuracy, found through the NB201 string the space wrote on the graph (`arch`)."""

    def __init__(self, table: dict[str, float]):
        self.table, self.lookups = table, 0

    def score(self, infos: list[GraphInfo], keys: list[str]) -> list[Score]:
        out = []
        for info, key in zip(infos, keys):
            acc = self.table[info.labels["arch"]]
            self.lookups += 1
            out.append(Score(hash=key, score=acc, score_std=0.0, accuracy=acc, accuracy_std=0.0, loss=0.0, loss_std=0.0,
                             params=param_count(info, 2), flops=flops(info, CIFAR10.input_size),
                             degenerate=info.degenerate, samples=1))
        return out


def hypernet_table(path: str, cache_dir: str | None = None, progress: bool = True) -> dict[str, float]:
    """NB201 string -> 100 x the hypernetwork's score (exp(-validation loss)) on the data and
    skeleton it was trained for, for all 15,625 cells: a development objective for choosing
    the steering, which knows nothing of the CIFAR-10 table. Equivalent cells (by canonical
    hash) are scored once. Cached as JSON beside the checkpoint, keyed by its sha256."""
    hypernet = load_hypernet(path)  # a missing or corrupt checkpoint fails here, with its name
    ghn, ckpt = hypernet.model, hypernet.checkpoint
    if ckpt["space"] != "nb201":
        raise CheckpointError(f"{path} was trained on space {ckpt['space']!r}; the development objective needs nb201")
    cache = os.path.join(cache_dir or os.path.dirname(os.path.abspath(path)), f"dev_table_{file_digest(path)}.json")
    if os.path.exists(cache):
        with open(cache) as f:
            return json.load(f)
    os.makedirs(os.path.dirname(cache), exist_ok=True)  # before the scoring, not after it
    data = load_dataset_like(ckpt["data"])
    scorer = Scorer(ghn, data)  # the data it was trained for, by construction
    by_hash: dict[str, list[str]] = {}
    infos: dict[str, GraphInfo] = {}
    graphs = nb201.enumerate_graphs(data.in_channels, data.num_classes, **ckpt["space_options"])
    for G in tqdm(graphs, total=nb201.SPACE.size, desc="development table: hashing", unit="cell", disable=not progress):
        info = as_info(G)
        key = canonical_hash(info)
        infos.setdefault(key, info)
        by_hash.setdefault(key, []).append(info.labels["arch"])
    table = {}
    keys = list(infos)
    with tqdm(total=len(keys), desc="development table: scoring", unit="arch", disable=not progress) as bar:
        for i in range(0, len(keys), 256):
            chunk = keys[i : i + 256]
            for key, result in zip(chunk, scorer.score([infos[k] for k in chunk], chunk)):
                for arch in by_hash[key]:
                    table[arch] = round(100 * result.score, 4)
            bar.update(len(chunk))
    with open(cache, "w") as f:
        json.dump(table, f)
    return table


def best_so_far(study: optuna.Study, per: str = "query") -> list[float]:
    """Best accuracy after each query (distinct architecture) or each trial, in trial order."""
    trials = sorted(study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]), key=lambda t: t.number)
    if per == "query":
        trials = [t for t in trials if "duplicate_of" not in t.user_attrs]
    return list(np.maximum.accumulate([t.values[0] for t in trials]))


def hypernet_networks(path: str) -> Networks:
    """The networks a development objective scores: the hypernetwork's input shape and skeleton."""
    ckpt = load_checkpoint(path)
    data = ckpt["data"]
    return Networks(data["in_channels"], data["num_classes"], tuple(data["input_size"]), dict(ckpt["space_options"]))


def run_method(cfg: SearchConfig, seed: int, table: dict[str, float], synflow_cache: dict | None = None,
               networks: Networks = CIFAR10) -> optuna.Study:
    """One seeded search through the product's loop, in an in-memory study. A warm start is
    computed as `hypernas search` computes it, by synflow of the objective's own `networks`;
    `synflow_cache` shares synflow values across runs of one objective. The loop itself builds
    CIFAR-10's networks: the table (and a development table) is looked up by the cell alone."""
    cfg = replace(cfg, seed=seed)
    space = get_space(cfg.space)
    initial = None
    if cfg.warm_start:
        initial = synflow_design(space, networks.space_options, networks.in_channels, networks.num_classes,
                                 networks.input_size, cfg.warm_start, cfg.warm_pool, seed, cache=synflow_cache,
                                 progress=False)
    study = optuna.create_study(direction="maximize")
    search_loop(cfg, study, space, {}, CIFAR10.in_channels, CIFAR10.num_classes, TableScorer(table),
                progress=False, initial=initial)
    return study


def summarize(curves: dict[str, list[list[float]]], best: float, checkpoints=CHECKPOINTS) -> dict[str, dict[int, tuple]]:
    """method -> query count -> (mean regret, std regret, runs) over the seeds' best-so-far curves."""
    out: dict[str, dict[int, tuple]] = {}
    for method, runs in curves.items():
        out[method] = {}
        for q in checkpoints:
            regrets = [best - curve[q - 1] for curve in runs if len(curve) >= q]
            if regrets:
                out[method][q] = (statistics.fmean(regrets), statistics.pstdev(regrets), len(regrets))
    return out


def regret_table(summary: dict, title: str, best: float) -> str:
    """Per method and query count: the regret, mean ± std, and the mean best accuracy found (best - regret)."""
    counts = sorted({q for per in summary.values() for q in per})
    lines = [title, "", "| method | " + " | ".join(f"regret at {q} (best found)" for q in counts) + " |",
             "|---|" + "---|" * len(counts)]
    for method, per in summary.items():
        cells = [f"{per[q][0]:.3f} ± {per[q][1]:.3f} ({best - per[q][0]:.2f})" if q in per else "n/a" for q in counts]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(curves: dict[str, list[list[float]]], best: float, path: str, objective: str = "NAS-Bench-201 CIFAR-10 oracle") -> None:
    """Mean regret (log scale) against queries, one line per method, a band of ±1 std/sqrt(n)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, runs in curves.items():
        n = min(len(c) for c in runs)
        regret = best - np.array([c[:n] for c in runs])
        mean, sem = regret.mean(0), regret.std(0) / np.sqrt(len(runs))
        x = np.arange(1, n + 1)
        ax.plot(x, mean, label=method)
        ax.fill_between(x, np.maximum(mean - sem, 1e-3), mean + sem, alpha=0.2)
    ax.set_yscale("log")
    ax.set_xlabel("queries (distinct architectures looked up)")
    ax.set_ylabel(f"regret (best {best:.2f} minus best found)")
    ax.set_title(f"{objective}, {len(next(iter(curves.values())))} seeds")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


ALL_METHODS = {**METHODS, **CANDIDATES, "tuned": TUNED}


@dataclass(frozen=True)
class Config:
    seeds: int = option(20, "seeded runs per method", low=1)
    queries: int = option(200, "distinct architectures looked up per run", low=1)
    methods: tuple[str, ...] = option((*METHODS, "tuned"), "comma list of methods", choices=tuple(ALL_METHODS))
    seed_offset: int = option(0, "run seeds OFFSET..OFFSET+seeds-1", low=0)
    dev_hypernet: str | None = option(None, "score with this nb201 hypernetwork's development table instead of the "
                                            "CIFAR-10 table")
    warm_pool: int | None = option(None, f"override the warm-started methods' synflow pool ({BASE.warm_pool})", low=1)
    trial_batch: int = option(BASE.trial_batch, "trials asked together, as `hypernas search --trial-batch`", low=1)
    threads: int = option(1, "torch threads (synflow of the warm start)", low=1)
    out_png: str | None = option(None, "also draw the regret curves to this PNG")

    def __post_init__(self):
        check(self)


def run(config: Config) -> dict:
    methods = ALL_METHODS
    if config.warm_pool:
        methods = {m: replace(cfg, warm_pool=config.warm_pool) if cfg.warm_start else cfg for m, cfg in methods.items()}
    methods = {m: replace(cfg, trial_batch=config.trial_batch) for m, cfg in methods.items()}
    torch.set_num_threads(config.threads)
    table = hypernet_table(config.dev_hypernet) if config.dev_hypernet else load_cifar10_table()
    networks = hypernet_networks(config.dev_hypernet) if config.dev_hypernet else CIFAR10
    best = max(table.values())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    chosen = config.methods
    curves = {m: [] for m in chosen}
    trial_curves = {m: [] for m in chosen}
    seconds = {m: 0.0 for m in chosen}
    synflow_cache: dict[str, float] = {}  # per architecture; its cost is in the first runs' seconds
    with tqdm(total=len(chosen) * config.seeds, desc="oracle", unit="run") as bar:
        for seed in range(config.seed_offset, config.seed_offset + config.seeds):
            for m in chosen:
                start = time.perf_counter()
                study = run_method(replace(methods[m], trials=config.queries), seed, table, synflow_cache, networks)
                seconds[m] += time.perf_counter() - start
                curves[m].append(best_so_far(study, "query"))
                trial_curves[m].append(best_so_far(study, "trial"))
                bar.update()
    checkpoints = tuple(q for q in CHECKPOINTS if q <= config.queries) or (config.queries,)
    if config.out_png:
        plot(curves, best, config.out_png, *(["development objective (hypernetwork scores)"] if config.dev_hypernet else []))
    return {"by_query": summarize(curves, best, checkpoints), "by_trial": summarize(trial_curves, best, checkpoints),
            "best": best, "config": config, "seconds": {m: s / config.seeds for m, s in seconds.items()}}


def markdown(result: dict) -> str:
    config, best = result["config"], result["best"]
    return "\n\n".join([
        regret_table(result["by_query"], f"Regret per query (distinct architecture), mean ± std over {config.seeds} "
                     f"seeds from {config.seed_offset}; {'development' if config.dev_hypernet else 'CIFAR-10'} "
                     f"table best {best:.2f}.", best),
        regret_table(result["by_trial"], "The same runs per trial (every trial a query, duplicates included).", best),
        "Seconds per run: " + ", ".join(f"{m} {s:.1f}" for m, s in result["seconds"].items()),
    ])


def main(argv: list[str] | None = None) -> dict:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.oracle", doc=__doc__)


if __name__ == "__main__":
    main()
