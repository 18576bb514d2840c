"""RegularizedEvolutionSampler: aging evolution as an Optuna sampler."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from hypernas.errors import HypernasError
from hypernas.samplers import RegularizedEvolutionSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

OPS = ("none", "skip", "conv1", "conv3", "pool")
NAMES = [f"e{i}" for i in range(6)]


def toy(trial) -> int:
    """6 categorical parameters; the score counts those set to 'conv3' (best 6)."""
    return sum(trial.suggest_categorical(n, OPS) == "conv3" for n in NAMES)


def mixed(trial) -> float:
    a = trial.suggest_categorical("a", OPS)
    k = trial.suggest_int("k", 1, 9)
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    s = trial.suggest_float("s", 0.0, 1.0, step=0.25)
    return (a == "conv3") + k / 9 - abs(np.log10(lr) + 2) + s


def n_diff(p: dict, q: dict) -> int:
    assert p.keys() == q.keys()
    return sum(p[k] != q[k] for k in p)


def run(sampler, objective=toy, n=60, direction="maximize") -> optuna.Study:
    study = optuna.create_study(direction=direction, sampler=sampler)
    study.optimize(objective, n_trials=n)
    return study


@pytest.mark.parametrize("objective", [toy, mixed])
def test_same_seed_same_sequence(objective):
    a, b = (run(RegularizedEvolutionSampler(seed=3), objective, n=40) for _ in range(2))
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    c = run(RegularizedEvolutionSampler(seed=4), objective, n=40)
    assert [t.params for t in a.trials] != [t.params for t in c.trials]


@pytest.mark.parametrize("objective", [toy, mixed])
def test_each_child_is_one_mutation_from_a_population_member(objective):
    P = 10
    study = run(RegularizedEvolutionSampler(population_size=P, sample_size=3, seed=0), objective, n=80)
    trials = study.trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for child in trials[P:]:
        population = trials[child.number - P:child.number]  # the last P complete trials before it
        assert any(n_diff(child.params, m.params) == 1 for m in population), child.number


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_parent_is_the_best_when_the_tournament_is_the_whole_population(direction):
    P = 5
    study = optuna.create_study(direction=direction,
                                sampler=RegularizedEvolutionSampler(population_size=P, sample_size=P, seed=1))
    for i in range(P):  # a known population: member i holds i+1 'conv3's, so member 4 is best when maximizing
        study.enqueue_trial({n: "conv3" if j <= i else "none" for j, n in enumerate(NAMES)})
    study.optimize(toy, n_trials=P)
    best = max(study.trials, key=lambda t: t.value) if direction == "maximize" else min(study.trials, key=lambda t: t.value)
    children = [study.ask() for _ in range(6)]  # a batch: nothing told, so all share the same population
    for t in children:
        for n in NAMES:
            t.suggest_categorical(n, OPS)
        assert n_diff(t.params, best.params) == 1


def test_members_leave_by_age_not_fitness():
    P = 3  # tournament = whole population; trial 0 is the best ever but is the oldest, so it has left
    study = optuna.create_study(direction="maximize",
                                sampler=RegularizedEvolutionSampler(population_size=P, sample_size=P, seed=0))
    study.enqueue_trial({n: "conv3" for n in NAMES})  # score 6
    for k in (1, 2, 3):  # scores 1, 2, 3
        study.enqueue_trial({n: "conv3" if j < k else "none" for j, n in enumerate(NAMES)})
    study.optimize(toy, n_trials=4)
    oldest_best, newest = study.trials[0], study.trials[3]
    for _ in range(5):
        t = study.ask()
        toy(t)
        assert n_diff(t.params, newest.params) == 1 and n_diff(t.params, oldest_best.params) >= 2


def test_beats_random_search_on_average():
    n, seeds = 60, range(8)
    evo = [run(RegularizedEvolutionSampler(seed=s), n=n) for s in seeds]
    rnd = [run(optuna.samplers.RandomSampler(seed=s), n=n) for s in seeds]
    assert np.mean([s.best_value for s in evo]) > np.mean([s.best_value for s in rnd]) + 0.5
    # and the recent trials are better, not just the lucky best
    def last(studies):
        return np.mean([t.value for s in studies for t in s.trials[-20:]])

    assert last(evo) > last(rnd) + 1.0


def test_minimize_direction_is_respected():
    def worse(trial):
        return 6 - toy(trial)

    evo = [run(RegularizedEvolutionSampler(seed=s), worse, n=60, direction="minimize") for s in range(6)]
    rnd = [run(optuna.samplers.RandomSampler(seed=s), worse, n=60, direction="minimize") for s in range(6)]
    assert np.mean([s.best_value for s in evo]) < np.mean([s.best_value for s in rnd])


def test_multi_objective_is_a_clear_error():
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=RegularizedEvolutionSampler(seed=0))
    with pytest.raises(HypernasError, match="single-objective studies only.*2 objectives.*NSGAIISampler"):
        study.optimize(lambda t: (toy(t), 0.0), n_trials=1)


def test_batched_ask_ignores_running_trials():
    P = 10
    study = optuna.create_study(direction="maximize",
                                sampler=RegularizedEvolutionSampler(population_size=P, sample_size=3, seed=0))

    def ask_batch(k):
        batch = [study.ask() for _ in range(k)]
        for t in batch:
            toy(t)  # suggest the parameters
        return batch

    # warm-up in batches, with trials left RUNNING: they never count towards the population
    stuck = ask_batch(4)
    first = ask_batch(P)
    assert len({tuple(t.params.values()) for t in first}) > 1  # random draws
    for t in first:
        study.tell(t, toy(t))
    population = [study.trials[t.number] for t in first]
    children = ask_batch(12)  # nothing told: all 12 are children of the same 10 complete trials
    for c in children:
        assert any(n_diff(c.params, m.params) == 1 for m in population)
    for t in children[:5]:
        study.tell(t, toy(t))
    # the population is now the last 10 complete trials by number: first[5:] + children[:5]
    later = ask_batch(6)
    population = sorted([study.trials[t.number] for t in first[5:] + children[:5]], key=lambda t: t.number)
    for c in later:
        assert any(n_diff(c.params, m.params) == 1 for m in population)
    assert all(study.trials[t.number].state == optuna.trial.TrialState.RUNNING for t in stuck)


def _branchy(trial) -> float:
    if trial.suggest_categorical("kind", ["conv", "pool"]) == "conv":
        trial.suggest_categorical("act", ["relu", "gelu", "silu"])
        return trial.suggest_float("w", 0.0, 1.0)
    return trial.suggest_float("p", 0.0, 1.0) / 2


def test_conditional_parameters_are_inherited_and_mutated():
    P = 4  # tournament = whole population, so the parent is the best member, conv/gelu/0.9
    study = optuna.create_study(direction="maximize",
                                sampler=RegularizedEvolutionSampler(population_size=P, sample_size=P, seed=0))
    for params in ({"kind": "conv", "act": "relu", "w": 0.3}, {"kind": "conv", "act": "gelu", "w": 0.9},
                   {"kind": "pool", "p": 0.2}, {"kind": "pool", "p": 0.4}):
        study.enqueue_trial(params)
    study.optimize(_branchy, n_trials=P)
    parent = study.best_trial
    assert parent.params == {"kind": "conv", "act": "gelu", "w": 0.9}
    children = [study.ask() for _ in range(30)]
    changed = []
    for t in children:
        _branchy(t)  # "act" and "w" are outside the shared space {kind}: sampled independently
        if t.params["kind"] == "conv":  # same branch: exactly one of act, w differs from the parent
            assert n_diff(t.params, parent.params) == 1
            changed += [k for k in ("act", "w") if t.params[k] != parent.params[k]]
        else:  # the mutation switched the branch; the new branch is drawn at random
            assert t.params.keys() == {"kind", "p"}
    assert set(changed) == {"act", "w"}


def test_random_run_on_a_conditional_space():
    study = run(RegularizedEvolutionSampler(population_size=6, sample_size=2, seed=0), _branchy, n=50)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert study.best_value > 0.9


@pytest.mark.parametrize("kwargs", [{"population_size": 0}, {"sample_size": 0}, {"population_size": 3, "sample_size": 4}])
def test_bad_sizes(kwargs):
    with pytest.raises(HypernasError, match="population_size|sample_size"):
        RegularizedEvolutionSampler(**kwargs)
