"""The final stage of a search: train the best architectures normally, write the truth back.

The top `top_k` distinct architectures by score (members of the Pareto front on a study
with several objectives; never a degenerate network, nor one over a limit) are trained with
the reference protocol. Each trained accuracy is written onto its trial (`trained_accuracy`)
beside the prediction, with its round and the reason it was picked, its weights and a drawing;
the trial's dashboard note says it first, with the drawing at full size, and the study's note
holds the table with the Kendall tau between score and trained accuracy. Finished trainings
are kept: a rerun repeats none. `best_trial` says what `best` means wherever a user asks for it.

Usage:
    rows, tau = finalize(cfg, study, data, space)
    trial = best_trial(study)   # the best trained finalist
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import optuna
import torch
from scipy import stats
from tqdm.auto import tqdm

from hypernas.config import SearchConfig, TrainConfig
from hypernas.data import Dataset
from hypernas.drawing import draw_architecture
from hypernas.errors import HypernasError, OptionError, warn
from hypernas.files import save_file
from hypernas.ghn.start import predicted_start, score_batch
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
    plot arch`): the trained finalist of highest trained accuracy, a tie going to the higher
    score, then to the lower trial number. The score only predicts; the final training measured.
    A study with no trained finalist yet (`--top-k 0`) falls back to the highest score among
    the architectures a final training may take (`pool_of`), and says so.

    Usage: best_trial(load_study(url, "demo")).number"""
    complete = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
    trained = [t for t in complete if "trained_accuracy" in t.user_attrs]
    if trained:
        return max(trained, key=lambda t: (t.user_attrs["trained_accuracy"], t.values[0], -t.number))
    pool = pool_of(study)
    if not pool:
        raise HypernasError(f"study {study.study_name!r} has no completed trial within its limits")
    best = max(pool, key=lambda t: (t.values[0], -t.number))
    warn(f"study {study.study_name!r} has no trained finalist: 'best' is trial {best.number}, the highest score "
         f"({best.values[0]:.4f}), a prediction")
    return best


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
            return t
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
    complete = [t for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
                if "duplicate_of" not in t.user_attrs and t.user_attrs.get("feasible", True)
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


def rounds(cfg: SearchConfig, study: optuna.Study) -> Iterator[tuple[int, list[optuna.trial.FrozenTrial], dict]]:
    """The final trainings, round by round: (round, its trials, what was said of them: `reasons`,
    trial number -> why it was picked, and the model's predictions).

    Round 1 takes in turn from the score's order and the size's. Each later round refits
    `hypernas.recalibrate`'s model on the accuracies trained so far (read back from the trials,
    so a resumed run recomputes the same rounds) and takes the untrained architectures of
    largest predicted accuracy."""
    if len(study.directions) > 1 or cfg.final_rounds == 1:
        chosen = candidates(study, cfg.top_k)
        why = (lambda i: "spread along the front") if len(study.directions) > 1 else (lambda i: f"score #{i}")
        yield 1, chosen, {"reasons": {t.number: why(i) for i, t in enumerate(chosen, start=1)}}
        return
    pool = pool_of(study)  # in trial-number order, so a tie in score goes to the lower number
    X = rank_features([t.user_attrs for t in pool])

    def trained(i: int) -> float:  # read back from the storage, where the last round wrote it
        return fresh_trial(study, pool[i]).user_attrs["trained_accuracy"]

    scores, sizes = [t.values[0] for t in pool], [t.user_attrs["params"] for t in pool]
    for r, (picks, model) in enumerate(rounds_of(X, scores, sizes, cfg.top_k, cfg.final_rounds, trained), start=1):
        said = {"reasons": {pool[i].number: reason for i, reason in model.get("reasons", {}).items()}}
        if "mean" in model:
            said["loo"] = leave_one_out(X[model["fitted"]], model["labels"])
            for i in picks:
                mean, std = float(model["mean"][i]), float(model["std"][i])
                said[pool[i].number] = (mean, std)
                said["reasons"][pool[i].number] = f"predicted {mean:.3f} ± {std:.3f}"
        yield r, [pool[i] for i in picks], said


def _finalize(cfg: SearchConfig, study: optuna.Study, data: Dataset, space: Any,
              hypernet: Any, progress: bool) -> tuple[list[dict], float | None]:
    from optuna.artifacts import FileSystemArtifactStore

    store_dir = os.path.join(cfg.run_dir, "artifacts")
    try:
        os.makedirs(store_dir, exist_ok=True)
    except OSError as err:
        raise HypernasError(f"cannot make the artifact folder {store_dir!r}: {err.strerror or err}") from None
    store = FileSystemArtifactStore(store_dir)
    rows, fits = [], {}
    warn_if_degenerate_leads(study)
    with tqdm(total=cfg.top_k, desc="final training", unit="arch", disable=not progress) as bar:
        for r, picks, said in rounds(cfg, study):
            if "loo" in said:
                fits[str(r)] = said["loo"]
                study.set_user_attr("final_model", fits)  # per round: how well it predicted the labels it had
            for t in picks:
                t = fresh_trial(study, t)
                reason = said["reasons"][t.number]
                if "trained_accuracy" not in t.user_attrs:
                    prediction = said.get(t.number)
                    extra = {"final_round": r, "final_reason": reason}
                    if prediction:
                        extra.update(predicted_accuracy=round(prediction[0], 4), predicted_std=round(prediction[1], 4))
                    _train_finalist(cfg, study, t, data, space, store, hypernet, extra)
                    t = fresh_trial(study, t)
                rows.append({"trial": t.number, "arch": _shown(t), "score": t.values[0], "round": r, "reason": reason,
                             "score_std": t.user_attrs["score_std"], "trained_accuracy": t.user_attrs["trained_accuracy"],
                             "params": t.user_attrs["params"], "seconds": t.user_attrs["trained_seconds"]})
                bar.update()
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


def _train_finalist(cfg: SearchConfig, study: optuna.Study, t: optuna.trial.FrozenTrial, data: Dataset, space: Any,
                    store: Any, hypernet: Any, extra: dict) -> None:
    """Train one finalist and write its result, weights and drawing onto its trial."""
    G = trial_graph(study, t, space)
    start = None
    if cfg.final_init == "hypernet":
        start = predicted_start(hypernet, G, score_batch(data, cfg.score_split))
    r = train(G, data, TrainConfig(epochs=cfg.final_epochs), seed=cfg.seed, device=cfg.device, progress=False,
              init=start)
    # Named by the study's own token and the trial, so that two studies of one name (on two
    # storages, say) never share a file; stored relative to the run directory, so a moved
    # run directory still finds them.
    name = os.path.join("final", f"{study.user_attrs['run_token']}-trial_{t.number}")
    save_file(lambda f: torch.save(r.model.state_dict(), f), os.path.join(cfg.run_dir, name + ".pt"))
    png = os.path.join(cfg.run_dir, name + ".png")
    arch = t.user_attrs["arch"]
    draw_architecture(G, png, title=f"trial {t.number}: " + (arch if len(arch) <= 160 else "graph JSON"),
                      sketch=getattr(space, "sketch", None))
    artifact = attach_artifact(study, t, store, png)
    annotate_trial(study, t, user_attrs={
        "trained_accuracy": r.test_accuracy, "trained_seconds": round(r.seconds, 2), "trained_epochs": cfg.final_epochs,
        "trained_weights": name + ".pt", "trained_init": cfg.final_init, "trained_test_samples": len(data.x_test),
        **extra})
    # The trial's note is the first thing its dashboard page shows: what was trained, and the
    # drawing at full size (the artifact card is a thumbnail).
    save_trial_note(study, t, f"**Trained: test accuracy {r.test_accuracy:.4f}** after {cfg.final_epochs} epoch(s), "
                              f"{r.seconds:.1f} s (round {extra['final_round']}, picked for {extra['final_reason']}); "
                              f"score {t.values[0]:.4f} ± {t.user_attrs['score_std']:.4f} predicted.\n\n"
                              f"![trial {t.number}](/artifacts/{study_id_of(study)}/{trial_id_of(t)}/{artifact})")


def _shown(t: optuna.trial.FrozenTrial) -> str:
    """A finalist's architecture in full: the space's string form, or (for graph JSON, which
    runs to thousands of characters) the choices the trial made, which determine it."""
    arch = t.user_attrs["arch"]
    return arch if not arch.startswith("{") else ", ".join(f"{k}={v}" for k, v in sorted(t.params.items()))


COLUMNS = ("trial", "round", "picked for", "score ± std", "true accuracy", "params", "seconds", "architecture")


def final_table(rows: list[dict], tau: float | None, markdown: bool = False) -> str:
    """The finalists, one row each: trial, round, why it was picked, score +- std, true
    accuracy, params, seconds and architecture (last: the long one), then the Kendall tau.
    Plain text for the terminal, where an architecture is copied whole into `hypernas train
    --arch`; with `markdown`, a table for the dashboard's note, where an NB201 string's `|`
    is escaped (it would split the cell)."""
    cells = [[str(r["trial"]), str(r["round"]), r["reason"], f"{r['score']:.4f} ± {r['score_std']:.4f}",
              f"{r['trained_accuracy']:.4f}", str(r["params"]), f"{r['seconds']:.1f}", r["arch"]] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join([*c[:-1], "`" + c[-1].replace("|", "\\|") + "`"]) + " |" for c in cells]
    else:
        widths = [max(len(x) for x in column) for column in zip(COLUMNS, *cells)]
        lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in (COLUMNS, *cells)]
    lines.append("")
    lines.append(f"Kendall tau between score and true accuracy over these {len(rows)}: "
                 + ("n/a" if tau is None else f"{tau:.3f}"))
    return "\n".join(lines)
