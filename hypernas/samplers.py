"""Samplers of our own, through Optuna's sampler protocol: regularized evolution and local search.

## Regularized ("aging") evolution (Real et al., AAAI 2019)

The population is the last `population_size` COMPLETE trials by trial number, so members
leave by age, not by fitness. Each new trial picks `sample_size` members at random, takes
the best one as its parent, copies the parent's parameters and mutates exactly one of
them: a categorical parameter moves to a different choice; an int or float parameter is
resampled uniformly over its range (log-uniformly on a log scale, on its step grid). Until
the study holds `population_size` complete trials, parameters are drawn at random by
Optuna's `RandomSampler`.

It works through Optuna's sampler protocol, so it serves any search space:
- `infer_relative_search_space`: the parameters every population member shares with the
  same distribution (empty during the warm-up);
- `sample_relative`: chooses the parent and the one parameter to mutate (any of the
  parent's parameters that can take another value), returns the child's values for the
  shared space;
- `sample_independent`: parameters outside it (conditional ones) are inherited from the
  parent, or mutated if chosen, when the parent has them with the same distribution, and
  drawn at random otherwise. So a child that takes the parent's branch differs from it in
  exactly one parameter; one whose mutation switches branch draws the new branch at random.
RUNNING trials are never population members, so several trials may be asked before any is
told (a batched ask): each one is a child of the population as it stands. Pruned and failed
trials are ignored. Single-objective studies only; a multi-objective study is an error.

## Best-first local search (White, Nolen, Savani, UAI 2021: local search is state of the art on NAS benchmarks)
After `n_startup_trials` complete trials proposed by a `startup` sampler (random, or TPE, GP...),
every trial is a neighbor of an architecture already seen: one categorical parameter changed.
The center is the best complete trial that still has a neighbor nobody proposed; the neighbor
is drawn at random among those. So a better neighbor becomes the next center at once (first
improvement), and a local optimum whose neighbors are all seen hands over to the next-best trial,
which searches the plateau around it. Other parameters are inherited from the center. When no
trial has an unseen neighbor, the startup sampler takes over again. Single objective only.
With `at_local_optimum="startup"`, only the best trial is ever a center: once its neighbors
are all seen, the startup sampler (a model) proposes until one of its cells beats it, and the
climb goes on from there. With TPE or GP as that model it lost to the plain form (round 8);
with the graph GP (`hypernas.wlgp`, `pool="all"`) it is the oracle benchmark's choice (round 14).
Three variants lost to the plain form on the development objectives and were taken out
(BENCHMARKS.md, rounds 6, 7 and 10): restarting from a new cell at a local optimum, ranking the
moves by an additive model of the values seen, and taking the move a data-free proxy (synflow,
the parameter count) scores best.

Usage:
    from hypernas.samplers import LocalSearchSampler, RegularizedEvolutionSampler
    study = optuna.create_study(direction="maximize",
                                sampler=RegularizedEvolutionSampler(population_size=10, sample_size=3, seed=0))
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
from optuna.search_space import intersection_search_space
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hypernas.errors import HypernasError

_RESAMPLE_TRIES = 100  # an int/float resample that keeps hitting the parent's value gives up after this many


class RegularizedEvolutionSampler(optuna.samplers.BaseSampler):
    """Aging evolution: tournament selection of size `sample_size` from the last
    `population_size` complete trials, one mutation per child. `seed` fixes the sequence."""

    def __init__(self, population_size: int = 10, sample_size: int = 3, seed: int | None = None):
        if not isinstance(population_size, int) or population_size < 1:
            raise HypernasError(f"population_size must be an integer >= 1, got {population_size!r}")
        if not isinstance(sample_size, int) or not 1 <= sample_size <= population_size:
            raise HypernasError(f"sample_size must be an integer in [1, population_size={population_size}], "
                                f"got {sample_size!r}")
        self.population_size = population_size
        self.sample_size = sample_size
        self._random = optuna.samplers.RandomSampler(seed=seed)
        # a stream of its own for selection and categorical mutation, distinct from the random sampler's
        self._rng = np.random.default_rng(None if seed is None else [seed, 1])
        self._children: dict[tuple[str, int], tuple[FrozenTrial, str | None]] = {}  # trial -> (parent, mutated)

    def reseed_rng(self) -> None:
        self._random.reseed_rng()
        self._rng = np.random.default_rng()

    # -- Optuna's sampler protocol ---------------------------------------------------------

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        _check_single_objective(study, type(self).__name__)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        _check_single_objective(study, type(self).__name__)
        population = self._population(study)
        if population is None:
            return {}
        return intersection_search_space(population)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        population = self._population(study)
        if population is None:
            return {}
        parent = self._select(study, population)
        # any of the parent's parameters may be the one mutated: a shared one here, a conditional
        # one in `sample_independent` when the child suggests it
        mutable = [n for n in sorted(parent.params) if not parent.distributions[n].single()]
        target = mutable[self._rng.integers(len(mutable))] if mutable else None
        self._children[_key(study, trial)] = (parent, target)
        child = {}
        for name, dist in search_space.items():
            if parent.distributions.get(name) != dist:  # the population changed since the space was inferred
                child[name] = self._random.sample_independent(study, trial, name, dist)
            elif name == target:
                child[name] = self._mutate(study, trial, name, dist, parent.params[name])
            else:
                child[name] = parent.params[name]
        return child

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        parent, target = self._children.get(_key(study, trial), (None, None))
        if parent is None or parent.distributions.get(param_name) != param_distribution:
            return self._random.sample_independent(study, trial, param_name, param_distribution)
        value = parent.params[param_name]
        if param_name == target:
            return self._mutate(study, trial, param_name, param_distribution, value)
        return value

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: list[float] | None) -> None:
        self._children.pop(_key(study, trial), None)

    # -- evolution -------------------------------------------------------------------------

    def _population(self, study: optuna.Study) -> list[FrozenTrial] | None:
        """The last `population_size` complete trials by number, or None during the warm-up."""
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) < self.population_size:
            return None
        return sorted(complete, key=lambda t: t.number)[-self.population_size:]

    def _select(self, study: optuna.Study, population: list[FrozenTrial]) -> FrozenTrial:
        """The best of `sample_size` members drawn at random without replacement."""
        picks = self._rng.choice(len(population), size=self.sample_size, replace=False)
        contenders = [population[i] for i in sorted(picks)]
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        return max(contenders, key=lambda t: sign * t.value)

    def _mutate(self, study: optuna.Study, trial: FrozenTrial, name: str, dist: BaseDistribution, value: Any) -> Any:
        """A value of `dist` other than `value`: another choice, or a uniform resample."""
        if isinstance(dist, CategoricalDistribution):
            current = dist.to_internal_repr(value)
            others = [i for i in range(len(dist.choices)) if i != current]
            return dist.to_external_repr(others[self._rng.integers(len(others))])
        current = dist.to_internal_repr(value)
        for _ in range(_RESAMPLE_TRIES):
            new = self._random.sample_independent(study, trial, name, dist)
            if dist.to_internal_repr(new) != current:
                break
        return new


class LocalSearchSampler(optuna.samplers.BaseSampler):
    """Best-first, first-improvement local search over one-parameter moves, after
    `n_startup_trials` from `startup` (a seeded `RandomSampler` by default). `seed` fixes the moves."""

    def __init__(self, n_startup_trials: int = 10, startup: optuna.samplers.BaseSampler | None = None,
                 seed: int | None = None, at_local_optimum: str = "next_best"):
        if not isinstance(n_startup_trials, int) or n_startup_trials < 1:
            raise HypernasError(f"n_startup_trials must be an integer >= 1, got {n_startup_trials!r}")
        if at_local_optimum not in AT_LOCAL_OPTIMUM:
            raise HypernasError(f"at_local_optimum is one of {', '.join(AT_LOCAL_OPTIMUM)}, got {at_local_optimum!r}")
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
        _check_single_objective(study, type(self).__name__)
        trials = study.get_trials(deepcopy=False)  # read once per ask: the study may be large
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        enqueued = "fixed_params" in trial.system_attrs  # Optuna's own key: its parameters are given
        if len(complete) >= self.n_startup_trials and not enqueued:
            move = self._next_move(study, trials)
            if move is not None:  # None: every center's neighbors are seen; the startup sampler explores
                self._moves[_key(study, trial)] = move
                study._storage.set_trial_system_attr(trial._trial_id, _MOVE, _move_key(*move))
        self._startup.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if _key(study, trial) in self._moves:
            return {}  # a move is made parameter by parameter, so conditional ones move too
        return self._startup.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if _key(study, trial) in self._moves:
            return {}
        return self._startup.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        move = self._moves.get(_key(study, trial))
        if move is not None and move[0].distributions.get(param_name) == param_distribution:
            center, name, value = move
            return value if param_name == name else center.params[param_name]
        # not searching yet, or a parameter the center lacks (the move switched a branch)
        return self._startup.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: list[float] | None) -> None:
        self._moves.pop(_key(study, trial), None)
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


# What local search does once the best trial's neighbors are all seen: search around the
# next-best trial (White et al.), or let the startup sampler propose until it beats the best.
AT_LOCAL_OPTIMUM = ("next_best", "startup")
_MOVE = "hypernas:local_search_move"  # trial system attribute: the move that proposed it


def _move_key(center: FrozenTrial, name: str, value: Any) -> str:
    """A move as text (system attributes are JSON): the center's parameters, the one changed, its new value."""
    return json.dumps([sorted(center.params.items()), name, value])


def _key(study: optuna.Study, trial: FrozenTrial) -> tuple[str, int]:
    return study.study_name, trial.number


def _check_single_objective(study: optuna.Study, sampler: str) -> None:
    if len(study.directions) > 1:
        raise HypernasError(
            f"{sampler} serves single-objective studies only; study {study.study_name!r} has "
            f"{len(study.directions)} objectives ({', '.join(d.name.lower() for d in study.directions)}). "
            "Use NSGAIISampler or TPESampler for several objectives.")
