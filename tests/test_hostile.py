"""Hostile files and faults: reading never runs code or writes, secrets stay hidden, a full disk
or a bad config is one line, and bounds are checked before work starts."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import textwrap
import weakref

import networkx as nx
import pytest
import torch
from conftest import fails_cleanly, fit_config, small_nb201
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypernas.config import SearchConfig, load_search_config
from hypernas.errors import CheckpointError, HypernasError, HypernasWarning, OptionError, StorageError
from hypernas.ghn.checkpoint import load_checkpoint, save_checkpoint
from hypernas.ghn.fit import fit_hypernet
from hypernas.search import run_search
from hypernas.spaces import get_space
from hypernas.study.storage import load_study, open_storage, redact

OPTIONS = {"channels": 2, "cells": 1}
FIT = fit_config(steps=2, meta_batch=2, batch_size=16, hidden=8, rounds=1, rank=2, warmup=1, eval_archs=2)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    cfg = SearchConfig(space="nb201", space_options=OPTIONS, study="h", runs=str(tmp / "runs"), trials=4, trial_batch=4,
                       fit=FIT, top_k=1, final_epochs=1, samples=1)
    run_search(cfg, progress=False)
    return cfg


# ---- files we read never decide what code runs -----------------------------------------------------


EVIL_SPACE = textwrap.dedent('''
    import pathlib
    pathlib.Path(__file__).with_name("IMPORTED").write_text("this file was run")
    from search_spaces.example_user_space import tiny_cnn as space
''')


def test_a_checkpoint_naming_a_python_file_never_imports_it(tmp_path, mnist1d, capsys):
    (tmp_path / "evil.py").write_text(EVIL_SPACE)
    path = str(tmp_path / "h.pt")
    fit_hypernet(get_space("tiny_cnn"), {}, mnist1d, FIT, out=path, progress=False)
    ckpt = load_checkpoint(path)
    ckpt["space"] = f"{tmp_path}/evil.py:space"
    save_checkpoint(ckpt, path)
    archs = tmp_path / "archs.txt"
    archs.write_text("{}\n")
    fails_cleanly(["score", "--hypernet", path, "--archs", archs], capsys, "which is code", "--space")
    assert not (tmp_path / "IMPORTED").exists()


def test_a_study_naming_a_python_file_never_imports_it(study, tmp_path, capsys):
    (tmp_path / "evil.py").write_text(EVIL_SPACE)
    runs = tmp_path / "runs"
    shutil.copytree(study.runs, runs)
    storage = optuna_storage(runs)
    s = load_study(storage, "h")
    s.set_user_attr("space", f"{tmp_path}/evil.py:space")
    fails_cleanly(["export", "--runs", runs, "--study", "h", "--out", tmp_path / "x"], capsys, "which is code")
    fails_cleanly(["plot", "arch", "--runs", runs, "--study", "h", "--out", tmp_path / "x.png"], capsys, "which is code")
    assert not (tmp_path / "IMPORTED").exists()


def optuna_storage(runs) -> str:
    return f"sqlite:///{runs}/h/study.db"


class Payload:
    """Stands for any class a pickle names: loading it would run code of the file's choosing."""


def test_a_pickled_object_is_refused_for_what_it_is(tmp_path, capsys):
    torch.save({"format": "hypernas-hypernet", "x": Payload()}, tmp_path / "code.pt")
    with pytest.raises(CheckpointError, match="holds code-bearing objects .* will not be loaded") as err:
        load_checkpoint(str(tmp_path / "code.pt"))
    assert "weights_only=False" not in str(err.value) and "likely succeed" not in str(err.value)


# ---- secrets and names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["postgresql+psycopg://user@host:1/db?password=hunter2",
                                 "postgresql+psycopg://user:hunter2@host:1/db",
                                 "postgresql://u@h/db?sslmode=require&sslpassword=hunter2"])
def test_passwords_are_masked_in_every_url_form(url, tmp_path, capsys):
    assert "hunter2" not in redact(url)
    err = fails_cleanly(["search", "--space", "nb201", "--storage", url, "--runs", tmp_path, "--fit-steps", 1],
                        capsys, "cannot open storage")
    assert "hunter2" not in err


