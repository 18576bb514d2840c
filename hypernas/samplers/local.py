"""Best-first local search (White, Nolen, Savani, UAI 2021: local search is state of the art on
NAS benchmarks), through Optuna's sampler protocol.

After `n_startup_trials` complete trials proposed by a `startup` sampler (random, or TPE, GP...),
every trial is a neighbor of an architecture already seen: one categorical parameter changed.
The center is the best complete trial that still has a neighbor nobody proposed; the neighbor
is drawn at random among those. So a better neighbor becomes the next center at once (first
improvement), and a local optimum whose neighbors are all seen hands over to the next-best trial,
which searches the plateau around it. Other parameters are inherited from the center. When no
trial has an unseen neighbor, the startup sampler takes over again. Single objective only.
With `at_local_optimum="startup"`, only the best trial is ever a center: once its neighbors
are all seen, the startup sampler (a model) proposes until one of its cells beats it, and the
climb goes on from there. With the graph GP (`hypernas.samplers.wlgp`, `pool="all"`) as that
model it is the oracle benchmark's tuned choice; docs/history.md says how that was chosen and
which variants lost.

Usage:
    study = optuna.create_study(direction="maximize", sampler=LocalSearchSampler(n_startup_trials=20,
                                startup=optuna.samplers.TPESampler(seed=0), seed=0))
"""

from __future__ import annotations

import bisect
import json
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hypernas import optuna_private
from hypernas.errors import OptionError
from hypernas.samplers.common import check_single_objective, trial_key

# What local search does once the best trial's neighbors are all seen: search around the
# next-best trial (White et al.), or let the startup sampler propose until it beats the best.
AT_LOCAL_OPTIMUM = ("next_best", "startup")
_MOVE = "hypernas:local_search_move"  # trial system attribute: the move that proposed it


