"""What a study and its trials record, each attribute of a known kind, checked whenever it is read.

Anyone who can write a study's storage (a shared PostgreSQL study, a copied SQLite file) can
write its attributes, so nothing read back is trusted: every attribute the code reads is
checked against its kind here, and a study or trial that holds another is refused by name
before it can decide a file name, a tensor's size or a line of the final table. A value that
names a file is a plain token (`run_token`), or a path the reader checks itself
(`trained_weights` must be the file the final training wrote: `weights_name`).

Usage:
    attrs = checked_attrs(study)            # the study's attributes, each of its kind
    trials = completed(study)               # its completed trials, each checked
    trial = check_trial("demo", trial)
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import optuna

from hypernas.certainty import PICKS
from hypernas.config import LAYOUTS, MAX_SAMPLES, MAX_SEED, OBJECTIVES, SPLITS
from hypernas.errors import HypernasError, StorageError, shown

Kind = tuple[Callable[[Any], bool], str]  # (whether a value fits, the kind in words)


def _int(low: int = 0, high: int | None = None) -> Kind:
    words = f"an integer from {low}" + (f" to {high}" if high is not None else "")
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low and (high is None or v <= high),
            words)


def _number(low: float = -math.inf, high: float = math.inf, above: float | None = None) -> Kind:
    """A finite number within [low, high] (and above `above`)."""
    words = "a finite number" + (f" above {above:g}" if above is not None else "") + (
        f" from {low:g} to {high:g}" if low > -math.inf and high < math.inf else "")
    return (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and low <= v <= high and (above is None or v > above), words)


def _list(item: Kind, words: str, sizes: tuple[int, ...] | None = None) -> Kind:
    return (lambda v: isinstance(v, list) and (sizes is None or len(v) in sizes) and all(item[0](x) for x in v),
            words)


def _optional(kind: Kind) -> Kind:
    return (lambda v: v is None or kind[0](v)), f"{kind[1]} or null"


def _one_of(*values: Any) -> Kind:
    return (lambda v: not isinstance(v, bool) and v in values), f"one of {', '.join(map(repr, values))}"


TEXT: Kind = (lambda v: isinstance(v, str) and v != "", "a non-empty string")
TABLE: Kind = (lambda v: isinstance(v, Mapping), "a table")
FLAG: Kind = (lambda v: isinstance(v, bool), "true or false")
REAL: Kind = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number")  # NaN and inf too
# Final weights are named by it, so it must not leave the run directory: what `uuid4().hex[:8]` writes, and kin.
TOKEN: Kind = (lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v) is not None,
               "a plain token (letters, digits, '_' and '-')")
PATH: Kind = (lambda v: isinstance(v, str) and os.path.isabs(v), "an absolute path")

# A trial's rung results (`hypernas.rung_stage`): epochs (as JSON keys, digits) -> the validation loss and accuracy.
RUNG_RESULTS: Kind = (lambda v: isinstance(v, Mapping) and all(
    isinstance(e, str) and e.isdigit() and isinstance(r, Mapping) and set(r) == {"loss", "accuracy"}
    and _number(0)[0](r["loss"]) and _number(0, 1)[0](r["accuracy"]) for e, r in v.items()),
    "a table of epochs -> {loss, accuracy}")

STUDY: dict[str, Kind] = {
    "space": TEXT, "space_options": TABLE, "dataset": TEXT, "sha256": TEXT, "in_channels": _int(1),
    "input_size": _list(_int(1), "a list of 1 or 2 positive integers", (1, 2)), "num_classes": _int(2),
    "val_fraction": _number(0, 1), "split_seed": _int(0), "ndim": _one_of(1, 2), "layout": _one_of(*LAYOUTS),
    "classes": _optional(_list((lambda v: isinstance(v, (str, int, float)), ""), "a list of labels")),
    "input_mean": _list(_number(), "a list of finite numbers"),
    "input_std": _list(_number(above=0), "a list of positive finite numbers"),
    "objectives": _list(_one_of(*OBJECTIVES), f"a list of {', '.join(OBJECTIVES)}"), "score_split": _one_of(*SPLITS), "samples": _int(1, MAX_SAMPLES),
    "seed": _int(0, MAX_SEED), "final_epochs": _int(0), "final_rounds": _int(1),
    "final_init": _one_of("random", "hypernet"), "sampler": TEXT, "sampler_options": TABLE, "warm_start": _int(0),
    "max_params": _optional(_int(1)), "max_flops": _optional(_int(1)), "max_latency": _optional(_number(above=0)),
    "run_dir": PATH, "hypernet": PATH, "hypernet_sha256": TEXT, "run_token": TOKEN, "search_timing": TABLE,
    "finalists": _int(0), "finalists_kendall_tau": _optional(_number(-1, 1)), "infeasible_trials": _int(0),
    "final_model": TABLE, "final_seeds": _int(1), "final_race": _int(0), "final_pick": _one_of(*PICKS),
    "final_picked": _int(0), "final_picked_by": _one_of(*PICKS), "final_tied": _int(1), "rungs": TABLE,
}
TRIAL: dict[str, Kind] = {
    "arch": TEXT, "hash": TEXT, "duplicate": FLAG, "duplicate_of": _int(0), "error": (lambda v: isinstance(v, str),
                                                                                       "a string"),
    "params": _int(0), "flops": _int(0), **dict.fromkeys(("score", "score_std", "accuracy", "accuracy_std", "loss",
                                                          "loss_std", "predicted_accuracy", "predicted_std"), REAL),
    "feasible": FLAG, "constraints": _list(REAL, "a list of numbers"), "infeasible": TEXT, "latency_ms": _number(0), "latency_measured": TEXT,
    "trained_accuracy": _number(0, 1), "trained_seconds": _number(0), "trained_epochs": _int(0),
    "trained_weights": TEXT, "trained_init": _one_of("random", "hypernet"), "final_round": _int(1),
    "final_reason": TEXT, "trained_runs": _list(_number(0, 1), "a list of accuracies from 0 to 1"),
    "trained_low": _number(0, 1), "trained_high": _number(0, 1), "trained_interval": _one_of("seeds", "test sample"),
    "trained_tied": FLAG, "trained_test_samples": _int(1), "degenerate": FLAG, "rung_results": RUNG_RESULTS,
    "rung_stopped": TEXT, "rung_init": _one_of("random", "hypernet"),
}
# What an export's meta.json holds, of the kinds the study held them in (`hypernas.export`).
META: dict[str, Kind] = {
    **{k: STUDY[k] for k in ("ndim", "input_size", "in_channels", "num_classes", "classes")},
    **{k: _optional(STUDY[k]) for k in ("input_mean", "input_std")},  # null in an export of an older study
    "weights": _one_of("trained", "predicted"), "batch_stats": FLAG, "trial": _int(0), "score": REAL,
    "trained_accuracy": _optional(TRIAL["trained_accuracy"]), "best": _optional(TEXT),
}
NOT_OURS = "; it was not written by hypernas (or the storage is damaged), so the study is not used"


def check_kinds(attrs: Mapping[str, Any], kinds: dict[str, Kind], where: str, why: str = NOT_OURS,
                required: tuple[str, ...] = (), error: type[HypernasError] = StorageError) -> None:
    """Refuse, naming the key, an attribute not of its kind (or `required` and missing), or
    lists that disagree with the sizes they describe (the input's shape with its dimensions and
    channels, the classes with their number). Keys `kinds` does not know are left alone.

    Usage: check_kinds(meta, META, "meta.json is malformed", "", ("ndim",), CheckpointError)"""
    missing = [key for key in required if key not in attrs]
    if missing:
        raise error(f"{where}: attribute {missing[0]!r} is missing{why}")
    for key, value in attrs.items():
        if key in kinds and not kinds[key][0](value):
            raise error(f"{where}: attribute {key!r} must be {kinds[key][1]}, got {shown(value)}{why}")
    sizes = {"input_size": attrs.get("ndim"), "input_mean": attrs.get("in_channels"),
             "input_std": attrs.get("in_channels"), "classes": attrs.get("num_classes")}
    for key, size in sizes.items():
        if isinstance(attrs.get(key), list) and size is not None and len(attrs[key]) != size:
            raise error(f"{where}: attribute {key!r} must have {size} entries, got {shown(attrs[key])}{why}")


def checked_attrs(study: optuna.Study) -> dict[str, Any]:
    """The study's attributes, each checked against its kind (`check_kinds`)."""
    attrs = dict(study.user_attrs)
    check_kinds(attrs, STUDY, f"study {study.study_name!r}")
    return attrs


def check_trial(study_name: str, trial: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
    """`trial`, once each of its attributes is of its kind."""
    check_kinds(trial.user_attrs, TRIAL, f"study {study_name!r}, trial {trial.number}")
    return trial


def completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's completed trials, each checked (`check_trial`)."""
    trials = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
    return [check_trial(study.study_name, t) for t in trials]


def weights_name(run_token: str, number: int) -> str:
    """Where the final training writes a trial's weights, relative to the run directory (its
    drawing beside them, as .png): named by the study's token, so that two studies of one
    name (on two storages, say) never share a file.

    Usage: weights_name("3f2a9c1e", 7)  # 'final/3f2a9c1e-trial_7.pt'"""
    return os.path.join("final", f"{run_token}-trial_{number}.pt")
