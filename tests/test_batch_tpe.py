"""TPE fitted once per batch of asks, on a bounded history (`hypernas.optuna_private.BatchTPESampler`).

Its exactness against Optuna's TPE with batches of one is in `test_optuna_private.py`.
"""

from __future__ import annotations

import itertools

import numpy as np
import optuna
import pytest

from hypernas.errors import OptionError
from hypernas.optuna_private import BatchTPESampler
from hypernas.samplers import make_sampler
from hypernas.spaces import get_space

CHOICES = ["a", "b", "c", "d", "e"]


def _params(trial) -> tuple:
    return tuple(trial.suggest_categorical(f"p{i}", CHOICES) for i in range(4))


def _value(params: tuple) -> float:
    return sum(CHOICES.index(p) for p in params) + 0.1 * CHOICES.index(params[0])


def _run(sampler, batches: int, batch: int) -> tuple[optuna.Study, list[list[tuple]]]:
    """A study asked as the search asks it: `batch` trials, then all of them told."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    asked = []
    for _ in range(batches):
        trials = [study.ask() for _ in range(batch)]
        proposals = [_params(t) for t in trials]
        for t, p in zip(trials, proposals):
            study.tell(t, _value(p))
        asked.append(proposals)
    return study, asked


class _Counting(BatchTPESampler):
    fits = 0

    def _proposals(self, *args, **kwargs):
        type(self).fits += 1
        return super()._proposals(*args, **kwargs)


def test_one_fit_serves_a_batch_of_distinct_proposals_and_a_told_trial_ends_it():
    _Counting.fits = 0
    study, asked = _run(_Counting(seed=0, batch=16, n_startup_trials=10), batches=5, batch=16)
    assert _Counting.fits == 4  # the first batch is TPE's random start-up; each later batch is one fit
    for proposals in asked[1:]:
        assert len(set(proposals)) == len(proposals)  # the liar, in batch form: no ask repeats another
    assert max(t.value for t in study.trials[16:]) >= max(t.value for t in study.trials[:16])


def test_without_the_liar_each_ask_takes_its_own_best():
    _, with_liar = _run(BatchTPESampler(seed=0, batch=32, n_startup_trials=10), 3, 32)
    _, without = _run(BatchTPESampler(seed=0, batch=32, n_startup_trials=10, constant_liar=False), 3, 32)
    assert len(set(without[2])) < len(set(with_liar[2])) == 32  # converged TPE repeats its best without it


def test_the_same_seed_gives_the_same_proposals_and_another_seed_others():
    runs = [_run(BatchTPESampler(seed=s, batch=8, n_startup_trials=5), 4, 8)[1] for s in (3, 3, 4)]
    assert runs[0] == runs[1] != runs[2]


def test_the_above_density_keeps_at_most_history_trials_and_the_priors_share():
    study, _ = _run(BatchTPESampler(seed=0, batch=50, n_startup_trials=10), 4, 50)
    space = {f"p{i}": optuna.distributions.CategoricalDistribution(CHOICES) for i in range(4)}
    best = sorted(study.trials, key=lambda t: t.value)[-5:]
    above = [t for t in study.trials if t not in best]  # by number, as TPE's split leaves them
    whole = BatchTPESampler(seed=0, history=0)._thinned_above(study, space, above)
    thinned = BatchTPESampler(seed=0, history=100)._thinned_above(study, space, above)
    w_whole, w_thinned = whole._mixture_distribution.weights, thinned._mixture_distribution.weights
    assert len(w_whole) == len(above) + 1 and len(w_thinned) == 100 + 1  # the prior is the last component
    assert w_thinned[-1] == pytest.approx(w_whole[-1])
    every = np.array(list(itertools.product(range(5), repeat=4)), dtype=float)  # each network of the space
    grid = {f"p{i}": every[:, i] for i in range(4)}
    # the same density, coarser (0.78 to 0.82 over three studies; 1.0 would be no thinning)
    assert np.corrcoef(whole.log_pdf(grid), thinned.log_pdf(grid))[0, 1] > 0.7


def test_the_search_hands_its_batch_to_tpe_and_bad_options_are_one_line():
    space = get_space("nb201")
    assert make_sampler("tpe", 0, space, {}, batch=64)._batch == 64
    assert make_sampler("tpe", 0, space, {"history": 0})._history == 0
    for options, words in (({"history": 1}, "history must be 0"), ({"history": "x"}, "history must be an integer"),
                           ({"batch": 4}, "takes no option 'batch'")):
        with pytest.raises(OptionError, match=words) as err:
            make_sampler("tpe", 0, space, options)
        assert "\n" not in str(err.value)