@pytest.mark.parametrize("name", ["../../x", "/abs/x", "a/b", ".hidden", "x" * 200])
def test_a_study_name_must_be_a_plain_name(name, tmp_path, capsys):
    runs = tmp_path / "a" / "b" / "runs"
    fails_cleanly(["search", "--space", "nb201", "--study", name, "--runs", runs], capsys, "a study name is")
    fails_cleanly(["export", "--study", name, "--runs", runs, "--out", tmp_path / "o"], capsys, "a study name is")
    assert list(tmp_path.rglob("*.db")) == [] and not (tmp_path / "a" / "x").exists()


# ---- reads that must not write ------------------------------------------------------------------------


def test_export_and_plot_never_write_to_what_they_read(study, tmp_path, capsys):
    foreign = tmp_path / "notes.db"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE notes (text)")
    con.commit()
    con.close()
    before = foreign.read_bytes()
    fails_cleanly(["export", "--storage", f"sqlite:///{foreign}", "--study", "h", "--out", tmp_path / "o"], capsys,
                  "not an Optuna study database")
    assert foreign.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]
    fails_cleanly(["plot", "history", "--runs", tmp_path / "none", "--study", "x", "--out", tmp_path / "p.png"], capsys,
                  "no study database at")
    assert not (tmp_path / "none").exists()


def test_a_study_on_read_only_media_can_be_read(study, tmp_path, capsys):
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("this machine cannot mount a tmpfs")
    try:
        shutil.copytree(os.path.join(study.runs, "h"), mount / "h")
        con = sqlite3.connect(mount / "h" / "study.db")  # left in WAL mode, as a live search leaves it
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        con.close()
        assert subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True).returncode == 0
        from hypernas.cli import main

        assert main(["plot", "history", "--runs", str(mount), "--study", "h", "--out", str(tmp_path / "p.png")]) == 0
        assert main(["export", "--runs", str(mount), "--study", "h", "--out", str(tmp_path / "e")]) == 0
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


# ---- a full disk --------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("this machine cannot mount a tmpfs")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_during_a_checkpoint_is_one_line_and_leaves_no_file(small_disk, mnist1d):
    state = {"format": "hypernas-hypernet", "w": torch.zeros(100_000)}  # 400 kB on a 64 kB disk
    with pytest.raises(CheckpointError, match="cannot write checkpoint .*No space left on device"):
        save_checkpoint(state, str(small_disk / "h.pt"))
    assert list(small_disk.iterdir()) == []


def test_a_full_disk_during_a_study_write_is_one_line(small_disk, study, capsys):
    (small_disk / "filler").write_bytes(b"\0" * 60_000)
    err = fails_cleanly(["search", "--space", "nb201", "--channels", 2, "--cells", 1, "--runs", small_disk,
                         "--study", "full", "--hypernet", study.hypernet_path, "--trials", 4, "--samples", 1], capsys)
    assert "full" in err or "No space" in err or "disk" in err, err


# ---- config types -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("toml, named", [
    ("storage = 42", "storage must be a non-empty string, got 42"),
    ('device = 3', "device must be a non-empty string, got 3"),
    ('val_fraction = "0.1"', "val_fraction must be a finite number, got '0.1'"),
    ("runs = 5", "runs must be a non-empty string, got 5"),
    ("[fit]\nsteps = 1.5", "fit.steps must be an integer, got 1.5"),
    ("hypernet = true", "hypernet must be a non-empty string, got True"),
])
def test_every_toml_key_is_type_checked_by_its_name(toml, named, tmp_path):
    (tmp_path / "s.toml").write_text(f'space = "nb201"\n{toml}\n')
    with pytest.raises(OptionError, match=named.replace("(", r"\(").replace(")", r"\)")):
        load_search_config(str(tmp_path / "s.toml"))


def test_objectives_may_be_one_string(tmp_path):
    (tmp_path / "s.toml").write_text('space = "nb201"\nobjectives = "score"\n')
    assert load_search_config(str(tmp_path / "s.toml")).objectives == ("score",)


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=5),
                   st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
