"""The rungs of a search: short trainings between the score and the finals, written onto the trials.

With `rungs` set, the final stage first trains the `rung_pool` best scored architectures (the
final stage's own candidates: distinct, within the limits, never degenerate) for each rung's
epochs, from the hypernetwork's predicted weights (random ones where the scorer has none), on
the train split, and ranks them on its validation slice, never the test set. The best
`rung_keep` of each rung go on to the next (`hypernas.rungs`); the finals take the survivors,
best first.

Each result is written onto its trial the moment it is known: `rung_results` (epochs -> the
validation loss and accuracy) and an Optuna intermediate value (the validation accuracy at step
= epochs), which the dashboard draws as a learning curve. A killed run therefore loses at most
the training under way, and a rerun, or a second worker after the final stage's lock, trains
nothing again. Every trial of the pool records why it left the rungs (`rung_stopped`).

Usage:
    survivors = run_rungs(cfg, study, candidates(study, cfg.rung_pool), data, space, hypernet)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx
import optuna
from tqdm.auto import tqdm

from hypernas.config import SearchConfig, TrainConfig
from hypernas.data import Dataset
from hypernas.ghn.start import predicted_start, scoring_samples
from hypernas.optuna_private import annotate_trial, fresh_trial, report_finished
from hypernas.rungs import RungResult, cost, successive_halving
from hypernas.study.attrs import check_trial
from hypernas.study.record import trial_graph
from hypernas.train import train


def known_results(t: optuna.trial.FrozenTrial) -> dict[int, RungResult]:
    """The rung results a trial holds already, by epochs."""
    return {int(e): RungResult(int(e), r["loss"], r["accuracy"]) for e, r in t.user_attrs.get("rung_results", {}).items()}


def rung_history(t: optuna.trial.FrozenTrial) -> str:
    """A trial's rungs in words, for the final table: the validation accuracy after each rung."""
    return ", ".join(f"{e} ep {r.accuracy:.3f}" for e, r in sorted(known_results(t).items()))


def rung_training(G: nx.DiGraph, data: Dataset, epochs: int, start: Callable | None = None, seed: int = 0,
                  device: str = "cpu", lr: float = TrainConfig.lr) -> RungResult:
    """One rung: `epochs` of the reference protocol on the train split without the validation
    slice, from `start` (`predicted_start`, or random weights for None), judged on that slice.

    Usage: rung_training(G, data, 1, predicted_start(ghn, G, scoring_samples(data)[0]))"""
    r = train(G, data, TrainConfig(epochs=epochs, lr=lr), seed=seed, device=device, progress=False, holdout_val=True,
              init=start)
    return RungResult(epochs, r.test_loss, r.test_accuracy)  # test_*: the validation slice, with holdout_val


def run_rungs(cfg: SearchConfig, study: optuna.Study, pool: list[optuna.trial.FrozenTrial], data: Dataset,
              space: Any, hypernet: Any, progress: bool = True) -> list[optuna.trial.FrozenTrial]:
    """Successive halving over `pool` (best scored first, which breaks ties), each result on its
    trial; returns the survivors, best first."""
    trials = {t.number: check_trial(study.study_name, fresh_trial(study, t)) for t in pool}
    init = "hypernet" if hypernet is not None else "random"
    x = scoring_samples(data, cfg.score_split)[0] if hypernet is not None else None
    study.set_user_attr("rungs", {"epochs": list(cfg.rungs), "pool": cfg.rung_pool, "keep": cfg.rung_keep,
                                  "signal": cfg.rung_signal, "init": init})
    with tqdm(total=cost(len(pool), cfg.rungs, cfg.rung_keep), desc="rungs", unit="epoch",
              disable=not progress) as bar:

        def measure(number: int, epochs: int) -> RungResult:
            t = trials[number]
            G = trial_graph(study, t, space)
            start = predicted_start(hypernet, G, x) if hypernet is not None else None
            result = rung_training(G, data, epochs, start, cfg.seed, cfg.device)
            results = {str(e): {"loss": v.loss, "accuracy": v.accuracy}
                       for e, v in {**known_results(t), epochs: result}.items()}
            annotate_trial(study, t, user_attrs={"rung_results": results, "rung_init": init})
            report_finished(study, t, epochs, result.accuracy)
            trials[number] = fresh_trial(study, t)
            bar.update(epochs)
            return result

        known = {n: known_results(t) for n, t in trials.items()}
        bar.update(sum(e for results in known.values() for e in results if e in cfg.rungs))
        outcome = successive_halving(list(trials), cfg.rungs, cfg.rung_keep, measure, cfg.rung_signal, known)
    for number, why in outcome.stopped.items():
        annotate_trial(study, trials[number], user_attrs={"rung_stopped": why})
    return [trials[n] for n in outcome.survivors]  # the final stage reads each afresh before it trains it
