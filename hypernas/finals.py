"""The final stage of a search: train the best architectures normally, write the truth back.

The top `top_k` distinct architectures by score (members of the Pareto front on a study
with several objectives; never a degenerate network, nor one over a limit) are trained with
the reference protocol. Each trained accuracy is written onto its trial (`trained_accuracy`)
beside the prediction, with its round and the reason it was picked, its weights and a drawing;
the trial's dashboard note says it first, with the drawing at full size, and the study's note
holds the table with the Kendall tau between score and trained accuracy. Each finalist is
trained `final_seeds` times (seeds seed, seed+1, ...; the weights kept are the first run's),
and racing (`final_race`) spends extra trainings on the finalists still tied with the leader.
Every trained accuracy then carries a 95% interval (`hypernas.certainty`), the finalists tied
with the best are marked, and `final_pick` picks among them. Finished trainings are kept: a
rerun repeats none. `best_trial` says what `best` means wherever a user asks for it.

Usage:
    rows, tau = finalize(cfg, study, data, space)
    trial = best_trial(study)   # the best trained finalist
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch
from scipy import stats
from tqdm.auto import tqdm

from hypernas.certainty import Settled, race, settle
from hypernas.config import SearchConfig, TrainConfig
from hypernas.data import Dataset
from hypernas.drawing import draw_architecture
from hypernas.errors import HypernasError, OptionError, warn
from hypernas.files import save_file
from hypernas.final_table import final_table, shown_arch
from hypernas.ghn.start import predicted_start, scoring_samples
from hypernas.optuna_private import (
    annotate_trial,
    attach_artifact,
    fresh_trial,
    save_trial_note,
    storage_of,
    study_id_of,
    trial_id_of,
)
from hypernas.recalibrate import leave_one_out, rank_features, rounds_of
from hypernas.rung_stage import run_rungs, rung_history
from hypernas.study.attrs import check_trial, completed, weights_name
from hypernas.study.record import trial_graph
from hypernas.study.storage import study_lock
from hypernas.train import train


def candidates(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """The top-k distinct architectures within the limits by score; on a study with several
    objectives, k members of the Pareto front spread evenly along it (`spread`)."""
    pool = pool_of(study)
    if len(study.directions) > 1:
        return spread(pareto_front(pool, study.directions), k)
    return sorted(pool, key=lambda t: (-t.values[0], t.number))[:k]


def pareto_front(trials: list[optuna.trial.FrozenTrial], directions) -> list[optuna.trial.FrozenTrial]:
    """The trials no other trial dominates (at least as good in every objective, better in one).
    Written here because `Study.best_trials` is the front of every trial, duplicates and
    trials over a limit included, and Optuna's own front of a given list is private."""
    signs = [1 if d == optuna.study.StudyDirection.MAXIMIZE else -1 for d in directions]
    keyed = [(tuple(s * v for s, v in zip(signs, t.values)), t) for t in trials]

    def dominated(a):
        return any(all(x >= y for x, y in zip(b, a)) and b != a for b, _ in keyed)

    return [t for values, t in keyed if not dominated(values)]