class LocalSearchSampler(optuna.samplers.BaseSampler):
    """Best-first, first-improvement local search over one-parameter moves, after
    `n_startup_trials` from `startup` (a seeded `RandomSampler` by default). `seed` fixes the moves."""

    def __init__(self, n_startup_trials: int = 10, startup: optuna.samplers.BaseSampler | None = None,
                 seed: int | None = None, at_local_optimum: str = "next_best"):
        if not isinstance(n_startup_trials, int) or n_startup_trials < 1:
            raise OptionError(f"n_startup_trials must be an integer >= 1, got {n_startup_trials!r}")
        if at_local_optimum not in AT_LOCAL_OPTIMUM:
            raise OptionError(f"at_local_optimum is one of {', '.join(AT_LOCAL_OPTIMUM)}, got {at_local_optimum!r}")
        self.n_startup_trials = n_startup_trials
        self.at_local_optimum = at_local_optimum
        self._startup = startup if startup is not None else optuna.samplers.RandomSampler(seed=seed)
        self._rng = np.random.default_rng(None if seed is None else [seed, 2])
        # trial -> (center, parameter, new value); absent while the startup sampler proposes
        self._moves: dict[tuple[str, int], tuple[FrozenTrial, str, Any]] = {}
        self._memory: dict[str, _StudyMemory] = {}  # study name -> what its finished trials showed

    def reseed_rng(self) -> None:
        self._startup.reseed_rng()
        self._rng = np.random.default_rng()

    # -- Optuna's sampler protocol: the move is chosen once per trial, before any sampling ----

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        check_single_objective(study, type(self).__name__)
        trials = study.get_trials(deepcopy=False)  # read once per ask: the study may be large
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        enqueued = "fixed_params" in trial.system_attrs  # Optuna's own key: its parameters are given
        if len(complete) >= self.n_startup_trials and not enqueued:
            move = self._next_move(study, trials)
            if move is not None:  # None: every center's neighbors are seen; the startup sampler explores
                self._moves[trial_key(study, trial)] = move
                optuna_private.set_trial_system_attr(study, trial, _MOVE, _move_key(*move))
        self._startup.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if trial_key(study, trial) in self._moves:
            return {}  # a move is made parameter by parameter, so conditional ones move too
        return self._startup.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if trial_key(study, trial) in self._moves:
            return {}
        return self._startup.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        move = self._moves.get(trial_key(study, trial))
        if move is not None and move[0].distributions.get(param_name) == param_distribution:
            center, name, value = move
            return value if param_name == name else center.params[param_name]
        # not searching yet, or a parameter the center lacks (the move switched a branch)
        return self._startup.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: list[float] | None) -> None:
        self._moves.pop(trial_key(study, trial), None)
        self._startup.after_trial(study, trial, state, values)

    def _next_move(self, study: optuna.Study, trials: list[FrozenTrial]) -> tuple[FrozenTrial, str, Any] | None:
        """(center, parameter, new value): an unseen neighbor of the best trial that has one."""
        # Every trial in any state counts as seen: running ones (a batched ask) and failed ones
        # alike. Seen parameter sets are grouped by their names, because a move that drops a
        # branch (fewer blocks, say) makes the center's values on fewer names: it is seen when
        # that projection is. A move that opens a branch draws the new parameters at random, so
        # it is made once, as every move is (`tried`). Finished trials go into the study's
        # memory once; unfinished ones (whose parameters may still grow) are read afresh.
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        memory = self._memory.setdefault(study.study_name, _StudyMemory(sign))
        pending = _StudyMemory(sign)
        for t in trials:
            if t.number not in memory.finished:
                (memory if t.state.is_finished() else pending).add(t)
        ranked = memory.ranked[:1] if self.at_local_optimum == "startup" else memory.ranked
        for _, number in ranked:
            if number in memory.exhausted:
                continue
            center = memory.finished[number]
            moves = [(n, v) for n, d in sorted(center.distributions.items())
                     if isinstance(d, CategoricalDistribution)
                     for v in d.choices if v != center.params[n] and memory.unseen(center, n, v)]
            if not moves:  # seen only grows, so this center stays exhausted
                memory.exhausted.add(center.number)
                continue
            moves = [(n, v) for n, v in moves if pending.unseen(center, n, v)]
            if moves:
                name, value = moves[self._rng.integers(len(moves))]
                return center, name, value
        return None


class _StudyMemory:
    """What local search has seen of a study: parameter sets grouped by their names, the moves
    made (`tried`), the finished trials read in, the complete ones best first (`sign` 1 to
    maximize, -1 to minimize), and the centers whose neighbors are all seen."""

    def __init__(self, sign: float):
        self.sign = sign
        self.seen: dict[frozenset, set[frozenset]] = {}
        self.tried: set[str | None] = set()
        self.finished: dict[int, FrozenTrial] = {}
        self.ranked: list[tuple[float, int]] = []  # (-sign * value, number), kept sorted
        self.exhausted: set[int] = set()

    def add(self, t: FrozenTrial) -> None:
        if t.params:  # not the trial being asked, which has none yet
            self.seen.setdefault(frozenset(t.params), set()).add(frozenset(t.params.items()))
        self.tried.add(t.system_attrs.get(_MOVE))
        if t.state.is_finished():
            self.finished[t.number] = t
        if t.state == TrialState.COMPLETE:
            bisect.insort(self.ranked, (-self.sign * t.value, t.number))

    def unseen(self, center: FrozenTrial, name: str, value: Any) -> bool:
        child = {**center.params, name: value}
        return _move_key(center, name, value) not in self.tried and not any(
            names <= child.keys() and frozenset((n, child[n]) for n in names) in sets
            for names, sets in self.seen.items())


def _move_key(center: FrozenTrial, name: str, value: Any) -> str:
    """A move as text (system attributes are JSON): the center's parameters, the one changed, its new value."""
    return json.dumps([sorted(center.params.items()), name, value])
