"""Our Optuna samplers: RegularizedEvolutionSampler (aging evolution) and LocalSearchSampler."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from hypernas.errors import HypernasError, OptionError
from hypernas.samplers import LocalSearchSampler, RegularizedEvolutionSampler, make_sampler
from hypernas.spaces import get_space

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
    with pytest.raises(HypernasError, match="^RegularizedEvolutionSampler serves single-objective studies only.*2 objectives.*NSGAIISampler"):
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


# ---- LocalSearchSampler ----------------------------------------------------------------------


def local(seed=0, n_startup_trials=10, startup=None) -> LocalSearchSampler:
    return LocalSearchSampler(n_startup_trials=n_startup_trials, startup=startup, seed=seed)


@pytest.mark.parametrize("objective", [toy, mixed])
def test_local_search_same_seed_same_sequence(objective):
    a, b = (run(local(seed=3), objective, n=40) for _ in range(2))
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.params for t in a.trials] != [t.params for t in run(local(seed=4), objective, n=40).trials]


def test_local_search_moves_one_parameter_from_a_seen_trial_and_never_repeats():
    study = run(local(n_startup_trials=5), n=80)
    seen = [tuple(t.params.values()) for t in study.trials]
    assert len(set(seen)) == len(seen)
    for t in study.trials[5:]:
        assert any(n_diff(t.params, s.params) == 1 for s in study.trials[:t.number]), t.number


def test_local_search_batched_ask_proposes_distinct_neighbors():
    """A batch asked before any is told (`hypernas search --batch 64`): running trials count as
    seen, so the batch covers the best trial's 24 neighbors, then the next best's."""
    study = run(local(n_startup_trials=4), n=4)
    complete = list(study.trials)
    batch = []
    for _ in range(30):
        t = study.ask()
        toy(t)
        batch.append(t)
    assert len({tuple(t.params.values()) for t in study.trials}) == 34
    best = max(complete, key=lambda t: t.value)
    assert all(n_diff(t.params, best.params) == 1 for t in batch[:24])
    assert all(any(n_diff(t.params, c.params) == 1 for c in complete) for t in batch)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_local_search_moves_from_the_best_trial(direction):
    study = optuna.create_study(direction=direction, sampler=local(n_startup_trials=3))
    for k in (1, 4, 2):
        study.enqueue_trial({n: "conv3" if j < k else "none" for j, n in enumerate(NAMES)})
    study.optimize(toy, n_trials=3)
    best = study.trials[1] if direction == "maximize" else study.trials[0]
    for _ in range(5):  # none of these is better when maximizing (all told 0), so the center stays
        t = study.ask()
        toy(t)
        assert n_diff(t.params, best.params) == 1
        study.tell(t, 0 if direction == "maximize" else 9)


def test_local_search_moves_to_a_better_neighbor_at_once():
    study = optuna.create_study(direction="maximize", sampler=local(n_startup_trials=1))
    study.enqueue_trial({n: "none" for n in NAMES})
    study.optimize(toy, n_trials=1)
    t = study.ask()
    toy(t)
    study.tell(t, 100)  # far better than anything: it is the next center
    nxt = study.ask()
    toy(nxt)
    assert n_diff(nxt.params, t.params) == 1


def test_local_search_hands_over_to_the_next_best_when_a_center_is_exhausted():
    def two(trial):
        return 3 * trial.suggest_categorical("a", [0, 1, 2]) + trial.suggest_categorical("b", [0, 1, 2])

    study = optuna.create_study(direction="maximize", sampler=local(n_startup_trials=1))
    for a, b in ((2, 2), (0, 2), (1, 2), (2, 0), (2, 1)):  # the best and all four of its neighbors
        study.enqueue_trial({"a": a, "b": b})
    study.optimize(two, n_trials=5)
    t = study.ask()
    two(t)
    # the next best, (2, 1), has unseen neighbors (0, 1) and (1, 1): one of those
    assert (t.params["a"], t.params["b"]) in {(0, 1), (1, 1)}


def test_local_search_memory_matches_a_fresh_reading_of_the_study():
    """Local search keeps what finished trials showed between asks (a long study would
    otherwise be re-read whole on every ask). After batched asks, its memory must equal a
    fresh reading of the finished trials, and every center it calls exhausted must be."""
    from hypernas.samplers.local import _StudyMemory

    sampler = local(n_startup_trials=4)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(40):
        batch = [study.ask() for _ in range(5)]
        for t in batch:
            study.tell(t, toy(t))
    study.ask()  # reads the last batch in
    memory, fresh = sampler._memory[study.study_name], _StudyMemory(1.0)
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        fresh.add(t)
    assert memory.seen == fresh.seen and memory.tried == fresh.tried and memory.ranked == fresh.ranked
    assert memory.exhausted
    for number in memory.exhausted:
        center = memory.finished[number]
        assert not any(fresh.unseen(center, n, v) for n in NAMES for v in OPS if v != center.params[n])


@pytest.mark.parametrize("at_local_optimum", ["next_best", "startup"])
def test_local_search_at_a_local_optimum(at_local_optimum):
    """All 24 neighbors of the best cell (every edge 'none') are seen and worse. By default the
    search moves on around the next best; with "startup" the startup sampler proposes, and a
    proposal that beats the best becomes the center of the next move."""
    def fewer_edges(trial):
        return -sum(trial.suggest_categorical(n, OPS) != "none" for n in NAMES)

    sampler = LocalSearchSampler(n_startup_trials=1, seed=0, at_local_optimum=at_local_optimum)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    center = {n: "none" for n in NAMES}
    study.enqueue_trial(center)
    for n in NAMES:
        for op in OPS[1:]:
            study.enqueue_trial({**center, n: op})
    study.optimize(fewer_edges, n_trials=25)
    t = study.ask()
    fewer_edges(t)
    moved = "hypernas:local_search_move" in study.trials[-1].system_attrs
    if at_local_optimum == "next_best":
        assert moved
        assert any(n_diff(t.params, s.params) == 1 for s in study.trials[1:25]) and n_diff(t.params, center) == 2
        return
    assert not moved  # the startup sampler's own proposal
    study.tell(t, 10)
    nxt = study.ask()
    fewer_edges(nxt)
    assert "hypernas:local_search_move" in study.trials[-1].system_attrs and n_diff(nxt.params, t.params) == 1


def test_local_search_spends_no_move_on_an_enqueued_trial():
    """Enqueued trials (a warm start) bring their own parameters: they must not use up a move,
    so the best trial's four neighbors still come next."""
    study = optuna.create_study(direction="maximize", sampler=local(n_startup_trials=1))
    study.enqueue_trial({"a": 0, "b": 0})
    for a, b in ((1, 1), (2, 2), (1, 2)):  # none of them a neighbor of (0, 0)
        study.enqueue_trial({"a": a, "b": b})
    study.optimize(lambda t: 10.0 * (t.suggest_categorical("a", [0, 1, 2]) + t.suggest_categorical("b", [0, 1, 2]) == 0),
                   n_trials=8)
    assert {(t.params["a"], t.params["b"]) for t in study.trials[4:]} == {(1, 0), (2, 0), (0, 1), (0, 2)}
    assert all("hypernas:local_search_move" not in t.system_attrs for t in study.trials[1:4])