def spread(front: list[optuna.trial.FrozenTrial], k: int) -> list[optuna.trial.FrozenTrial]:
    """`k` members of a front spread along it: ordered by the second objective, the two ends
    and members evenly apart between them, so the final training sees the whole trade-off
    rather than k neighbours at its best-scoring end. Returned best score first."""
    ordered = sorted(front, key=lambda t: (t.values[1], t.number))
    if k >= len(ordered):
        chosen = ordered
    elif k == 1:
        chosen = [max(ordered, key=lambda t: (t.values[0], -t.number))]
    else:
        chosen = [ordered[round(i * (len(ordered) - 1) / (k - 1))] for i in range(k)]
    return sorted(chosen, key=lambda t: (-t.values[0], t.number))


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """What `best` means wherever a user asks for it (`hypernas export --trial best`, `hypernas
    plot arch`): the finalist the final stage picked among those tied with the best
    (`final_picked`, by the rule `final_pick`); in a study without that pick, the trained finalist of highest trained
    accuracy, a tie going to the higher score, then to the lower trial number. The score only
    predicts; the final training measured. A study with no trained finalist yet (`--top-k 0`)
    falls back to the highest score among the architectures a final training may take
    (`pool_of`), and says so. `best_said` says which it was.

    Usage: best_trial(load_study(url, "demo")).number"""
    trained = [t for t in completed(study) if "trained_accuracy" in t.user_attrs]
    picked = [t for t in trained if t.number == study.user_attrs.get("final_picked")]
    if picked:
        return picked[0]
    if trained:
        return max(trained, key=lambda t: (t.user_attrs["trained_accuracy"], t.values[0], -t.number))
    pool = pool_of(study)
    if not pool:
        raise HypernasError(f"study {study.study_name!r} has no completed trial within its limits")
    best = max(pool, key=lambda t: (t.values[0], -t.number))
    warn(f"study {study.study_name!r} has no trained finalist: 'best' is trial {best.number}, the highest score "
         f"({best.values[0]:.4f}), a prediction")
    return best


