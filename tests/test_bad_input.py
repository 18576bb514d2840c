"""Bad input through the command line: each case gives one clear line on stderr, exit code 2
and no traceback. Also: a checkpoint write killed halfway never leaves a corrupt checkpoint.

Complements `test_cli.py::test_bad_input_is_one_clear_line` (a typo'd space name, space
options, NB201 strings, a missing dataset file): here are user space files, invalid
architecture JSON, broken datasets and checkpoints, storage URLs and contradicting options. Everything runs on a tiny
.npz dataset and two hypernetworks trained for two steps, to stay fast.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch
from conftest import fails_cleanly, fit_config

from hypernas.cli import main
from hypernas.data import load_dataset
from hypernas.errors import CheckpointError
from hypernas.ghn.checkpoint import FORMAT, load_checkpoint, load_hypernet, save_checkpoint
from hypernas.ghn.fit import fit_hypernet
from hypernas.graph import to_json
from hypernas.spaces import get_space

FIT = fit_config(steps=2, meta_batch=2, batch_size=16, checkpoint_every=2, hidden=8, rounds=1, rank=2, warmup=1,
                eval_every=2, eval_archs=1)
NB201 = ["--channels", "2", "--cells", "1"]


def write_npz(path, n=120, channels=1, length=16, classes=3, seed=0) -> str:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.normal(size=(n, channels, length)).astype(np.float32), y=rng.integers(0, classes, n))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny dataset, a second one, and hypernetworks for tiny_cnn and for nb201 on the first."""
    d = tmp_path_factory.mktemp("bad_input")
    data_path = write_npz(d / "tiny.npz")
    data = load_dataset(data_path)
    fit_hypernet(get_space("tiny_cnn"), {}, data, FIT, out=str(d / "tiny_cnn.pt"), progress=False)
    fit_hypernet(get_space("nb201"), {"channels": 2, "cells": 1}, data, FIT, out=str(d / "nb201.pt"), progress=False)
    G = get_space("tiny_cnn").sample(0, data.in_channels, data.num_classes)
    (d / "good.json").write_text(to_json(G))
    return {"dir": d, "data": data_path, "other_data": write_npz(d / "other.npz", seed=1, classes=4),
            "hypernet": str(d / "tiny_cnn.pt"), "nb201_hypernet": str(d / "nb201.pt"), "good": G}


def search_args(files, tmp_path, **kw) -> list[str]:
    options = {"--space": "tiny_cnn", "--dataset": files["data"], "--hypernet": files["hypernet"], "--trials": 2,
               "--trial-batch": 2, "--top-k": 0, "--samples": 1, "--runs": tmp_path, "--study": "s", **kw}
    return ["search"] + [str(x) for kv in options.items() for x in kv if kv[1] is not None]


# ---- spaces ----------------------------------------------------------------------------------


def test_unknown_space_suggests_only_what_is_close(capsys):
    err = fails_cleanly(["sample", "--space", "nosuch"], capsys, "unknown space 'nosuch'", "Known:")
    assert "Did you mean" not in err
    fails_cleanly(["sample", "--space", "tiny-cnn"], capsys, "Did you mean 'tiny_cnn'")


USER_SPACE = '''
import networkx as nx

def raises(trial, *, in_channels, num_classes):
    raise RuntimeError("boom in the space")

def cycle(trial, *, in_channels, num_classes):
    G = nx.DiGraph()
    G.add_node("a", op="relu")
    G.add_node("b", op="relu")
    G.add_edges_from([("a", "b"), ("b", "a")])
    return G

def plain_dict(trial, *, in_channels, num_classes):
    return {"nodes": [], "edges": []}
'''


