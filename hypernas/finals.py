"""The final stage of a search: train the best architectures normally, write the truth back.

The top `top_k` distinct architectures by score (members of the Pareto front on a study
with several objectives) are trained with the reference protocol. Each trained accuracy is
written onto its trial (`trained_accuracy`) beside the prediction, with its weights and a
drawing that optuna-dashboard shows, and a dashboard note holds the table with the Kendall
tau between score and trained accuracy. Finished trainings are kept: a rerun repeats none.

Usage:
    rows, tau = finalize(cfg, study, data, space)
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
from hypernas.errors import HypernasError
from hypernas.files import save_file
from hypernas.ghn.start import predicted_start, score_batch
from hypernas.optuna_private import annotate_trial, attach_artifact, fresh_trial, storage_of
from hypernas.recalibrate import leave_one_out, rank_features, rounds_of
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


def finalize(cfg: SearchConfig, study: optuna.Study, data: Dataset, space: Any = None,
             hypernet: Any = None) -> tuple[list[dict], float | None]:
    """Train the top candidates normally, write `trained_accuracy` onto their trials, and leave
    a drawing artifact and a dashboard note with the final table. Finished trainings are kept.
    One worker trains, under the study's lock; the others then find the results. `hypernet`
    (the model) is needed for `final_init = "hypernet"`."""
    with study_lock(storage_of(study), study.study_name, "final"):
        return _finalize(cfg, study, data, space, hypernet)


def pool_of(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The scored architectures a final training may take: within the limits, each once (two
    workers can score one architecture at the same moment: its first trial is kept), by number."""
    complete = [t for t in completed(study) if "duplicate_of" not in t.user_attrs and t.user_attrs.get("feasible", True)]
    first: dict[str, optuna.trial.FrozenTrial] = {}
    for t in sorted(complete, key=lambda t: t.number):
        first.setdefault(t.user_attrs["hash"], t)
    return list(first.values())


def rounds(cfg: SearchConfig, study: optuna.Study) -> Iterator[tuple[int, list[optuna.trial.FrozenTrial], dict]]:
    """The final trainings, round by round: (round, its trials, what the model said of them).

    Round 1 takes in turn from the score's order and the size's. Each later round refits
    `hypernas.recalibrate`'s model on the accuracies trained so far (read back from the trials,
    so a resumed run recomputes the same rounds) and takes the untrained architectures of
    largest predicted accuracy."""
    if len(study.directions) > 1 or cfg.final_rounds == 1:
        yield 1, candidates(study, cfg.top_k), {}
        return
    pool = pool_of(study)  # in trial-number order, so a tie in score goes to the lower number
    X = rank_features([t.user_attrs for t in pool])

    def trained(i: int) -> float:  # read back from the storage, where the last round wrote it
        return check_trial(study.study_name, fresh_trial(study, pool[i])).user_attrs["trained_accuracy"]

    scores, sizes = [t.values[0] for t in pool], [t.user_attrs["params"] for t in pool]
    for r, (picks, model) in enumerate(rounds_of(X, scores, sizes, cfg.top_k, cfg.final_rounds, trained), start=1):
        said = {}
        if model:
            said = {"loo": leave_one_out(X[model["fitted"]], model["labels"]),
                    **{pool[i].number: (float(model["mean"][i]), float(model["std"][i])) for i in picks}}
        yield r, [pool[i] for i in picks], said


