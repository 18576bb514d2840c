"""Hostile files and faults: reading never runs code or writes, secrets stay hidden, a full disk
or a bad config is one line, and bounds are checked before work starts."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sqlite3
import stat
import subprocess
import textwrap
import weakref

import networkx as nx
import pytest
import torch
from conftest import GOOD_CELL, fails_cleanly, fit_config, small_nb201, tmpfs
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
                                 "postgresql://u@h/db?sslmode=require&sslpassword=hunter2",
                                 "postgresql+psycopg://u@127.0.0.1:1/db?dsn=password%3Dhunter2",
                                 "postgresql+psycopg://u@127.0.0.1:1/db?dsn=host%3Dx%20password%20%3D%20%27hun%20ter2%27",
                                 "postgresql+psycopg://u@127.0.0.1:1/db?dsn=postgresql%3A%2F%2Fv%3Ahunter2%40h%2Fd",
                                 "postgresql+psycopg://u@127.0.0.1:1/db?dsn=sslpassword%3Dhunter2%20port%3D1",
                                 "host=127.0.0.1 port=1 password=hunter2"])
def test_passwords_are_masked_in_every_url_form(url, study, tmp_path, capsys):
    secret = "hun ter2" if "hun%20ter2" in url else "hunter2"
    assert secret not in redact(url) and "hunter2" not in redact(url)
    err = fails_cleanly(["search", "--space", "nb201", "--storage", url, "--runs", tmp_path, "--fit-steps", 1],
                        capsys, "cannot open storage")
    assert "hunter2" not in err and "ter2" not in err
    err = fails_cleanly(["export", "--storage", url, "--study", "h", "--out", tmp_path / "o"], capsys)
    assert "hunter2" not in err and "ter2" not in err


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
    with tmpfs(tmp_path / "disk", "64k") as mount:
        yield mount


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


def test_a_full_disk_during_hypernetwork_training_names_the_full_disk(tmp_path, mnist1d):
    """A checkpoint larger than the free space: torch's writer reports it as its own error, which
    must still read as the full disk it is."""
    wide = fit_config(steps=1, meta_batch=1, batch_size=8, hidden=64, rounds=1, eval_archs=1)  # a 2 MB checkpoint
    with tmpfs(tmp_path / "disk", "2m") as disk:
        with pytest.raises(CheckpointError, match="cannot write checkpoint .*No space left on device"):
            fit_hypernet(get_space("nb201"), OPTIONS, mnist1d, wide, out=str(disk / "h.pt"), progress=False)
        assert list(disk.iterdir()) == []


# ---- special files ------------------------------------------------------------------------------------------


def special_file(path, kind: str) -> None:
    """A FIFO, or a copy of /dev/null or /dev/full (a character device, made with mknod as root)."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3 if kind == "null" else 7))
        except PermissionError:
            pytest.skip("making a device file needs root")


@pytest.mark.parametrize("kind", ["fifo", "null", "full", "folder"])
@pytest.mark.parametrize("command", ["draw", "plot"])
def test_draw_and_plot_never_replace_what_is_not_a_regular_file(kind, command, study, tmp_path, capsys):
    out = tmp_path / "out"
    special_file(out, kind)
    before = os.lstat(out).st_mode
    argv = {"draw": ["draw", "--space", "nb201", "--arch", GOOD_CELL, "--out", out],
            "plot": ["plot", "history", "--runs", study.runs, "--study", "h", "--out", out]}[command]
    fails_cleanly(argv, capsys, "is not a regular file")
    assert os.lstat(out).st_mode == before and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_an_empty_out_is_refused_and_writes_nothing(tmp_path, capsys, monkeypatch):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    fails_cleanly(["draw", "--space", "nb201", "--arch", GOOD_CELL, "--out", ""], capsys, "no file name")
    assert [p.name for p in tmp_path.iterdir()] == ["cwd"] and list((tmp_path / "cwd").iterdir()) == []


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
    held = storage_module._Lock(storage, "s", "hypernet")
    assert held.try_acquire()
    import threading

    threading.Timer(0.4, held.release).start()
    with storage_module.study_lock(storage, "s", "hypernet"):
        pass
    err = capsys.readouterr().err
    assert "waiting for another worker's lock on study 's' (hypernet)" in err and "s so far" in err