@pytest.mark.parametrize("spec, expected", [
    ("broken.py:anything", ["failed to import", "ImportError: a missing dependency"]),
    ("space.py:raises", ["space.py:raises' raised RuntimeError: boom in the space"]),
    ("space.py:cycle", ["returned an invalid graph", "cycle"]),
    ("space.py:plain_dict", ["returned dict, not a networkx.DiGraph"]),
    ("space.py:missing", ["has no function 'missing'", "'raises'"]),
    ("nofile.py:f", ["does not exist"]),
])
def test_bad_user_space(spec, expected, tmp_path, capsys):
    (tmp_path / "space.py").write_text(USER_SPACE)
    (tmp_path / "broken.py").write_text('raise ImportError("a missing dependency")\n')
    fails_cleanly(["sample", "--space", tmp_path / spec, "-n", 1], capsys, *expected)


# ---- architectures as JSON ---------------------------------------------------------------------


def broken(files, how: str) -> str:
    G = files["good"].copy()
    if how == "cycle":
        G.add_edge("linear", "conv0")
    elif how == "unknown op":
        G.nodes["conv0"]["op"] = "convv"
    elif how == "shape":  # a sum of the 1-channel input and a layer of 8 or more channels
        after = next(G.successors("act0"))
        G.remove_edge("act0", after)
        G.add_node("s", op="sum")
        G.add_edges_from([("act0", "s"), ("input", "s"), ("s", after)])
    elif how == "wide kernel":  # valid, but beyond what the hypernetwork can predict
        G.nodes["conv0"]["kernel"] = 9
    if how == "malformed":
        return '{"nodes": [{"id": "input", "op": "input"'
    return json.dumps(nx.node_link_data(G, edges="edges"))


INVALID = [("cycle", "cycle"), ("unknown op", "unknown op 'convv'. Did you mean 'conv'"), ("shape", "disagree in shape"),
           ("malformed", "not a valid architecture JSON")]


@pytest.mark.parametrize("command", ["draw", "train", "score"])
@pytest.mark.parametrize("how, expected", INVALID)
def test_invalid_architecture_json(command, how, expected, files, tmp_path, capsys):
    arch = tmp_path / "arch.json"
    arch.write_text(broken(files, how) + "\n")
    argv = {"draw": ["draw", "--space", "tiny_cnn", "--arch", arch, "--out", tmp_path / "a.png", "--num-classes", 3],
            "train": ["train", "--space", "tiny_cnn", "--arch", arch, "--dataset", files["data"], "--epochs", 1],
            "score": ["score", "--hypernet", files["hypernet"], "--archs", arch, "--dataset", files["data"]]}[command]
    fails_cleanly(argv, capsys, expected)
    assert not (tmp_path / "a.png").exists()


def test_architecture_beyond_the_hypernetwork_is_refused(files, tmp_path, capsys):
    arch = tmp_path / "arch.json"
    arch.write_text(broken(files, "wide kernel") + "\n")
    fails_cleanly(["score", "--hypernet", files["hypernet"], "--archs", arch, "--dataset", files["data"]], capsys,
                  "node 'conv0'", "'kernel': 9", "is not in space 'tiny_cnn'")  # outside the space it learned
    from hypernas.data import load_dataset
    from hypernas.errors import GraphError
    from hypernas.ghn.checkpoint import load_hypernet
    from hypernas.graph import from_json
    from hypernas.score import Scorer

    unchecked = Scorer(load_hypernet(files["hypernet"]).model, load_dataset(files["data"]), space=None)
    with pytest.raises(GraphError, match="kernel 9 is beyond this hypernetwork"):  # and beyond what it can predict
        unchecked.score([from_json(broken(files, "wide kernel"))])


# ---- datasets ----------------------------------------------------------------------------------


