"""Faults met by whole commands in their own processes, each ending with nothing lost: a search
SIGKILLed during its final training or its scoring and resumed, a distributed hypernetwork
training killed and resumed (and resumed with another number of processes), a memory limit
(`ulimit -v`) on training and scoring, and a disk that fills during the final training.

Slow (minutes on 2 cores): `python -m pytest -m slow tests/test_faults.py`.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

import optuna
import pytest
import torch
from conftest import GOOD_CELL, tmpfs
from test_distributed import FLAGS, free_port

from hypernas.export import load
from hypernas.ghn.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow
COMPLETE = optuna.trial.TrialState.COMPLETE
ROUNDING = 1e-3  # how far two scores of one architecture may differ with what it was batched with
ENV = dict(os.environ, PYTHONPATH=os.getcwd(), OMP_NUM_THREADS="1")
SPACE = ["--space", "nb201", "--channels", "2", "--cells", "1"]
FIT = ["--fit-steps", "4", "--fit-meta-batch", "2", "--fit-batch-size", "16", "--fit-hidden", "8", "--fit-rounds", "1",
       "--fit-rank", "2", "--fit-warmup", "1", "--fit-eval-archs", "2"]


def hypernas(*argv, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hypernas.cli", *map(str, argv)], env=ENV, cwd=os.getcwd(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def finished(proc: subprocess.Popen, timeout: float = 900) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def search(runs, study: str, *extra) -> list:
    return ["search", *SPACE, *FIT, "--runs", runs, "--study", study, "--samples", 1, "--threads", 1, *extra]


def trials(runs, study: str) -> list[optuna.trial.FrozenTrial]:
    db = runs / study / "study.db"
    if not db.exists():  # not made yet
        return []
    try:
        return optuna.load_study(study_name=study, storage=f"sqlite:///{db}").get_trials()
    except KeyError:  # not made yet
        return []


def kill_when(proc: subprocess.Popen, ready, timeout: float = 600) -> None:
    """SIGKILL `proc` (and its children) once `ready()` holds."""
    deadline = time.time() + timeout
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "it finished before it could be killed: " + proc.communicate()[0][-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


def trained(runs, study: str) -> dict[int, dict]:
    return {t.number: t.user_attrs for t in trials(runs, study) if "trained_accuracy" in t.user_attrs}


def nothing_lost(runs, study: str, total: int, finalists: int, tmp_path) -> None:
    """`total` completed trials numbered without gaps, none left running, `finalists` trained
    finalists each with its weights (which export and load) and its drawing, and no stray file
    but the hidden remains of a killed write."""
    all_trials = trials(runs, study)
    assert sorted(t.number for t in all_trials) == list(range(len(all_trials)))
    assert all(t.state.is_finished() for t in all_trials) and sum(t.state == COMPLETE for t in all_trials) == total
    done = trained(runs, study)
    assert len(done) == finalists, done
    final = runs / study / "final"
    names = {p.name for p in final.iterdir() if not p.name.startswith(".hypernas-")}
    assert names == {f"{os.path.basename(a['trained_weights'])[:-3]}.{ext}" for a in done.values() for ext in ("pt", "png")}
    for number in done:
        out = tmp_path / f"export_{study}_{number}"
        finished(hypernas("export", "--runs", runs, "--study", study, "--trial", number, "--out", out))
        assert load(str(out))


def test_a_search_killed_during_its_final_training_resumes_and_loses_nothing(tmp_path):
    runs = tmp_path / "runs"
    argv = search(runs, "k", "--trials", 24, "--trial-batch", 8, "--top-k", 3, "--final-epochs", 2)
    proc = hypernas(*argv, start_new_session=True)
    kill_when(proc, lambda: len(trained(runs, "k")) >= 1)  # the second finalist is training
    first = trained(runs, "k")
    assert 1 <= len(first) < 3
    finished(hypernas(*argv))
    after = trained(runs, "k")
    for number, attrs in first.items():  # kept, not trained again
        assert after[number]["trained_seconds"] == attrs["trained_seconds"]
    nothing_lost(runs, "k", 24, 3, tmp_path)


def scores(runs, study: str) -> dict[str, float]:
    return {t.user_attrs["hash"]: t.values[0] for t in trials(runs, study) if t.state == COMPLETE}


def test_a_search_killed_during_scoring_resumes_to_what_an_uninterrupted_run_scores(tmp_path):
    """The resumed study reaches the total exactly, and every architecture it holds has the
    score an uninterrupted run gives it: a score depends only on the hypernetwork, the data,
    the seed and the architecture. (Which architectures it holds may differ: the sampler
    restarts with the finished trials as its history.)"""
    runs = tmp_path / "runs"
    finished(hypernas(*search(runs, "whole", "--trials", 160, "--trial-batch", 16, "--top-k", 1, "--final-epochs", 1)))
    hypernet = runs / "whole" / "hypernet.pt"
    argv = search(runs, "cut", "--trials", 160, "--trial-batch", 16, "--top-k", 1, "--final-epochs", 1,
                  "--hypernet", hypernet)
    proc = hypernas(*argv, start_new_session=True)
    kill_when(proc, lambda: 32 <= sum(t.state == COMPLETE for t in trials(runs, "cut")))
    assert sum(t.state == COMPLETE for t in trials(runs, "cut")) < 160
    finished(hypernas(*argv))
    nothing_lost(runs, "cut", 160, 1, tmp_path)
    whole, cut = scores(runs, "whole"), scores(runs, "cut")
    common = set(whole) & set(cut)
    # Alike to float rounding: predicted weights differ by ~5e-7 with what a network is batched
    # with (the hypernetwork runs on a batch's disjoint union), which a barely trained network
    # can amplify to ~1e-4 in its score.
    assert len(common) >= 16 and all(abs(whole[h] - cut[h]) < ROUNDING for h in common)
    # the uninterrupted run scores the resumed run's other architectures alike, too
    from hypernas.data import load_dataset
    from hypernas.score import Scorer
    from hypernas.spaces import get_space

    space, data = get_space("nb201"), load_dataset("mnist1d")
    others = {t.user_attrs["hash"]: t.user_attrs["arch"] for t in trials(runs, "cut") if t.state == COMPLETE}
    graphs = [space.from_text(a, data.in_channels, data.num_classes, channels=2, cells=1) for a in others.values()]
    torch.set_num_threads(1)
    again = Scorer.from_checkpoint(str(hypernet), data, samples=1).score(graphs, keys=list(others))
    assert all(abs(s.score - cut[h]) < ROUNDING for h, s in zip(others, again))


def torchrun(out, nproc: int, *extra) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), "-m", "hypernas.cli", "train-hypernet", *SPACE, "--threads", "1",
           "--out", str(out), *FLAGS, *extra]
    return subprocess.Popen(cmd, env=ENV, cwd=os.getcwd(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def test_a_killed_distributed_training_resumes_exactly_and_only_with_as_many_processes(tmp_path):
    steps = ["--steps", "40", "--checkpoint-every", "4", "--eval-every", "4"]  # after FLAGS: these win
    whole = tmp_path / "whole.pt"
    finished(torchrun(whole, 2, *steps))
    cut = tmp_path / "cut.pt"
    proc = torchrun(cut, 2, *steps)
    kill_when(proc, lambda: cut.exists() and load_checkpoint(str(cut))["step"] >= 8)
    at_kill = load_checkpoint(str(cut))
    assert 8 <= at_kill["step"] < 40 and at_kill["world_size"] == 2
    raw = cut.read_bytes()
    for nproc in (1, 3):  # another number of processes is refused, and the checkpoint left as it was
        out = finished_or_failed(torchrun(cut, nproc, *steps, "--resume"))
        refusals = [line for line in out.splitlines() if line.startswith("hypernas: error: cannot continue")]
        assert len(refusals) == nproc and all(f"trained in 2 shard(s) per step, this run has {nproc}" in line
                                              for line in refusals), out[-3000:]
        assert not re.search(r'File ".*/hypernas/', out), out[-3000:]  # torchrun's own report aside, no traceback
        assert cut.read_bytes() == raw
    finished(torchrun(cut, 2, *steps, "--resume"))
    a, b = load_checkpoint(str(whole)), load_checkpoint(str(cut))
    assert b["step"] == 40 and b["skipped"] == a["skipped"]
    for name, tensor in a["model"].items():
        assert torch.allclose(b["model"][name], tensor, atol=1e-5, rtol=1e-4), name


def finished_or_failed(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0, out[-2000:]
    return out


def address_space() -> int:
    """Bytes of address space a fresh `hypernas` process holds once torch is imported."""
    code = "import hypernas.cli, torch; print(open('/proc/self/status').read().split('VmSize:')[1].split()[0])"
    return 1024 * int(subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True,
                                     check=True).stdout)


def limited(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.parametrize("command", ["train", "score"])
def test_a_memory_limit_is_one_line_or_a_result(command, tmp_path):
    """Under `ulimit -v` a command that does not fit says so in one line; one that fits finishes."""
    limit = address_space() + 300 * 2**20
    big, small = ["--channels", "64", "--cells", "5"], ["--channels", "2", "--cells", "1"]

    def argv(size: list) -> list:
        if command == "train":
            return ["train", "--space", "nb201", *size, "--arch", GOOD_CELL, "--epochs", 1, "--batch-size",
                    4000 if size is big else 128]
        hypernet, archs = tmp_path / f"h{size[1]}.pt", tmp_path / f"archs{size[1]}.txt"
        finished(hypernas("train-hypernet", "--space", "nb201", *size, "--steps", 1, "--meta-batch", 1, "--batch-size",
                          8, "--hidden", 8, "--rounds", 1, "--eval-archs", 1, "--out", hypernet))
        archs.write_text(finished(hypernas("sample", "--space", "nb201", *size, "-n", 64 if size is big else 2)))
        return ["score", "--hypernet", hypernet, "--archs", archs, "--samples", 1]

    proc = hypernas(*argv(big), preexec_fn=limited(limit))
    out, _ = proc.communicate(timeout=900)
    lines = [line for line in out.splitlines() if line.startswith("hypernas: ")]
    assert proc.returncode == 1 and "Traceback" not in out and lines, out[-3000:]
    assert lines[-1].startswith("hypernas: error: ") and ("memory" in lines[-1] or "GiB" in lines[-1]), out[-3000:]
    finished(hypernas(*argv(small), preexec_fn=limited(limit)))


def test_a_disk_that_fills_during_the_final_training_loses_nothing(tmp_path):
    runs = tmp_path / "runs"
    argv = search(runs, "d", "--trials", 16, "--trial-batch", 8, "--top-k", 3, "--final-epochs", 1)
    finished(hypernas(*search(runs, "d", "--trials", 16, "--trial-batch", 8, "--top-k", 0, "--final-epochs", 1)))
    with tmpfs(tmp_path / "disk", "2m") as disk:
        shutil.copytree(runs / "d", disk / "d")
        (disk / "filler").write_bytes(b"\0" * (shutil.disk_usage(disk).free - 40_000))  # room for one finalist at most
        on_disk = [*argv[:argv.index("--runs") + 1], disk, *argv[argv.index("--runs") + 2:]]
        proc = hypernas(*on_disk)
        out, _ = proc.communicate(timeout=900)
        error = [line for line in out.splitlines() if line.startswith("hypernas: error: ")]
        assert proc.returncode == 1 and "Traceback" not in out and len(error) == 1, out[-3000:]
        assert "No space left on device" in error[0] or "full" in error[0], error
        partial = trained(disk, "d")
        (disk / "filler").unlink()
        finished(hypernas(*on_disk))
        after = trained(disk, "d")
        assert all(after[n]["trained_seconds"] == a["trained_seconds"] for n, a in partial.items())
        nothing_lost(disk, "d", 16, 3, tmp_path)