def test_a_lock_that_is_a_folder_is_one_line(study, tmp_path, capsys):
    from hypernas.study.storage import _Lock

    url = f"sqlite:///{tmp_path}/s.db"
    os.mkdir(_Lock(open_storage(url), "h", "hypernet").path)
    fails_cleanly(["search", "--space", "nb201", "--channels", 2, "--cells", 1, "--storage", url, "--study", "h",
                   "--hypernet", study.hypernet_path, "--trials", 4, "--samples", 1, "--runs", tmp_path], capsys,
                  "cannot lock study 'h'", "Is a directory")


def test_a_second_worker_at_the_largest_seed_keeps_a_valid_seed(study, tmp_path):
    """A worker's sampler seed is the search's seed moved by its slot; at the largest seed it wraps around."""
    from dataclasses import replace

    from hypernas.config import MAX_SEED
    from hypernas.study.storage import _Lock

    cfg = replace(study, runs=str(tmp_path / "runs"), seed=MAX_SEED, hypernet=study.hypernet_path, top_k=0)
    first = _Lock(open_storage(cfg.storage_url), "h", "worker-0")  # another live worker holds slot 0
    assert first.try_acquire()
    try:
        run_search(cfg, progress=False)
    finally:
        first.release()
    assert len(load_study(cfg.storage_url, "h").get_trials()) == 4


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
    with pytest.raises(CheckpointError, match="meta.json is not the file that was exported"):  # its digest says so
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

    meta = json.loads((exported / "meta.json").read_text())  # digests made to match: the NaNs are still refused
    meta["weights_sha256"] = hashlib.sha256((exported / "weights.pt").read_bytes()).hexdigest()[:16]
    del meta["meta_sha256"]
    meta["meta_sha256"] = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
    (exported / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="hold NaN or inf"):
        load(str(exported))


def foreign_wal(db) -> None:
    """Put the -wal file of another database beside `db`, as a copy or a restore can leave one."""
    other = sqlite3.connect(db.parent / "other.db")
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("PRAGMA wal_autocheckpoint=0")  # the writes stay in other.db-wal
    other.execute("CREATE TABLE notes (text)")
    other.executemany("INSERT INTO notes VALUES (?)", [("x" * 100,)] * 200)
    other.commit()
    shutil.copy(db.parent / "other.db-wal", f"{db}-wal")
    other.close()


def test_a_study_that_vanished_from_its_file_is_not_made_anew(study, tmp_path, capsys):
    """SQLite replays a -wal file from another database: the study seems gone, and a search
    would silently start a new one in its place. The lock file of its writes remembers it."""
    runs = tmp_path / "runs"
    shutil.copytree(study.runs, runs)
    db = runs / "h" / "study.db"
    with contextlib.closing(sqlite3.connect(db)) as con:  # the study whole in the file, its own -wal empty
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    foreign_wal(db)
    before = db.read_bytes()
    argv = ["search", "--space", "nb201", "--channels", 2, "--cells", 1, "--runs", runs, "--study", "h", "--hypernet",
            study.hypernet_path, "--trials", 4, "--samples", 1]
    fails_cleanly(argv, capsys, "study 'h' wrote trials to", "no longer holds it")
    fails_cleanly(["export", "--runs", runs, "--study", "h", "--out", tmp_path / "o"], capsys, "no longer holds it")
    assert db.read_bytes() == before  # nothing written: without the foreign -wal file the study is whole again
    os.remove(f"{db}-wal")
    assert len(load_study(f"sqlite:///{db}", "h").get_trials()) == 4


def test_storage_errors_show_what_the_database_said(study, tmp_path, capsys):
    """Not Optuna's "invalid data in the commit": the database's own words."""
    runs = tmp_path / "runs"
    shutil.copytree(study.runs, runs)
    db = runs / "h" / "study.db"
    raw = bytearray(db.read_bytes())
    raw[4096 * 3:4096 * 6] = b"\xa5" * (4096 * 3)  # pages of the trials' tables, corrupt
    db.write_bytes(bytes(raw))
    for argv in (["export", "--runs", runs, "--study", "h", "--out", tmp_path / "o"],
                 ["search", "--space", "nb201", "--channels", 2, "--cells", 1, "--runs", runs, "--study", "h",
                  "--hypernet", study.hypernet_path, "--trials", 8, "--samples", 1]):
        err = fails_cleanly(argv, capsys)
        assert "invalid data in the commit" not in err and "malformed" in err, err