def broken_dataset(files, kind: str) -> str:
    d = files["dir"] / "datasets"
    d.mkdir(exist_ok=True)
    path = d / f"{kind.replace(' ', '_')}.npz"
    blob = Path(files["data"]).read_bytes()
    if kind == "truncated":
        path.write_bytes(blob[: len(blob) // 2])
    elif kind == "not npz":
        path.write_bytes(b"just some text\n")
    elif kind == "wrong keys":
        np.savez(path, inputs=np.zeros((10, 1, 8)), labels=np.zeros(10, dtype=int))
    elif kind == "float labels":
        np.savez(path, x=np.zeros((10, 1, 8)), y=np.full(10, 0.5))
    elif kind == "empty":
        np.savez(path, x=np.zeros((0, 1, 8)), y=np.zeros(0, dtype=int))
    elif kind == "test shape":
        np.savez(path, x=np.zeros((10, 1, 8)), y=np.zeros(10, dtype=int), x_test=np.zeros((4, 2, 8)),
                 y_test=np.zeros(4, dtype=int))
    elif kind == "scalars":
        np.savez(path, x=np.float32(1), y=np.int64(0))
    return str(path)


@pytest.mark.parametrize("kind, expected", [
    ("truncated", "corrupt or truncated"),
    ("not npz", "it is not a zip of arrays"),
    ("wrong keys", "needs arrays x and y (or X and Y, x_train and y_train), optionally x_test and y_test; "
                   "it has ['inputs', 'labels']"),
    ("float labels", "labels must be class indices or names; got non-integer numbers such as 0.5"),
    ("empty", "too few samples"),
    ("test shape", "test samples have shape (2, 8), train samples (1, 8)"),
    ("scalars", "one row per sample"),
])
def test_bad_dataset(kind, expected, files, capsys):
    path = broken_dataset(files, kind)
    fails_cleanly(["sample", "--space", "tiny_cnn", "--dataset", path], capsys, expected)


def test_zero_validation_fraction_is_an_error_not_the_default(files, capsys):
    fails_cleanly(["sample", "--space", "tiny_cnn", "--dataset", files["data"], "--val-fraction", 0], capsys,
                  "--val-fraction must be a finite number > 0, got 0.0")


# ---- checkpoints ---------------------------------------------------------------------------------


def broken_checkpoint(files, kind: str) -> str:
    path = files["dir"] / f"{kind.replace(' ', '_')}.pt"
    blob = Path(files["hypernet"]).read_bytes()
    if kind == "corrupt":
        path.write_bytes(blob[:1000] + bytes(b ^ 0xFF for b in blob[1000:3000]) + blob[3000:])
    elif kind == "truncated":
        path.write_bytes(blob[: len(blob) // 2])
    elif kind == "damaged":  # a readable file that lacks what a checkpoint needs
        ckpt = torch.load(files["hypernet"], weights_only=True)
        del ckpt["hyper"]
        torch.save(ckpt, path)
    elif kind == "other version":
        ckpt = torch.load(files["hypernet"], weights_only=True)
        ckpt["hyper"] = {**ckpt["hyper"], "ops": ["conv", "teleport"]}
        torch.save(ckpt, path)
    elif kind in ("fit", "step"):
        ckpt = torch.load(files["hypernet"], weights_only=True)
        ckpt[kind] = {"fit": "x", "step": "many"}[kind]
        torch.save(ckpt, path)
    elif kind == "nan weights":
        ckpt = torch.load(files["hypernet"], weights_only=True)
        for weights in (ckpt["model"], ckpt["best"]["model"]):
            for name, tensor in weights.items():
                weights[name] = torch.full_like(tensor, float("nan"))
        torch.save(ckpt, path)
    return str(path)


CHECKPOINTS = [("corrupt", "corrupt or truncated"), ("truncated", "corrupt or truncated"),
               ("damaged", "missing or malformed hyper"), ("other version", "does not match this version"),
               ("fit", "missing or malformed fit"), ("step", "missing or malformed step"),
               ("nan weights", "holds NaN or inf")]


@pytest.mark.parametrize("kind, expected", CHECKPOINTS)
def test_bad_checkpoint_to_score(kind, expected, files, tmp_path, capsys):
    archs = tmp_path / "archs.txt"
    archs.write_text(to_json(files["good"]) + "\n")
    fails_cleanly(["score", "--hypernet", broken_checkpoint(files, kind), "--archs", archs, "--dataset", files["data"]],
                  capsys, expected)


@pytest.mark.parametrize("kind, expected", CHECKPOINTS)
def test_bad_checkpoint_to_search(kind, expected, files, tmp_path, capsys):
    fails_cleanly(search_args(files, tmp_path, **{"--hypernet": broken_checkpoint(files, kind)}), capsys, expected)


def test_checkpoint_for_other_data(files, tmp_path, capsys):
    archs = tmp_path / "archs.txt"
    archs.write_text(to_json(files["good"]) + "\n")
    fails_cleanly(["score", "--hypernet", files["hypernet"], "--archs", archs, "--dataset", files["other_data"]],
                  capsys, "was trained for", "train a hypernetwork for this data")
    fails_cleanly(search_args(files, tmp_path, **{"--dataset": files["other_data"]}), capsys, "was trained for")


def test_checkpoint_for_another_space_is_refused_by_search(files, tmp_path, capsys):
    fails_cleanly(search_args(files, tmp_path, **{"--hypernet": files["nb201_hypernet"]}), capsys,
                  "was trained on space 'nb201'")


def test_score_reads_architectures_in_the_checkpoints_space(files, tmp_path, capsys):
    archs = tmp_path / "archs.txt"
    archs.write_text("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")  # NB201, but the net is tiny_cnn
    fails_cleanly(["score", "--hypernet", files["hypernet"], "--archs", archs, "--dataset", files["data"]], capsys,
                  "line 1", "reads architectures only as JSON")


# ---- storage -------------------------------------------------------------------------------------


def test_unreachable_storage_hides_the_password(files, tmp_path, capsys):
    url = "postgresql+psycopg://user:secret@127.0.0.1:1/db"
    err = fails_cleanly(search_args(files, tmp_path, **{"--storage": url}), capsys, "cannot open storage",
                        "user:***@127.0.0.1:1/db")
    assert "secret" not in err


def test_storage_url_without_scheme_hides_the_password(files, tmp_path, capsys):
    err = fails_cleanly(search_args(files, tmp_path, **{"--storage": "user:secret@localhost/db"}), capsys,
                        "cannot open storage")
    assert "secret" not in err


def test_sqlite_path_that_is_a_folder(files, tmp_path, capsys):
    fails_cleanly(search_args(files, tmp_path, **{"--storage": f"sqlite:///{tmp_path}"}), capsys,
                  "cannot open storage", "unable to open database file")


def test_sqlite_path_that_cannot_be_created(files, tmp_path, capsys):
    (tmp_path / "blocker").write_text("a file where the folder should be")
    fails_cleanly(search_args(files, tmp_path, **{"--storage": f"sqlite:///{tmp_path}/blocker/study.db"}), capsys,
                  "storage")


# ---- options that contradict each other ----------------------------------------------------------


@pytest.mark.parametrize("options, expected", [
    ({"--sampler": "grid", "--objectives": "score,params"}, "grid sampler serves one objective"),
    ({"--sampler": "local", "--objectives": "score,flops"}, "local sampler serves one objective"),
    ({"--sampler": "wlgp", "--objectives": "score,params"}, "wlgp sampler serves one objective"),
    ({"--objectives": "params"}, "objectives must start with 'score'"),
    ({"--objectives": "score,score"}, "objectives must start with 'score'"),
    ({"--trials": 0}, "--trials must be an integer >= 1"),
    ({"--trial-batch": 0}, "--trial-batch must be an integer >= 1"),
    ({"--warm-start": 300}, "warm_start 300 is more than the pool"),
    ({"--sampler": "cmaes"}, "--sampler must be one of tpe, gp, nsga2, random, grid, evolution, local, wlgp; got 'cmaes'"),
    ({"--sampler": "grid"}, "space 'tiny_cnn' has no finite grid"),
    ({"--channels": 4}, "does not take option(s) ['channels']"),
    ({"--device": "gpu0"}, "--device 'gpu0' is not a device"),
    ({"--threads": 0}, "--threads must be an integer >= 1"),
    ({"--hypernet": None, "--fit-meta-batch": 0}, "--fit-meta-batch must be an integer >= 1"),
])
def test_contradicting_search_options(options, expected, files, tmp_path, capsys):
    fails_cleanly(search_args(files, tmp_path, **options), capsys, expected)


@pytest.mark.parametrize("toml, expected", [
    ("space = 5\n", "study.toml: space must be a non-empty string, got 5"),
    ('space = "tiny_cnn"\n[fit]\nsteps = "many"\n', "study.toml: fit.steps must be an integer, got 'many'"),
    ('space = "tiny_cnn"\ntrials = "10"\n', "study.toml: trials must be an integer, got '10'"),
    ('space = "tiny_cnn"\nspace_options = 3\n', "space_options must be a table"),
])
def test_study_config_with_wrong_types(toml, expected, tmp_path, capsys):
    (tmp_path / "study.toml").write_text(toml)
    fails_cleanly(["search", "--config", tmp_path / "study.toml", "--runs", tmp_path], capsys, expected)


def test_negative_search_seed(files, tmp_path, capsys):
    fails_cleanly(search_args(files, tmp_path, **{"--seed": -1}), capsys, "--seed must be an integer >= 0")


@pytest.mark.parametrize("argv, expected", [
    (["train", "--batch-size", 0], "--batch-size must be an integer >= 1"),
    (["train", "--lr", -1], "--lr must be a finite number >= 0"),
    (["train", "--epochs", -1], "--epochs must be an integer >= 0"),
    (["train-hypernet", "--checkpoint-every", 0], "--checkpoint-every must be an integer >= 1"),
    (["train-hypernet", "--batch-size", 0], "--batch-size must be an integer >= 1"),
    (["train-hypernet", "--steps", -1], "--steps must be an integer >= 0"),
    (["train-hypernet", "--lr", 0], "--lr must be a finite number > 0"),
    (["train-hypernet", "--threads", -1], "--threads must be an integer >= 1"),
    (["train-hypernet", "--layer", "lstm"], "--layer must be one of mp, transformer; got 'lstm'"),
    (["train-hypernet", "--hidden", 0], "--hidden must be an integer >= 1"),
    (["train-hypernet", "--rounds", 0], "--rounds must be an integer >= 1"),
])
def test_bad_training_options(argv, expected, files, tmp_path, capsys):
    base = {"train": ["--space", "tiny_cnn", "--arch", files["dir"] / "good.json", "--dataset", files["data"]],
            "train-hypernet": ["--space", "tiny_cnn", "--dataset", files["data"], "--out", tmp_path / "h.pt"]}
    fails_cleanly(argv[:1] + base[argv[0]] + argv[1:], capsys, expected)
    assert not (tmp_path / "h.pt").exists()


def test_unwritable_outputs(files, tmp_path, capsys):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    fails_cleanly(["draw", "--space", "tiny_cnn", "--arch", files["dir"] / "good.json", "--num-classes", 3,
                   "--out", tmp_path / "blocker" / "a.png"], capsys, "cannot write", "a.png': File exists")
    fails_cleanly(["train-hypernet", "--space", "tiny_cnn", "--dataset", files["data"], "--steps", 1, "--meta-batch", 1,
                   "--batch-size", 8, "--out", tmp_path / "blocker" / "h.pt"], capsys, "cannot write checkpoint")


def test_study_rerun_with_another_space_is_refused(files, tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/study.db"
    assert main(search_args(files, tmp_path, **{"--storage": storage})) == 0
    capsys.readouterr()
    fails_cleanly(search_args(files, tmp_path, **{"--storage": storage, "--space": "nb201",
                                                  "--hypernet": files["nb201_hypernet"]}) + NB201, capsys,
                  "study 's' was scored with space = 'tiny_cnn'", "pick another --study")


# ---- checkpoint crash safety ----------------------------------------------------------------------


KILLED_WRITER = textwrap.dedent('''
    import sys, time
    import torch
    from hypernas.ghn import checkpoint

    real_save = torch.save

    class Stalls:
        """Passes writes through; after half the bytes, says so and hangs until killed."""
        def __init__(self, f, half):
            self.f, self.half, self.written = f, half, 0
        def write(self, b):
            n = self.f.write(b)
            self.written += len(b)
            if self.written >= self.half:
                self.f.flush()
                print("half written", flush=True)
                time.sleep(600)
            return n
        def flush(self):
            self.f.flush()

    torch.save = lambda obj, f: real_save(obj, Stalls(f, half=int(sys.argv[2])))
    state = {"format": checkpoint.FORMAT, "version": 2, "space": "tiny_cnn", "space_options": {},
             "data": {"dataset": "x.npz", "val_fraction": 0.1, "split_seed": 0}, "hyper": {},
             "model": {"w": torch.ones(4_000_000)}}
    checkpoint.save_checkpoint(state, sys.argv[1])
''')


def checkpoint_state(version: int) -> dict:
    return {"format": FORMAT, "version": version, "space": "tiny_cnn", "space_options": {},
            "data": {"dataset": "x.npz", "val_fraction": 0.1, "split_seed": 0}, "hyper": {},
            "model": {"w": torch.arange(1000.0)}}


def test_checkpoint_write_killed_halfway_keeps_the_old_checkpoint(tmp_path):
    path = tmp_path / "hypernet.pt"
    save_checkpoint(checkpoint_state(1), str(path))
    old = path.read_bytes()
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), str(8_000_000)], stdout=subprocess.PIPE,
                            env=env, text=True)
    try:
        assert proc.stdout.readline().strip() == "half written"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert path.read_bytes() == old
    ckpt = load_checkpoint(str(path))
    assert ckpt["version"] == 1 and torch.equal(ckpt["model"]["w"], torch.arange(1000.0))
    # The killed write left its temporary file; it is hidden, named apart, and unreadable as a checkpoint.
    litter = [p for p in tmp_path.iterdir() if p != path]
    assert len(litter) == 1 and litter[0].name.startswith(".hypernas-") and litter[0].name.endswith(".tmp")
    assert litter[0].stat().st_size >= 8_000_000
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(str(litter[0]))
    # The next write goes through as usual.
    save_checkpoint(checkpoint_state(3), str(path))
    assert load_checkpoint(str(path))["version"] == 3


def test_checkpoint_data_is_synced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append("replace") or real_replace(a, b))
    save_checkpoint(checkpoint_state(1), str(tmp_path / "h.pt"))
    assert events[:2] == ["fsync", "replace"]  # then the folder is synced, where the system allows it


def test_unwritable_checkpoint_path_is_a_clear_error(tmp_path):
    (tmp_path / "blocker").write_text("a file where the folder should be")
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        save_checkpoint(checkpoint_state(1), str(tmp_path / "blocker" / "h.pt"))


def test_every_good_checkpoint_still_loads(files):
    hypernet = load_hypernet(files["hypernet"], data=load_dataset(files["data"]))
    ghn, ckpt = hypernet.model, hypernet.checkpoint
    assert ckpt["space"] == "tiny_cnn" and ckpt["step"] == 2 and not ghn.training


# ---- options checked before any work, each named --------------------------------------------------


@pytest.mark.parametrize("extra, toml, named", [
    (["--sampler-option", "n_startup_trials=x"], "", "sampler option n_startup_trials must be an integer, got 'x'"),
    ([], '[sampler_options]\ngamma = "a string"\n', "sampler option gamma must be"),
    (["--sampler-option", "gama=0.1"], "", "sampler 'tpe' takes no option 'gama'"),
    (["--sampler", "local", "--sampler-option", "startup=tpe", "--sampler-option",
      'startup_options={"n_startup_trials": "x"}'], "",
     "sampler option n_startup_trials must be an integer"),
])
def test_sampler_options_are_type_checked_before_any_training(extra, toml, named, files, tmp_path, capsys):
    (tmp_path / "s.toml").write_text(toml)
    fails_cleanly(search_args(files, tmp_path, **{"--hypernet": None, "--config": tmp_path / "s.toml"}) + extra, capsys,
                  named)
    assert not (tmp_path / "s").exists()  # no hypernetwork trained, no study made


@pytest.mark.parametrize("option, named", [
    ("channels=abc", "space 'nb201': option channels must be an integer (its default is 16), got 'abc'"),
    ("cells=2.5", "option cells must be an integer"),
])
def test_space_options_are_type_checked_by_name(option, named, capsys):
    fails_cleanly(["sample", "--space", "nb201", "--space-option", option], capsys, named)


def test_an_arch_that_names_a_folder_or_a_missing_file_is_not_read_as_a_string(files, tmp_path, capsys):
    base = ["draw", "--space", "nb201", "--out", tmp_path / "a.png", "--arch"]
    fails_cleanly(base + [tmp_path], capsys, "is a folder, not an architecture file")
    fails_cleanly(base + [tmp_path / "missing.json"], capsys, "no architecture file", "missing.json")
    assert not (tmp_path / "a.png").exists()


def test_the_seed_bound_is_printed_as_an_integer(tmp_path, capsys):
    fails_cleanly(["search", "--space", "nb201", "--runs", tmp_path, "--seed", 2**32], capsys,
                  "--seed must be an integer <= 4294967295, got 4294967296")


@pytest.mark.parametrize("argv", [["train", "--space", "tiny_cnn", "--arch", "good.json", "--epochs", 1],
                                  ["score", "--hypernet", "tiny_cnn.pt", "--archs", "good.json"]])
def test_a_device_that_does_not_compute_is_refused(argv, files, capsys):
    argv = [str(files["dir"] / a) if a in ("good.json", "tiny_cnn.pt") else a for a in argv]
    fails_cleanly(argv + ["--dataset", files["data"], "--device", "meta"], capsys, "--device 'meta'", "cpu, cuda")


@pytest.mark.parametrize("device, named", [("banana", "--device 'banana' is not a device"),
                                           ("meta", "--device 'meta'"),
                                           pytest.param("cuda", "no CUDA device", marks=pytest.mark.skipif(
                                               torch.cuda.is_available(), reason="this machine has CUDA"))])
def test_the_config_and_python_device_is_checked_as_the_flag_is(device, named, files, tmp_path, capsys):
    (tmp_path / "s.toml").write_text(f'device = "{device}"\n')
    fails_cleanly(search_args(files, tmp_path, **{"--config": tmp_path / "s.toml"}), capsys, named)
    from hypernas.config import SearchConfig
    from hypernas.errors import OptionError

    with pytest.raises(OptionError, match=named):
        SearchConfig(space="tiny_cnn", device=device)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("samples", [10**20, 1001, 0])
def test_score_samples_are_bounded_as_the_search_bounds_them(samples, files, capsys):
    fails_cleanly(["score", "--hypernet", files["hypernet"], "--archs", files["dir"] / "good.json", "--dataset",
                   files["data"], "--samples", samples], capsys, "--samples must be an integer")


def test_score_shows_progress_over_many_draws_of_few_architectures(files, capsys, monkeypatch):
    from hypernas import cli

    monkeypatch.setattr(cli, "PROGRESS_DRAWS", 3)
    archs = files["dir"] / "good.json"
    assert main(["score", "--hypernet", files["hypernet"], "--archs", str(archs), "--dataset", files["data"],
                 "--samples", "4"]) == 0
    assert "score:" in capsys.readouterr().err


@pytest.mark.parametrize("hypernet", ["hypernet", "nb201_hypernet"])
def test_a_line_of_deeply_nested_brackets_is_one_short_line(hypernet, files, capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("[" * 200_000 + "\n"))
    err = fails_cleanly(["score", "--hypernet", files[hypernet], "--archs", "-", "--dataset", files["data"]], capsys,
                        "line 1")
    assert len(err) < 500, len(err)