def test_local_search_on_a_space_it_exhausts_falls_back_to_the_startup_sampler():
    study = run(local(n_startup_trials=2), lambda t: t.suggest_categorical("a", [0, 1]) + t.suggest_categorical("b", [0, 1]),
                n=12)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert {(t.params["a"], t.params["b"]) for t in study.trials} == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_local_search_beats_random_search_on_average():
    n, seeds = 40, range(6)
    ls = [run(local(seed=s), n=n) for s in seeds]
    rnd = [run(optuna.samplers.RandomSampler(seed=s), n=n) for s in seeds]
    assert np.mean([s.best_value for s in ls]) > np.mean([s.best_value for s in rnd]) + 1.0


def test_local_search_startup_trials_are_the_startup_samplers_own():
    """The first trials come from the startup sampler as if it ran alone (its relative
    sampling included); the local moves start after them."""
    alone = run(optuna.samplers.TPESampler(seed=5, n_startup_trials=3), n=12)
    mixed_run = run(local(n_startup_trials=12, startup=optuna.samplers.TPESampler(seed=5, n_startup_trials=3)), n=16)
    assert [t.params for t in mixed_run.trials[:12]] == [t.params for t in alone.trials]
    for t in mixed_run.trials[12:]:
        assert any(n_diff(t.params, s.params) == 1 for s in mixed_run.trials[:t.number])