def _finalize(cfg: SearchConfig, study: optuna.Study, data: Dataset, space: Any,
              hypernet: Any) -> tuple[list[dict], float | None]:
    from optuna.artifacts import FileSystemArtifactStore

    store_dir = os.path.join(cfg.run_dir, "artifacts")
    try:
        os.makedirs(store_dir, exist_ok=True)
    except OSError as err:
        raise HypernasError(f"cannot make the artifact folder {store_dir!r}: {err.strerror or err}") from None
    store = FileSystemArtifactStore(store_dir)
    rows, fits = [], {}
    with tqdm(total=cfg.top_k, desc="final training", unit="arch") as bar:
        for r, picks, said in rounds(cfg, study):
            if "loo" in said:
                fits[str(r)] = said["loo"]
                study.set_user_attr("final_model", fits)  # per round: how well it predicted the labels it had
            for t in picks:
                t = check_trial(study.study_name, fresh_trial(study, t))
                if "trained_accuracy" not in t.user_attrs:
                    prediction = said.get(t.number)
                    extra = {"final_round": r} if cfg.final_rounds > 1 else {}
                    if prediction:
                        extra.update(predicted_accuracy=round(prediction[0], 4), predicted_std=round(prediction[1], 4))
                    _train_finalist(cfg, study, t, data, space, store, hypernet, extra)
                    t = fresh_trial(study, t)
                rows.append({"trial": t.number, "arch": _shown(t), "score": t.values[0], "round": r,
                             "score_std": t.user_attrs["score_std"], "trained_accuracy": t.user_attrs["trained_accuracy"],
                             "params": t.user_attrs["params"], "seconds": t.user_attrs["trained_seconds"]})
                bar.update()
    tau = None
    if len(rows) >= 2:
        tau = float(stats.kendalltau([r["score"] for r in rows], [r["trained_accuracy"] for r in rows]).statistic)
        tau = None if tau != tau else tau  # NaN when every score or every accuracy ties
    study.set_user_attr("finalists", len(rows))  # how well the score ranked what was trained, and over how many
    study.set_user_attr("finalists_kendall_tau", tau)
    table = final_table(rows, tau, rounds=cfg.final_rounds > 1)
    print(table)
    try:
        import optuna_dashboard

        optuna_dashboard.save_note(study, table)
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
    # Stored relative to the run directory, so a moved run directory still finds them.
    name = weights_name(study.user_attrs["run_token"], t.number)
    save_file(lambda f: torch.save(r.model.state_dict(), f), os.path.join(cfg.run_dir, name))
    png = os.path.join(cfg.run_dir, name.removesuffix(".pt") + ".png")
    arch = t.user_attrs["arch"]
    draw_architecture(G, png, title=f"trial {t.number}: " + (arch if len(arch) <= 160 else "graph JSON"),
                      sketch=getattr(space, "sketch", None))
    attach_artifact(study, t, store, png)
    annotate_trial(study, t, user_attrs={
        "trained_accuracy": r.test_accuracy, "trained_seconds": round(r.seconds, 2), "trained_epochs": cfg.final_epochs,
        "trained_weights": name, "trained_init": cfg.final_init, **extra})


def _shown(t: optuna.trial.FrozenTrial) -> str:
    """A finalist's architecture in full: the space's string form, or (for graph JSON, which
    runs to thousands of characters) the choices the trial made, which determine it."""
    arch = t.user_attrs["arch"]
    return arch if not arch.startswith("{") else ", ".join(f"{k}={v}" for k, v in sorted(t.params.items()))


def final_table(rows: list[dict], tau: float | None, rounds: bool = False) -> str:
    """Markdown: rank, architecture, score +- std, true accuracy, params, seconds (and with
    `rounds`, each one's round); and tau. An architecture's `|` (NB201's strings are made of
    them) is escaped, or it would split the cell."""
    lines = ["| rank | trial | architecture | score ± std | true accuracy | params | seconds |" + (" round |" * rounds),
             "|---|---|---|---|---|---|---|" + "---|" * rounds]
    for rank, r in enumerate(rows, start=1):
        arch = r["arch"].replace("|", "\\|")
        lines.append(f"| {rank} | {r['trial']} | `{arch}` | {r['score']:.4f} ± {r['score_std']:.4f} | "
                     f"{r['trained_accuracy']:.4f} | {r['params']} | {r['seconds']:.1f} |"
                     + (f" {r['round']} |" if rounds else ""))
    lines.append("")
    lines.append(f"Kendall tau between score and true accuracy over these {len(rows)}: "
                 + ("n/a" if tau is None else f"{tau:.3f}"))
    return "\n".join(lines)
