"""What a study was made with, written on it and checked again on every resume.

A study records its space and options, the dataset and its shape, the objectives, the score
split and the hypernetwork (path and hash). A run that asks for other values is refused, so
one study never mixes results of different setups. Each trial records its architecture
(`arch`), from which `trial_graph` rebuilds the network.

Usage:
    study = open_study(cfg, storage, space, options, hypernet, data)
    G = trial_graph(study, trial, space)
    trial = pick_trial(study, "best")
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import networkx as nx
import optuna

from hypernas.config import OBJECTIVES, SearchConfig
from hypernas.errors import HypernasError, OptionError, StorageError
from hypernas.graph import from_json
from hypernas.spaces import BUILTIN, Space, get_space
from hypernas.study.storage import redact


def open_study(cfg: SearchConfig, storage: Any, options: dict[str, Any], hypernet: Any, data: Any) -> optuna.Study:
    """Create the study, or load it and refuse a run whose setup differs from its record.
    `hypernet` is the loaded checkpoint (`hypernas.ghn.checkpoint.Hypernet`)."""
    directions = [OBJECTIVES[o] for o in cfg.objectives]
    try:
        study = optuna.create_study(study_name=cfg.study, storage=storage, directions=directions, load_if_exists=True)
    except ValueError as err:
        raise StorageError(f"study {cfg.study!r} in {redact(cfg.storage_url)}: {err}") from None
    record = {"space": cfg.space, "space_options": options, "dataset": cfg.dataset, "objectives": list(cfg.objectives),
              "score_split": cfg.score_split}
    for key, value in record.items():
        if key in study.user_attrs and study.user_attrs[key] != value:
            raise StorageError(f"study {cfg.study!r} was created with {key} = {study.user_attrs[key]!r}, this run "
                               f"asks for {value!r}; pick another --study or the original options")
    if [d.name.lower() for d in study.directions] != directions:
        raise StorageError(f"study {cfg.study!r} has directions {study.directions}, not {directions}")
    new = {**record, **data.signature(), "ndim": data.ndim, "hypernet": os.path.abspath(hypernet.path),
           "hypernet_sha256": hypernet.sha256, "sampler": cfg.sampler, "sampler_options": cfg.sampler_options,
           "warm_start": cfg.warm_start, "seed": cfg.seed, "run_dir": os.path.abspath(cfg.run_dir)}
    for key, value in new.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)
    with warnings.catch_warnings():  # experimental since Optuna 3.2, and what the dashboard shows
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(cfg.objectives))
    return study


def study_space(study: optuna.Study, space: Space | None = None) -> Space:
    """The space a study was made with. A built-in space is found by its recorded name. A
    user's space is a Python file, and a file we read must never decide what code runs: the
    user names it (`space`, e.g. from `--space`), and it must be the one recorded."""
    recorded = study.user_attrs.get("space")
    if space is not None:
        if space.name != recorded:
            raise StorageError(f"study {study.study_name!r} was made with space {recorded!r}, not {space.name!r}")
        return space
    if recorded in BUILTIN:
        return get_space(recorded)
    raise StorageError(f"study {study.study_name!r} was made with the space {recorded!r}, which is code: "
                       f"name it yourself with --space {recorded} (reading a study never imports a file it names)")


def trial_graph(study: optuna.Study, trial: optuna.trial.FrozenTrial, space: Space | None = None) -> nx.DiGraph:
    """The architecture of a trial, rebuilt from its `arch` attribute: JSON as it is, the
    space's string form through `space` (by default the study's built-in space)."""
    arch = trial.user_attrs["arch"]
    if arch.startswith("{"):
        return from_json(arch)
    attrs = study.user_attrs
    space = study_space(study, space)
    return space.from_text(arch, attrs["in_channels"], attrs["num_classes"], **attrs["space_options"])


def pick_trial(study: optuna.Study, which: str | int) -> optuna.trial.FrozenTrial:
    """`best` (highest score; on a Pareto front, its highest-scoring member) or a trial number."""
    complete = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
    if not complete:
        raise HypernasError(f"study {study.study_name!r} has no completed trials")
    if str(which) == "best":
        return max(complete, key=lambda t: (t.values[0], -t.number))
    try:
        number = int(which)
    except ValueError:
        raise OptionError(f"--trial must be 'best' or a trial number, got {which!r}") from None
    for t in complete:
        if t.number == number:
            return t
    raise HypernasError(f"study {study.study_name!r} has no completed trial {number}")