KEYS = st.sampled_from(["trials", "seed", "samples", "sampler", "objectives", "storage", "device", "val_fraction",
                        "distinct", "top_k", "trial_batch", "runs", "study", "space_options", "score_split", "timeout"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(KEYS, VALUES, max_size=4))
def test_random_typed_configs_give_a_config_or_one_error_line(values):
    values = {k: v for k, v in values.items() if v is not None}  # TOML has no null
    try:
        cfg = load_search_config(None, {"space": "nb201", **values})
    except HypernasError as err:
        assert "\n" not in " ".join(str(err).split()) and str(err)
        return
    assert isinstance(cfg, SearchConfig)


# ---- unreadable inputs --------------------------------------------------------------------------------------


def test_unreadable_inputs_are_one_line(study, tmp_path, capsys):
    binary = tmp_path / "archs.bin"
    binary.write_bytes(b"\xff\xfe\x00bad")
    fails_cleanly(["score", "--hypernet", study.hypernet_path, "--archs", binary], capsys, "not UTF-8 text")
    fails_cleanly(["score", "--hypernet", study.hypernet_path, "--archs", tmp_path], capsys, "cannot read architectures")
    fails_cleanly(["search", "--config", binary], capsys, "cannot read study config")
    fails_cleanly(["search", "--config", tmp_path], capsys, "cannot read study config")
    fails_cleanly(["train", "--space", "nb201", "--arch", binary], capsys, "cannot read the architecture file")


def test_a_corrupt_or_locked_study_is_one_line(tmp_path, capsys):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "study.db").write_bytes(b"this is not a database at all" * 100)
    fails_cleanly(["export", "--runs", tmp_path, "--study", "s", "--out", tmp_path / "o"], capsys)
    fails_cleanly(["search", "--space", "nb201", "--runs", tmp_path, "--study", "s", "--fit-steps", 1], capsys,
                  "cannot open storage")


def test_a_worker_waiting_on_a_lock_says_so(tmp_path, capsys, monkeypatch):
    from hypernas.study import storage as storage_module

    monkeypatch.setattr(storage_module, "WAIT_NOTE_SECONDS", (0.1, 10.0))
    storage = open_storage(f"sqlite:///{tmp_path}/s.db")
    held = storage_module._Lock(storage, "hypernas:s:hypernet")
    assert held.try_acquire()
    import threading

    threading.Timer(0.4, held.release).start()
    with storage_module.study_lock(storage, "s", "hypernet"):
        pass
    err = capsys.readouterr().err
    assert "waiting for another worker's lock on study 's' (hypernet)" in err and "s so far" in err


# ---- bounds ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag, value, named", [("--samples", 10**6, "--samples must be an integer <= 1000"),
                                                ("--seed", 2**40, "--seed must be an integer <="),
                                                ("--fit-seed", -1, "--fit-seed must be an integer >= 0")])
def test_bounds_are_checked_before_any_work(flag, value, named, tmp_path, capsys):
    fails_cleanly(["search", "--space", "nb201", "--runs", tmp_path, flag, value], capsys, named)
    assert not (tmp_path / "hypernas").exists()


def test_a_space_wider_than_the_hypernetwork_fails_before_training(tmp_path, mnist1d):
    with pytest.raises(HypernasError, match="beyond this hypernetwork"):
        fit_hypernet(get_space("nb201"), {"channels": 512, "cells": 1}, mnist1d, FIT, out=str(tmp_path / "h.pt"),
                     progress=False)
    assert not (tmp_path / "h.pt").exists()


def test_training_beyond_memory_is_refused_with_the_estimate(monkeypatch, mnist1d):
    from hypernas import device
    from hypernas.train import train

    monkeypatch.setattr(device, "available_bytes", lambda d="cpu": 10 * 2**20)
    with pytest.raises(OptionError, match=r"needs about \d+\.\d GiB .* more than the 0\.0 GiB free"):
        train(small_nb201(), mnist1d, seed=0, progress=False)