def best_said(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
    """Why `trial` is `best`, in words (`best_trial`).

    Usage: print(best_said(study, best_trial(study)))"""
    attrs = study.user_attrs
    if trial.number == attrs.get("final_picked") and attrs.get("final_tied", 1) > 1:
        return (f"trial {trial.number}, picked among the {attrs['final_tied']} finalists tied with the best "
                f"(--final-pick {attrs['final_picked_by']})")
    if "trained_accuracy" in trial.user_attrs:
        return f"trial {trial.number}, the best trained finalist"
    return f"trial {trial.number}, the highest score (untrained)"


def pick_trial(study: optuna.Study, which: str | int) -> optuna.trial.FrozenTrial:
    """`best` (`best_trial`) or a trial number."""
    if str(which) == "best":
        return best_trial(study)
    try:
        number = int(which)
    except ValueError:
        raise OptionError(f"--trial must be 'best' or a trial number, got {which!r}") from None
    for t in study.get_trials(deepcopy=False):
        if t.number == number and "arch" in t.user_attrs:
            return check_trial(study.study_name, t)
    raise HypernasError(f"study {study.study_name!r} has no finished trial {number} with an architecture")


def finalize(cfg: SearchConfig, study: optuna.Study, data: Dataset, space: Any = None,
             hypernet: Any = None, progress: bool = True) -> tuple[list[dict], float | None]:
    """Train the top candidates normally, write `trained_accuracy` onto their trials, and leave
    a drawing artifact and a dashboard note with the final table. Finished trainings are kept.
    One worker trains, under the study's lock; the others then find the results. `hypernet`
    (the model) is needed for `final_init = "hypernet"`; `progress` shows a bar."""
    with study_lock(storage_of(study), study.study_name, "final"):
        return _finalize(cfg, study, data, space, hypernet, progress)


def pool_of(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The scored architectures a final training may take: within the limits, not degenerate
    (a network cut off from its input predicts a constant), each once (two workers can score one
    architecture at the same moment: its first trial is kept), by number."""
    complete = [t for t in completed(study) if "duplicate_of" not in t.user_attrs and t.user_attrs.get("feasible", True)
                and not t.user_attrs.get("degenerate")]
    first: dict[str, optuna.trial.FrozenTrial] = {}
    for t in sorted(complete, key=lambda t: t.number):
        first.setdefault(t.user_attrs["hash"], t)
    return list(first.values())


def warn_if_degenerate_leads(study: optuna.Study) -> None:
    """Say so when a degenerate network has the best score: it predicts a constant, so the
    hypernetwork's predicted weights do worse than nothing there, which means it is undertrained."""
    scored = [t for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
              if "duplicate_of" not in t.user_attrs and t.user_attrs.get("feasible", True)]
    top = max(scored, key=lambda t: (t.values[0], -t.number), default=None)
    if top is not None and top.user_attrs.get("degenerate"):
        warn(f"the best score ({top.values[0]:.4f}, trial {top.number}) belongs to a degenerate network (its output "
             "is cut off from its input, so it predicts a constant): the hypernetwork looks undertrained; train it "
             "longer (--fit-steps). Degenerate networks are never finalists")


@dataclass
class Round:
    """One round of final trainings: its trials, why each was picked (trial number -> reason),
    the model's prediction for each where a model picked them (trial number -> (mean, sd)),
    and how well that model predicted the labels it was fitted on (`loo`, leave-one-out)."""
    number: int
    trials: list[optuna.trial.FrozenTrial]
    reasons: dict[int, str]
    predictions: dict[int, tuple[float, float]] = field(default_factory=dict)
    loo: dict | None = None


def rounds(cfg: SearchConfig, study: optuna.Study,
           survivors: list[optuna.trial.FrozenTrial] | None = None) -> Iterator[Round]:
    """The final trainings, round by round.

    After rungs, one round takes their `survivors` (best first). Otherwise
    round 1 takes in turn from the score's order and the size's. Each later round refits
    `hypernas.recalibrate`'s model on the accuracies trained so far (read back from the trials,
    so a resumed run recomputes the same rounds) and takes the untrained architectures of
    largest predicted accuracy."""
    if survivors is not None:
        chosen = survivors[:cfg.top_k]
        yield Round(1, chosen, {t.number: f"rungs #{i}" for i, t in enumerate(chosen, start=1)})
        return
    if len(study.directions) > 1 or cfg.final_rounds == 1:
        chosen = candidates(study, cfg.top_k)
        why = (lambda i: "spread along the front") if len(study.directions) > 1 else (lambda i: f"score #{i}")
        yield Round(1, chosen, {t.number: why(i) for i, t in enumerate(chosen, start=1)})
        return
    pool = pool_of(study)  # in trial-number order, so a tie in score goes to the lower number
    X = rank_features([t.user_attrs for t in pool])

    def trained(i: int) -> float:  # read back from the storage, where the last round wrote it
        return check_trial(study.study_name, fresh_trial(study, pool[i])).user_attrs["trained_accuracy"]

    scores, sizes = [t.values[0] for t in pool], [t.user_attrs["params"] for t in pool]
    for r, (picks, model) in enumerate(rounds_of(X, scores, sizes, cfg.top_k, cfg.final_rounds, trained), start=1):
        this = Round(r, [pool[i] for i in picks], {pool[i].number: why for i, why in model.get("reasons", {}).items()})
        if "mean" in model:
            this.loo = leave_one_out(X[model["fitted"]], model["labels"])
            for i in picks:
                mean, std = float(model["mean"][i]), float(model["std"][i])
                this.predictions[pool[i].number] = (mean, std)
                this.reasons[pool[i].number] = f"predicted {mean:.3f} ± {std:.3f}"
        yield this


def _finalize(cfg: SearchConfig, study: optuna.Study, data: Dataset, space: Any,
              hypernet: Any, progress: bool) -> tuple[list[dict], float | None]:
    from optuna.artifacts import FileSystemArtifactStore

    store_dir = os.path.join(cfg.run_dir, "artifacts")
    try:
        os.makedirs(store_dir, exist_ok=True)
    except OSError as err:
        raise HypernasError(f"cannot make the artifact folder {store_dir!r}: {err.strerror or err}") from None
    store = FileSystemArtifactStore(store_dir)
    rows, fits, trials = [], {}, []
    warn_if_degenerate_leads(study)
    survivors = None
    if cfg.rungs:
        survivors = run_rungs(cfg, study, candidates(study, cfg.rung_pool), data, space, hypernet, progress)
    with tqdm(total=cfg.top_k * cfg.final_seeds, desc="final training", unit="run", disable=not progress) as bar:
        for this in rounds(cfg, study, survivors):
            if this.loo is not None:
                fits[str(this.number)] = this.loo
                study.set_user_attr("final_model", fits)  # per round: how well it predicted the labels it had
            for t in this.trials:
                t = check_trial(study.study_name, fresh_trial(study, t))
                reason = this.reasons[t.number]
                if "trained_accuracy" not in t.user_attrs:
                    extra = {"final_round": this.number, "final_reason": reason}
                    if t.number in this.predictions:
                        mean, std = this.predictions[t.number]
                        extra.update(predicted_accuracy=round(mean, 4), predicted_std=round(std, 4))
                    _train_finalist(cfg, study, t, data, space, store, hypernet, extra)
                    t = fresh_trial(study, t)
                bar.update()
                while len(runs_of(t)) < cfg.final_seeds:
                    t = _train_again(cfg, study, t, data, space, hypernet)
                    bar.update()
                trials.append(t)
                rows.append({"trial": t.number, "arch": shown_arch(t), "score": t.values[0], "round": this.number,
                             "reason": reason, "score_std": t.user_attrs["score_std"],
                             "params": t.user_attrs["params"], **({"rungs": rung_history(t)} if cfg.rungs else {})})
        if trials:
            settled = _race_and_settle(cfg, study, trials, data, space, hypernet, bar)
            trials = [fresh_trial(study, t) for t in trials]
            for i, (row, t) in enumerate(zip(rows, trials)):
                iv = settled.intervals[i]
                row.update(trained_accuracy=iv.mean, low=iv.low, high=iv.high, runs=iv.runs, interval=iv.kind,
                           tied=settled.tied[i], best=i == settled.best, picked=i == settled.picked,
                           rule=settled.rule, seconds=t.user_attrs["trained_seconds"])
    tau = None
    if len(rows) >= 2:
        tau = float(stats.kendalltau([r["score"] for r in rows], [r["trained_accuracy"] for r in rows]).statistic)
        tau = None if tau != tau else tau  # NaN when every score or every accuracy ties
    study.set_user_attr("finalists", len(rows))  # how well the score ranked what was trained, and over how many
    study.set_user_attr("finalists_kendall_tau", tau)
    print(final_table(rows, tau))  # plain: an architecture copied from it is what `hypernas train --arch` takes
    try:
        import optuna_dashboard

        optuna_dashboard.save_note(study, final_table(rows, tau, markdown=True))
    except ImportError:  # the note is a courtesy for dashboard users; the table is printed anyway
        pass
    return rows, tau


def runs_of(t: optuna.trial.FrozenTrial) -> list[float]:
    """A finalist's trained accuracies, one per training seed (a study older than several seeds
    records one)."""
    return list(t.user_attrs.get("trained_runs", [t.user_attrs["trained_accuracy"]]))


def _race_and_settle(cfg: SearchConfig, study: optuna.Study, trials: list, data: Dataset, space: Any,
                     hypernet: Any, bar: Any) -> Settled:
    """Race (`final_race` extra trainings in all, those spent before counted), then each
    finalist's interval, the ties with the best and the pick; written onto the trials and the study."""
    runs = [runs_of(t) for t in trials]
    left = cfg.final_race - sum(max(0, len(r) - cfg.final_seeds) for r in runs)  # a resumed race goes on
    test_samples = trials[0].user_attrs.get("trained_test_samples", len(data.x_test))

    def train_more(i: int) -> float:
        bar.total += 1
        trials[i] = _train_again(cfg, study, trials[i], data, space, hypernet)
        bar.update()
        return runs_of(trials[i])[-1]

    race(runs, max(0, left), train_more, test_samples)

    def latency(i: int) -> float:
        if "latency_ms" in trials[i].user_attrs:
            return trials[i].user_attrs["latency_ms"]
        from hypernas.budget import measure_latency
        from hypernas.graph import validate

        return measure_latency(validate(trial_graph(study, trials[i], space)), data.ndim, data.input_size, cfg.device)

    settled = settle(runs, test_samples, cfg.final_pick, [t.user_attrs["params"] for t in trials], latency,
                     [t.values[0] for t in trials])
    for i, t in enumerate(trials):
        iv = settled.intervals[i]
        annotate_trial(study, t, user_attrs={"trained_low": round(iv.low, 5), "trained_high": round(iv.high, 5),
                                             "trained_interval": iv.kind, "trained_tied": settled.tied[i]})
    study.set_user_attr("final_picked", trials[settled.picked].number)
    study.set_user_attr("final_picked_by", settled.rule)
    study.set_user_attr("final_tied", sum(settled.tied))
    return settled


def _train_run(cfg: SearchConfig, study: optuna.Study, t: optuna.trial.FrozenTrial, data: Dataset, space: Any,
               hypernet: Any, seed: int):
    """One final training of trial `t` with `seed`."""
    G = trial_graph(study, t, space)
    start = None
    if cfg.final_init == "hypernet":
        start = predicted_start(hypernet, G, scoring_samples(data, cfg.score_split)[0])
    return G, train(G, data, TrainConfig(epochs=cfg.final_epochs), seed=seed, device=cfg.device, progress=False,
                    init=start)


def _train_again(cfg: SearchConfig, study: optuna.Study, t: optuna.trial.FrozenTrial, data: Dataset, space: Any,
                 hypernet: Any) -> optuna.trial.FrozenTrial:
    """Train a finalist once more, with the next seed, and write its accuracies (their mean is
    `trained_accuracy`) and their total seconds onto its trial; returns the trial as stored."""
    runs = runs_of(t)
    _, r = _train_run(cfg, study, t, data, space, hypernet, cfg.seed + len(runs))
    runs.append(r.test_accuracy)
    annotate_trial(study, t, user_attrs={"trained_runs": runs, "trained_accuracy": sum(runs) / len(runs),
                                         "trained_seconds": round(t.user_attrs["trained_seconds"] + r.seconds, 2)})
    return check_trial(study.study_name, fresh_trial(study, t))


def _train_finalist(cfg: SearchConfig, study: optuna.Study, t: optuna.trial.FrozenTrial, data: Dataset, space: Any,
                    store: Any, hypernet: Any, extra: dict) -> None:
    """Train one finalist and write its result, weights and drawing onto its trial."""
    G, r = _train_run(cfg, study, t, data, space, hypernet, cfg.seed)
    # Stored relative to the run directory, so a moved run directory still finds them.
    name = weights_name(study.user_attrs["run_token"], t.number)
    save_file(lambda f: torch.save(r.model.state_dict(), f), os.path.join(cfg.run_dir, name))
    png = os.path.join(cfg.run_dir, name.removesuffix(".pt") + ".png")
    arch = t.user_attrs["arch"]
    draw_architecture(G, png, title=f"trial {t.number}: " + (arch if len(arch) <= 160 else "graph JSON"),
                      sketch=getattr(space, "sketch", None))
    artifact = attach_artifact(study, t, store, png)
    annotate_trial(study, t, user_attrs={
        "trained_accuracy": r.test_accuracy, "trained_runs": [r.test_accuracy], "trained_seconds": round(r.seconds, 2), "trained_epochs": cfg.final_epochs,
        "trained_weights": name, "trained_init": cfg.final_init, "trained_test_samples": len(data.x_test),
        **extra})
    # The trial's note is the first thing its dashboard page shows: what was trained, and the
    # drawing at full size (the artifact card is a thumbnail).
    save_trial_note(study, t, f"**Trained: test accuracy {r.test_accuracy:.4f}** after {cfg.final_epochs} epoch(s), "
                              f"{r.seconds:.1f} s (round {extra['final_round']}, picked for {extra['final_reason']}); "
                              f"score {t.values[0]:.4f} ± {t.user_attrs['score_std']:.4f} predicted."
                              + (f" Rungs, validation accuracy: {rung_history(t)}." if "rung_results" in t.user_attrs
                                 else "") + "\n\n"
                              f"![trial {t.number}](/artifacts/{study_id_of(study)}/{trial_id_of(t)}/{artifact})")