def test_local_search_inherits_conditional_parameters_from_its_center():
    study = optuna.create_study(direction="maximize", sampler=local(n_startup_trials=2))
    for params in ({"kind": "conv", "act": "gelu", "w": 0.9}, {"kind": "pool", "p": 0.4}):
        study.enqueue_trial(params)
    study.optimize(_branchy, n_trials=2)
    moves = []
    for _ in range(3):  # the center's three moves, each once: act to relu or silu, kind to pool
        t = study.ask()
        _branchy(t)
        if t.params["kind"] == "conv":  # the center's branch: its float is inherited, its act moved
            assert t.params["w"] == 0.9
            moves.append(t.params["act"])
        else:  # the move opened the other branch: its parameter is drawn
            assert t.params.keys() == {"kind", "p"}
            moves.append("pool")
        study.tell(t, 0.0)
    assert sorted(moves) == ["pool", "relu", "silu"]


def _blocks(trial) -> float:
    """A conditional space like `macro`'s: how many blocks, then a kernel for each."""
    n = trial.suggest_categorical("n", [1, 2, 3])
    return n + sum(trial.suggest_categorical(f"k{i}", [1, 2, 3, 4, 5]) for i in range(n)) / n


def test_local_search_on_blocks_never_repeats_an_architecture():
    """Dropping a block gives the center's values on fewer parameters, and adding one draws the
    new block's: neither may bring back an architecture already tried, nor repeat a move."""
    study = run(local(n_startup_trials=5), _blocks, n=50)
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == len(params)
    for t in study.trials[5:]:
        earlier = study.trials[:t.number]
        one_move = any(n_diff(t.params, s.params) == 1 for s in earlier if s.params.keys() == t.params.keys())
        dropped = any(t.params["n"] < s.params["n"] and all(s.params[k] == v for k, v in t.params.items() if k != "n")
                      for s in earlier)
        added = any(t.params["n"] > s.params["n"] and all(t.params[k] == v for k, v in s.params.items() if k != "n")
                    for s in earlier)
        assert one_move or dropped or added, t.params


def test_local_search_bad_input():
    with pytest.raises(HypernasError, match="n_startup_trials"):
        LocalSearchSampler(n_startup_trials=0)
    with pytest.raises(HypernasError, match="at_local_optimum is one of next_best, startup, got 'restart'"):
        LocalSearchSampler(at_local_optimum="restart")
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=local())
    with pytest.raises(HypernasError, match="^LocalSearchSampler serves single-objective studies only"):
        study.optimize(lambda t: (toy(t), 0.0), n_trials=1)
    space = get_space("nb201")
    for startup in ("local", "grid", "evolution", "tpee"):
        with pytest.raises(HypernasError, match=f"local search starts from random, tpe, gp, wlgp, not '{startup}'"):
            make_sampler("local", 0, space, {"startup": startup})
    with pytest.raises(HypernasError, match="sampler .tpe. takes no option .n_startups."):
        make_sampler("local", 0, space, {"startup": "tpe", "startup_options": {"n_startups": 3}})
    sampler = make_sampler("local", 0, space, {"startup": "tpe", "startup_options": {"n_startup_trials": 3}})
    assert isinstance(sampler._startup, optuna.samplers.TPESampler)


def test_sampler_overhead_bench_times_each_sampler_as_a_search_resumes_it():
    from benchmarks import sampler_overhead

    config = sampler_overhead.Config(samplers=("tpe", "random"), trials=(20, 40), asks=8, trial_batch=4)
    result = sampler_overhead.run(config)
    assert [(r["sampler"], r["trials"]) for r in result["rows"]] == [("tpe", 20), ("random", 20), ("tpe", 40),
                                                                     ("random", 40)]
    assert all(r["sampler_seconds"] > 0 and r["rest_seconds"] > 0 for r in result["rows"])
    assert "| tpe | 40 |" in sampler_overhead.markdown(result)
    with pytest.raises(OptionError, match="serves one objective"):
        sampler_overhead.Config(samplers=("local",), objectives=("score", "params"))
