"""`python -m benchmarks.search_report`: a finished study's counts, timing and finalists."""

from __future__ import annotations

import optuna
import pytest

from benchmarks import search_report
from hypernas.config import sqlite_url


def test_the_report_counts_every_finished_trial_and_the_samplers_own_seconds(tmp_path):
    runs = tmp_path / "runs"
    (runs / "s").mkdir(parents=True)
    study = optuna.create_study(study_name="s", storage=sqlite_url(str(runs / "s")), direction="maximize")
    study.set_user_attr("search_timing", {"total": 10.0, "score": 6.0, "ask": 3.0, "sampler": 2.0})
    dist = optuna.distributions.FloatDistribution(0, 1)
    trials = [({"trained_accuracy": 0.95}, optuna.trial.TrialState.COMPLETE, 0.5),
              ({"duplicate_of": 0}, optuna.trial.TrialState.PRUNED, None),  # a duplicate, stored PRUNED
              ({"feasible": False}, optuna.trial.TrialState.PRUNED, None),  # over a limit, stored PRUNED
              ({}, optuna.trial.TrialState.COMPLETE, 0.4)]
    for attrs, state, value in trials:
        study.add_trial(optuna.trial.create_trial(state=state, value=value, params={"x": 0.5},
                                                  distributions={"x": dist}, user_attrs=attrs))
    result = search_report.run(search_report.Config(study="s", runs=str(runs)))
    assert (result["trials"], result["distinct"], result["infeasible"]) == (4, 3, 1)
    assert result["fraction_sampler"] == pytest.approx(0.2) and result["fraction_scoring"] == pytest.approx(0.6)
    assert result["finalists"] == [0.95] and result["best_finalist"] == 0.95
    assert '"infeasible": 1' in search_report.markdown(result)