def test_a_deep_chain_holds_a_few_activations_at_a_time():
    """A 10,000-node chain: when each op runs, the outputs of ops long done are already freed."""
    from hypernas.compile import Program
    from hypernas.graph import validate
    from hypernas.ops import RunContext

    G = nx.DiGraph()
    G.add_node("input", op="input", channels=2)
    names = [f"r{i}" for i in range(10_000)]
    for n in names:
        G.add_node(n, op="relu")
    G.add_node("pool", op="global_pool")
    G.add_node("linear", op="linear", channels=3)
    G.add_node("output", op="output")
    nx.add_path(G, ["input", *names, "pool", "linear", "output"])
    alive, alive_max, refs = 0, 0, []

    def freed(_ref):
        nonlocal alive
        alive -= 1

    def observe(op, out):
        nonlocal alive, alive_max
        alive += 1
        refs.append(weakref.ref(out, freed))
        alive_max = max(alive_max, alive)

    params = {"linear.weight": torch.zeros(3, 2), "linear.bias": torch.zeros(3)}
    with torch.no_grad():
        Program(validate(G), 1).run(torch.randn(4, 2, 64), params, RunContext(1, observe=observe))
    assert alive_max <= 3, alive_max


def test_a_partly_trained_checkpoint_is_announced(tmp_path, mnist1d, capsys):
    path = str(tmp_path / "h.pt")
    fit_hypernet(get_space("nb201"), OPTIONS, mnist1d, FIT, out=path, progress=False)
    ckpt = load_checkpoint(path)
    ckpt["fit"]["steps"] = 50  # as if it had been stopped after 2 of 50
    save_checkpoint(ckpt, path)
    archs = tmp_path / "a.txt"
    archs.write_text(get_space("nb201").describe(small_nb201()) + "\n")
    from hypernas.cli import main

    with pytest.warns(HypernasWarning, match="stopped after 2 of its 50 planned training steps"):
        assert main(["score", "--hypernet", path, "--archs", str(archs)]) == 0


def test_storage_errors_are_storage_errors():
    with pytest.raises(StorageError, match="no study database at"):
        open_storage("sqlite:////nonexistent/study.db", read_only=True)


# ---- exports -------------------------------------------------------------------------------------------------


@pytest.fixture
def exported(study, tmp_path):
    from hypernas.export import export_trial

    out = tmp_path / "e"
    export_trial(study.storage_url, "h", "best", str(out))
    return out


def test_load_refuses_a_malformed_meta_json(exported):
    import json

    from hypernas.export import load

    meta = json.loads((exported / "meta.json").read_text())
    (exported / "meta.json").write_text(json.dumps({**meta, "ndim": "one"}))
    with pytest.raises(CheckpointError, match="meta.json is malformed .*ndim"):
        load(str(exported))
    (exported / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="is not an exported hypernas model"):
        load(str(exported))


def test_load_refuses_an_edited_graph_or_nan_weights(exported):
    from hypernas.export import load

    assert load(str(exported))  # as exported, it loads
    arch = (exported / "arch.json").read_text()
    (exported / "arch.json").write_text(arch.replace('"channels":2', '"channels":3', 1))
    with pytest.raises(CheckpointError, match="arch.json is not the file that was exported"):
        load(str(exported))
    (exported / "arch.json").write_text(arch)
    state = torch.load(exported / "weights.pt", weights_only=True)
    name = next(k for k, v in state.items() if torch.is_floating_point(v))
    state[name] = torch.full_like(state[name], float("nan"))
    torch.save(state, exported / "weights.pt")
    with pytest.raises(CheckpointError, match="weights.pt is not the file that was exported"):
        load(str(exported))
    import hashlib
    import json

    meta = json.loads((exported / "meta.json").read_text())  # a digest made to match: the NaNs are still refused
    meta["weights_sha256"] = hashlib.sha256((exported / "weights.pt").read_bytes()).hexdigest()[:16]
    (exported / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="hold NaN or inf"):
        load(str(exported))


def test_a_locked_study_is_one_line(study, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(study.runs, runs)
    db = runs / "h" / "study.db"
    con = sqlite3.connect(db, isolation_level=None, timeout=0)
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        fails_cleanly(["search", "--space", "nb201", "--channels", 2, "--cells", 1, "--runs", runs, "--study", "h",
                       "--hypernet", study.hypernet_path, "--trials", 8, "--samples", 1], capsys, "locked")
    finally:
        con.execute("ROLLBACK")
        con.close()
