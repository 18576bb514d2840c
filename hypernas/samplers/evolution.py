"""Regularized ("aging") evolution (Real et al., AAAI 2019), through Optuna's sampler protocol.

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

Usage:
    study = optuna.create_study(direction="maximize",
                                sampler=RegularizedEvolutionSampler(population_size=10, sample_size=3, seed=0))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.search_space import intersection_search_space
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hypernas.errors import OptionError
from hypernas.samplers.common import check_single_objective, trial_key

_RESAMPLE_TRIES = 100  # an int/float resample that keeps hitting the parent's value gives up after this many


class RegularizedEvolutionSampler(optuna.samplers.BaseSampler):
    """Aging evolution: tournament selection of size `sample_size` from the last
    `population_size` complete trials, one mutation per child. `seed` fixes the sequence."""

    def __init__(self, population_size: int = 10, sample_size: int = 3, seed: int | None = None):
        if not isinstance(population_size, int) or population_size < 1:
            raise OptionError(f"population_size must be an integer >= 1, got {population_size!r}")
        if not isinstance(sample_size, int) or not 1 <= sample_size <= population_size:
            raise OptionError(f"sample_size must be an integer in [1, population_size={population_size}], "
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
        check_single_objective(study, type(self).__name__)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        check_single_objective(study, type(self).__name__)
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
        self._children[trial_key(study, trial)] = (parent, target)
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
        parent, target = self._children.get(trial_key(study, trial), (None, None))
        if parent is None or parent.distributions.get(param_name) != param_distribution:
            return self._random.sample_independent(study, trial, param_name, param_distribution)
        value = parent.params[param_name]
        if param_name == target:
            return self._mutate(study, trial, param_name, param_distribution, value)
        return value

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: list[float] | None) -> None:
        self._children.pop(trial_key(study, trial), None)

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