def test_an_immutable_study_file_is_named_as_read_only(study, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(study.runs, runs)
    db = runs / "h" / "study.db"
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True, check=False).returncode:
        pytest.skip("this machine cannot make a file immutable (chattr +i needs root and ext4 or alike)")
    try:
        err = fails_cleanly(["search", "--space", "nb201", "--channels", 2, "--cells", 1, "--runs", runs, "--study",
                             "h", "--hypernet", study.hypernet_path, "--trials", 8, "--samples", 1, "--final-epochs", 1],
                            capsys, "readonly database")
        assert "invalid data in the commit" not in err
    finally:
        subprocess.run(["chattr", "-i", str(db)], capture_output=True, check=False)


@pytest.mark.parametrize("url", ["postgresql+psycopg://user:hunter2@127.0.0.1:1/db", "postgres-wrong-password",
                                 "postgres-missing-database"])
def test_postgres_errors_show_what_the_server_said(url, tmp_path, capsys):
    pg = os.environ.get("HYPERNAS_TEST_POSTGRES")
    if url.startswith("postgres-") and not pg:
        pytest.skip("no PostgreSQL server: set HYPERNAS_TEST_POSTGRES")
    from sqlalchemy.engine import make_url

    said = {"postgresql": "Connection refused", "postgres-wrong-password": "password authentication failed",
            "postgres-missing-database": "does not exist"}[url.split("+")[0]]
    if url == "postgres-wrong-password":
        url = make_url(pg).set(password="hunter2").render_as_string(hide_password=False)
    elif url == "postgres-missing-database":
        url = make_url(pg).set(database="hypernas_no_such_db").render_as_string(hide_password=False)
    for argv in (["export", "--storage", url, "--study", "h", "--out", tmp_path / "o"],
                 ["plot", "history", "--storage", url, "--study", "h", "--out", tmp_path / "p.png"]):
        err = fails_cleanly(argv, capsys, said)
        assert "invalid data in the commit" not in err and "hunter2" not in err


def test_a_full_disk_while_scoring_names_the_full_disk(study, tmp_path, capsys):
    with tmpfs(tmp_path / "disk", "1m") as disk:
        shutil.copytree(os.path.join(study.runs, "h"), disk / "h", ignore=shutil.ignore_patterns("final", "artifacts"))
        (disk / "filler").write_bytes(b"\0" * (shutil.disk_usage(disk).free - 16_000))
        from hypernas.cli import main

        assert main(["search", "--space", "nb201", "--channels", "2", "--cells", "1", "--runs", str(disk), "--study",
                     "h", "--hypernet", study.hypernet_path, "--trials", "200", "--trial-batch", "50", "--samples", "1",
                     "--final-epochs", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert err.startswith("hypernas: error: ") and "invalid data in the commit" not in err, err
    assert "full" in err or "No space" in err, err


def test_a_locked_study_is_one_line(study, tmp_path, capsys, monkeypatch):
    from hypernas.study import storage

    # one attempt, not the five that outlast workers racing to make a study's tables: the same error, sooner
    monkeypatch.setattr(storage, "_rdb_storage", functools.partial(storage._rdb_storage, attempts=1))
    runs = tmp_path / "runs"
    shutil.copytree(study.runs, runs)
    db = runs / "h" / "study.db"
    con = sqlite3.connect(db, isolation_level=None, timeout=0)
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        fails_cleanly(["search", "--space", "nb201", "--channels", 2, "--cells", 1, "--runs", runs, "--study", "h",
                       "--hypernet", study.hypernet_path, "--trials", 8, "--samples", 1], capsys, "locked")
        # nor read past the lock as if the file were on read-only media: its pages may be half written
        fails_cleanly(["export", "--runs", runs, "--study", "h", "--out", tmp_path / "o"], capsys, "locked")
        fails_cleanly(["plot", "history", "--runs", runs, "--study", "h", "--out", tmp_path / "h.png"], capsys, "locked")
    finally:
        con.execute("ROLLBACK")
        con.close()


def test_an_allocation_that_fails_is_one_line(monkeypatch, capsys):
    import sys

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried "
                           "to allocate 4000000000 bytes")

    monkeypatch.setattr(sys.modules["hypernas.train"], "train", out_of_memory)  # the module, not the function
    fails_cleanly(["train", "--space", "nb201", "--arch", GOOD_CELL, "--channels", 2, "--cells", 1], capsys,
                  "out of memory", "can't allocate memory")


def test_the_memory_free_to_this_process_heeds_its_address_space_limit():
    import sys

    code = ("import resource; from hypernas.device import available_bytes; "
            "limit = 2**31 + 2**30; resource.setrlimit(resource.RLIMIT_AS, (limit, limit)); "
            "print(available_bytes() < limit)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert proc.stdout.strip() == "True", proc.stderr
