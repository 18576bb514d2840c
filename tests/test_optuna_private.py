"""Every private Optuna name hypernas uses still works in the installed Optuna.

If a release moves one, this is the test that fails, by name, instead of a search at run time.
"""

from __future__ import annotations

import optuna
import pytest

from hypernas import optuna_private
from hypernas.errors import StorageError


@pytest.fixture(params=["memory", "sqlite"])
def study(request, tmp_path):
    storage = None if request.param == "memory" else f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(storage=storage, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    return study


def test_storage_ids_are_reachable(study):
    storage = optuna_private.storage_of(study)
    sid = optuna_private.study_id_of(study)
    assert storage.get_study_id_from_name("s") == sid
    trial = study.trials[0]
    assert storage.get_trial(optuna_private.trial_id_of(trial)).number == trial.number
    assert optuna_private.rdb_of(storage) is not None


def test_a_running_trial_takes_a_system_attribute(study):
    trial = study.ask()
    frozen = study.trials[-1]
    optuna_private.set_trial_system_attr(study, frozen, "k", [1, 2])
    study.tell(trial, 0.5)
    assert study.trials[-1].system_attrs["k"] == [1, 2]


def test_a_finished_trial_takes_attributes_and_an_artifact(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/s.db", study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    trial = study.trials[0]
    optuna_private.annotate_trial(study, trial, user_attrs={"trained_accuracy": 0.5})
    optuna_private.annotate_trial(study, trial, user_attrs={"trained_accuracy": 0.75})  # an update, not a second row
    from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta

    (tmp_path / "a.png").write_bytes(b"\x89PNG")
    (tmp_path / "store").mkdir()
    store = FileSystemArtifactStore(str(tmp_path / "store"))
    artifact = optuna_private.attach_artifact(study, trial, store, str(tmp_path / "a.png"))
    reread = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/s.db")  # past the first one's cache
    again = reread.trials[0]
    assert again.user_attrs["trained_accuracy"] == 0.75
    metas = get_all_artifact_meta(again, storage=optuna_private.storage_of(reread))
    assert [m.artifact_id for m in metas] == [artifact] and metas[0].mimetype == "image/png"


@pytest.mark.parametrize("options", [{}, {"constant_liar": False}, {"multivariate": False}, {"n_startup_trials": 3}])
@pytest.mark.parametrize("directions", [["maximize"], ["maximize", "minimize"]])
def test_the_batch_tpe_with_batches_of_one_proposes_exactly_what_tpe_does(options, directions):
    """Asked in batches, as a search asks, with an enqueued trial and a failed one among them:
    with `batch=1` and a history within its bound, the proposals of `BatchTPESampler` are those
    of the installed Optuna's TPE, trial by trial."""

    def proposals(sampler) -> list:
        study = optuna.create_study(directions=directions, sampler=sampler)
        study.enqueue_trial({"a": "x", "b": 3})
        out = []
        for batch in range(6):
            trials = [study.ask() for _ in range(7)]
            values = []
            for t in trials:
                a, b = t.suggest_categorical("a", ["x", "y", "z"]), t.suggest_int("b", 0, 9)
                c = t.suggest_float("c", 0.0, 1.0)
                out.append((a, b, c))
                values.append([(b + c) / 10 - (a == "y"), c][: len(directions)])
            study.tell(trials[0], state=optuna.trial.TrialState.FAIL)
            for t, v in zip(trials[1:], values[1:]):
                study.tell(t, v)
        return out

    assert proposals(optuna_private.BatchTPESampler(seed=4, batch=1, **options)) == \
        proposals(optuna.samplers.TPESampler(seed=4, **options))
def test_a_finished_trial_takes_a_dashboard_note(study):
    from optuna_dashboard._note import get_note_from_system_attrs

    trial = study.trials[0]
    for body in ("first", "**trained** 0.9"):  # a newer version replaces the note
        optuna_private.save_trial_note(study, trial, body)
    attrs = optuna_private.storage_of(study).get_study_system_attrs(optuna_private.study_id_of(study))
    assert get_note_from_system_attrs(attrs, optuna_private.trial_id_of(trial))["body"] == "**trained** 0.9"


def test_the_constraints_key_is_optunas():
    from optuna.study._constrained_optimization import _CONSTRAINTS_KEY

    assert optuna_private.CONSTRAINTS_KEY == _CONSTRAINTS_KEY


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_trials_added_at_once_are_those_add_trials_writes(storage, tmp_path):
    """Values (an infinite one too), parameters, both kinds of attributes, intermediate values and
    states come back as `Study.add_trials` stores them, numbered after the trials already there."""
    dist = {"a": optuna.distributions.CategoricalDistribution(["x", "y"]),
            "b": optuna.distributions.FloatDistribution(0.0, 1.0)}

    def trial(i: int, state=optuna.trial.TrialState.COMPLETE) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(
            state=state, values=None if state != optuna.trial.TrialState.COMPLETE else [i / 10, float("inf")],
            params={"a": "xy"[i % 2], "b": i / 10}, distributions=dist, user_attrs={"hash": f"h{i}", "n": [i]},
            system_attrs={"told": [i, 0.5]}, intermediate_values={1: 0.25, 3: float(i)})

    there, trials = trial(9), [trial(0), trial(1, optuna.trial.TrialState.PRUNED), trial(2)]
    studies = []
    for name, add in (("one", lambda s: s.add_trials(trials)), ("once", lambda s: optuna_private.add_trials_at_once(s, trials))):
        url = None if storage == "memory" else f"sqlite:///{tmp_path}/{name}.db"
        study = optuna.create_study(storage=url, directions=["maximize", "minimize"])
        study.add_trial(there)  # one there already: the new ones are numbered after it
        add(study)
        studies.append(optuna.load_study(study_name=study.study_name, storage=url) if url else study)

    def fields(t):
        return (t.number, t.state, t.values, t.params, t.distributions, t.user_attrs, t.system_attrs,
                t.intermediate_values, t.datetime_start, t.datetime_complete)

    one, once = ([fields(t) for t in s.get_trials()] for s in studies)
    assert once == one and [f[0] for f in once] == [0, 1, 2, 3]
    bad = optuna.trial.create_trial(values=[0.0, 0.0], params={"b": "x"}, distributions={"b": dist["a"]})
    if storage == "sqlite":  # "b" is a float parameter in this study: refused in one line, nothing written
        with pytest.raises(StorageError, match="cannot write to study .*different distribution kind"):
            optuna_private.add_trials_at_once(studies[1], [trial(4), bad])
    assert len(studies[1].get_trials()) == 4
