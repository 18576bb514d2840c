"""What a study was made with, written on it and checked again on every resume.

A study records its space and options, the data (by content), the objectives, the score
split, the draws per score, the seed, the final training's epochs and the hypernetwork (path
and digest). Once it holds a scored trial, a run that asks for other values is refused, naming
what changed, so one study never mixes results of different setups. Each trial records its architecture
(`arch`), from which `trial_graph` rebuilds the network.

Usage:
    study = open_study(cfg, storage, study_record(cfg, space, options, data), hypernet)
    G = trial_graph(study, trial, space)
"""

from __future__ import annotations

import os
import uuid
import warnings
from typing import Any

import networkx as nx
import optuna

from hypernas.config import OBJECTIVES, SearchConfig
from hypernas.errors import StorageError, first_line
from hypernas.graph import from_json
from hypernas.spaces import Space, recorded_space
from hypernas.study.attrs import check_kinds, checked_attrs
from hypernas.study.storage import redact

# Not what the scores depend on: free to change on a resume (the sampler may change mid-study).
FREE = ("dataset", "hypernet", "sampler", "sampler_options", "warm_start", "run_dir", "run_token", "search_timing",
        "finalists", "finalists_kendall_tau", "infeasible_trials",
        # More seeds, a longer race or another pick rule add trainings or re-pick; none changes a result.
        "final_seeds", "final_race", "final_pick", "final_picked", "final_picked_by", "final_tied")


def study_record(cfg: SearchConfig, space: Space, options: dict[str, Any], data: Any) -> dict[str, Any]:
    """What a study's scores and final trainings depend on, besides the hypernetwork, and the
    free labels beside it (`FREE`). `dataset` is the name or path given: a hint, the data is
    known by `sha256`."""
    return {"space": space.name, "space_options": options, **data.signature(), "ndim": data.ndim,
            "input_mean": list(data.input_mean), "input_std": list(data.input_std),
            "objectives": list(cfg.objectives), "score_split": cfg.score_split, "samples": cfg.samples,
            "seed": cfg.seed, "final_epochs": cfg.final_epochs, "final_rounds": cfg.final_rounds,
            "final_init": cfg.final_init, "final_seeds": cfg.final_seeds, "final_race": cfg.final_race,
            "final_pick": cfg.final_pick, "sampler": cfg.sampler,
            "sampler_options": cfg.sampler_options, "warm_start": cfg.warm_start, **cfg.limits.record(),
            "run_dir": os.path.abspath(cfg.run_dir)}


def find_study(storage: Any, name: str) -> optuna.Study | None:
    """The study of that name in `storage`, its attributes checked (`checked_attrs`), or None."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None
    checked_attrs(study)
    return study


def scored_record(study: optuna.Study | None) -> dict[str, Any]:
    """The record a study's trials were scored under: empty while it has no finished trial,
    since nothing can be mixed before the first."""
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)  # over a limit, or a copy: PRUNED
    if study is None or not study.get_trials(deepcopy=False, states=finished):
        return {}
    return dict(study.user_attrs)


def check_record(name: str, recorded: dict[str, Any], record: dict[str, Any]) -> None:
    """Refuse a run that would add trials scored under another setup, naming what changed. A
    key the study lacks was not set when it was scored (a limit it had none of, say): None."""
    if not recorded:
        return
    for key, value in record.items():
        if key not in FREE and recorded.get(key) != value:
            raise StorageError(f"study {name!r} was scored with {key} = {recorded.get(key)!r}, this run asks for "
                               f"{value!r}; pick another --study, or the original options")


def open_study(cfg: SearchConfig, storage: Any, record: dict[str, Any], hypernet: Any) -> optuna.Study:
    """Create the study, or load it and refuse a run whose setup differs from the one its
    trials were scored under (`check_record`, and the hypernetwork's digest); then write the
    record. `hypernet` is the loaded checkpoint (`hypernas.ghn.checkpoint.Hypernet`)."""
    directions = [OBJECTIVES[o] for o in cfg.objectives]
    try:
        return _open_study(cfg, storage, record, hypernet, directions)
    except StorageError:
        raise
    except ValueError as err:
        raise StorageError(f"study {cfg.study!r} in {redact(cfg.storage_url)}: {err}") from None
    except Exception as err:  # the database refused: full disk, read-only, locked, corrupt
        if type(err).__module__.split(".")[0] not in ("sqlalchemy", "optuna", "sqlite3", "psycopg"):
            raise
        raise StorageError(f"study {cfg.study!r} in {redact(cfg.storage_url)}: {first_line(err)}") from None


def _open_study(cfg: SearchConfig, storage: Any, record: dict[str, Any], hypernet: Any,
                directions: list[str]) -> optuna.Study:
    study = optuna.create_study(study_name=cfg.study, storage=storage, directions=directions, load_if_exists=True)
    checked_attrs(study)  # another worker's, or anyone's who can write the storage
    if [d.name.lower() for d in study.directions] != directions:
        raise StorageError(f"study {cfg.study!r} has directions {study.directions}, not {directions}")
    record = {**record, "hypernet": os.path.abspath(hypernet.path), "hypernet_sha256": hypernet.sha256}
    check_record(cfg.study, scored_record(study), record)
    if "run_token" not in study.user_attrs:  # names its files apart from any other study's in the same folder
        record["run_token"] = uuid.uuid4().hex[:8]
    for key, value in record.items():
        if key not in study.user_attrs or study.user_attrs[key] != value:  # None too: no limit is a setting
            study.set_user_attr(key, value)
    with warnings.catch_warnings():  # experimental since Optuna 3.2, and what the dashboard shows
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(cfg.objectives))
    return study


def study_space(study: optuna.Study, space: Space | None = None) -> Space:
    """The space a study was made with (`hypernas.spaces.recorded_space`: a user's space must be named)."""
    return recorded_space(study.user_attrs.get("space"), space, f"study {study.study_name!r}")


def trial_graph(study: optuna.Study, trial: optuna.trial.FrozenTrial, space: Space | None = None) -> nx.DiGraph:
    """The architecture of a trial, rebuilt from its `arch` attribute: JSON as it is, the
    space's string form through `space` (by default the study's built-in space)."""
    arch = trial.user_attrs["arch"]
    if arch.startswith("{"):
        return from_json(arch)
    attrs = study.user_attrs
    check_kinds(attrs, {}, f"study {study.study_name!r}", required=("in_channels", "num_classes", "space_options"))
    space = study_space(study, space)
    return space.from_text(arch, attrs["in_channels"], attrs["num_classes"], **attrs["space_options"])
