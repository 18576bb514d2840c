"""What the samplers of our own share: the single-objective check and the per-trial key.

Usage:
    check_single_objective(study, "LocalSearchSampler")
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial

from hypernas.errors import OptionError


def trial_key(study: optuna.Study, trial: FrozenTrial) -> tuple[str, int]:
    """A trial's key in a sampler's per-trial state: one sampler may serve several studies."""
    return study.study_name, trial.number


def check_single_objective(study: optuna.Study, sampler: str) -> None:
    """Refuse a study with several objectives, naming the samplers that serve one."""
    if len(study.directions) > 1:
        raise OptionError(
            f"{sampler} serves single-objective studies only; study {study.study_name!r} has "
            f"{len(study.directions)} objectives ({', '.join(d.name.lower() for d in study.directions)}). "
            "Use NSGAIISampler or TPESampler for several objectives.")
