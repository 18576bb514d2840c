"""Several `hypernas search` workers on one PostgreSQL study: an exact total, no duplicate
trial numbers, one hypernetwork training, and a SIGKILLed worker that loses nothing.

Needs a PostgreSQL server: set HYPERNAS_TEST_POSTGRES to a SQLAlchemy URL whose user may
create tables (`.ci/run` starts one). Without it these tests skip, unless
HYPERNAS_REQUIRE_POSTGRES=1 makes that a failure (CI sets it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest

from hypernas.study import load_study

PG = os.environ.get("HYPERNAS_TEST_POSTGRES")
if not PG:
    if os.environ.get("HYPERNAS_REQUIRE_POSTGRES") == "1":
        raise RuntimeError("HYPERNAS_REQUIRE_POSTGRES=1 but HYPERNAS_TEST_POSTGRES names no server")
    pytest.skip("no PostgreSQL server: set HYPERNAS_TEST_POSTGRES", allow_module_level=True)

COMPLETE = optuna.trial.TrialState.COMPLETE
FINISHED = (COMPLETE, optuna.trial.TrialState.PRUNED)  # scored trials, and their stored copies


def worker(tmp_path, study: str, trials: int, log: str, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hypernas.cli", "search", "--space", "nb201", "--channels", "4", "--cells", "1",
           "--storage", PG, "--study", study, "--runs", str(tmp_path), "--trials", str(trials), "--trial-batch", "8",
           "--samples", "1", "--fit-steps", "4", "--fit-meta-batch", "2", "--top-k", "1", "--final-epochs", "1",
           "--threads", "1", *extra]
    return subprocess.Popen(cmd, stdout=open(tmp_path / log, "w"), stderr=subprocess.STDOUT)


def completed(study: str) -> int:
    try:
        s = load_study(PG, study)
    except Exception:  # not created yet
        return 0
    return sum(s._storage.get_n_trials(s._study_id, state=state) for state in FINISHED)


@pytest.mark.parametrize("distinct", [False, True], ids=["trials", "distinct"])
def test_three_workers_one_killed_reach_the_total_exactly(tmp_path, distinct):
    """The total is exact: of trials, or with --distinct of distinct architectures, counted
    under the lock, so two workers that score one architecture at once count it once."""
    study, total = f"workers-{uuid.uuid4().hex[:8]}", 300 if not distinct else 150
    extra = ("--distinct",) if distinct else ()
    procs = [worker(tmp_path, study, total, f"w{i}.log", *extra) for i in range(3)]
    deadline = time.time() + 300
    while completed(study) < (60 if not distinct else 40) and time.time() < deadline and procs[0].poll() is None:
        time.sleep(0.2)
    assert procs[0].poll() is None, "worker 0 finished before it could be killed; make the study bigger"
    procs[0].send_signal(signal.SIGKILL)  # mid-batch: its scored, unwritten trials are lost, nothing else
    procs[0].wait()
    at_kill = completed(study)
    procs[0] = worker(tmp_path, study, total, "w0-restarted.log", *extra)
    for p in procs:
        assert p.wait(timeout=max(1, deadline - time.time())) == 0, (tmp_path / "w1.log").read_text()[-2000:]

    s = load_study(PG, study)
    trials = s.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials)))  # no duplicate or missing numbers
    done = [t for t in trials if t.state in FINISHED]
    first = [t for t in done if "duplicate_of" not in t.user_attrs]
    if distinct:  # exactly `total` distinct architectures, each counted once
        assert len(first) == total == len({t.user_attrs["hash"] for t in done})
    else:
        assert len(done) == total and at_kill <= total
    assert all(t.state.is_finished() for t in trials)  # nothing left RUNNING by the killed worker
    assert all("hash" in t.user_attrs and "arch" in t.user_attrs for t in done)
    by_number = {t.number: t for t in done}
    for t in done:  # a duplicate points at a scored trial of the same network
        if "duplicate_of" in t.user_attrs:
            first = by_number[t.user_attrs["duplicate_of"]]
            assert first.user_attrs["hash"] == t.user_attrs["hash"] and "duplicate_of" not in first.user_attrs
    assert sum("trained_accuracy" in t.user_attrs for t in done) == 1  # the final training ran once

    logs = {p.name: p.read_text() for p in tmp_path.glob("w*.log")}
    trainers = [name for name, text in logs.items() if "training the hypernetwork" in text]
    assert len(trainers) == 1, trainers  # trained once; the others waited and used it
    # export and plot read the same PostgreSQL study
    for argv in (["export", "--trial", "best", "--out", str(tmp_path / "best")],
                 ["plot", "history", "--out", str(tmp_path / "history.png")]):
        proc = subprocess.run([sys.executable, "-m", "hypernas.cli", *argv, "--storage", PG, "--study", study],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        logs[argv[0]] = proc.stdout + proc.stderr
    assert (tmp_path / "best" / "arch.json").exists() and (tmp_path / "history.png").stat().st_size > 1000
    password = optuna.storages.RDBStorage(PG).engine.url.password
    if password:
        assert not any(password in text for text in logs.values())
