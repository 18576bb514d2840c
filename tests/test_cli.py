"""The command line: each command works, and bad input gives one line on stderr and exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import GOOD_CELL, fails_cleanly

from hypernas.cli import main
from hypernas.graph import from_json


def test_spaces_lists_sizes(capsys):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    assert "nb201" in out and "15625" in out and "macro" in out


def test_sample_is_deterministic(capsys):
    main(["sample", "--space", "nb201", "-n", "5", "--seed", "0"])
    first = capsys.readouterr().out.splitlines()
    main(["sample", "--space", "nb201", "-n", "5", "--seed", "0"])
    assert capsys.readouterr().out.splitlines() == first
    assert len(first) == 5 and all(line.startswith("|") for line in first)
    main(["sample", "--space", "macro", "-n", "2", "--seed", "0"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(from_json(line) for line in lines)
    main(["sample", "--space", "nb201", "-n", "1", "--format", "json", "--channels", "8", "--cells", "1"])
    assert json.loads(capsys.readouterr().out)["graph"]["arch"].startswith("|")


def test_train_json_output(capsys, tmp_path, mnist1d):
    assert main(["train", "--space", "nb201", "--arch", GOOD_CELL, "--channels", "4", "--cells", "1",
                 "--epochs", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"test_accuracy", "params", "seconds"} <= set(out) and 0 <= out["test_accuracy"] <= 1
    # the same architecture given as a JSON file
    main(["sample", "--space", "tiny_cnn", "-n", "1", "--seed", "1"])
    path = tmp_path / "arch.json"
    path.write_text(capsys.readouterr().out)
    assert main(["train", "--space", "tiny_cnn", "--arch", str(path), "--epochs", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] > 0


def test_train_hypernet_takes_the_hypernetworks_size(tmp_path, mnist1d):
    import torch

    out = tmp_path / "h.pt"
    assert main(["train-hypernet", "--space", "nb201", "--dataset", "mnist1d", "--channels", "2", "--cells", "1",
                 "--steps", "1", "--meta-batch", "1", "--batch-size", "8", "--hidden", "8", "--rounds", "1",
                 "--rank", "4", "--out", str(out)]) == 0
    hyper = torch.load(out, weights_only=True)["hyper"]
    assert hyper["hidden"] == 8 and hyper["rounds"] == 1 and hyper["rank"] == 4


def test_draw_writes_a_png(tmp_path):
    out = tmp_path / "a.png"
    assert main(["draw", "--space", "nb201", "--arch", GOOD_CELL, "--channels", "4", "--cells", "1", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, message", [
    (["sample", "--space", "nb2O1"], "unknown space 'nb2O1'. Did you mean 'nb201'"),
    (["sample", "--space", "macro", "--channels", "8"], "does not take option"),
    (["train", "--space", "nb201", "--arch", "|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|"], "unknown NB201 op"),
    (["train", "--space", "nb201", "--arch", GOOD_CELL, "--dataset", "missing.npz"], "does not exist"),
    (["train", "--space", "nb201", "--arch", "{\"nodes\": [}"], "not a valid architecture JSON"),
    (["sample", "--space", "nb201", "--space-option", "cells"], "KEY=VALUE"),
])
def test_bad_input_is_one_clear_line(argv, message, capsys):
    fails_cleanly(argv, capsys, message)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_one_clear_line(capsys):
    assert main(["train", "--space", "nb201", "--arch", GOOD_CELL, "--device", "cuda"]) == 1
    assert "no CUDA device" in capsys.readouterr().err


def test_console_script_runs():
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.run([sys.executable, "-m", "hypernas.cli", "sample", "--space", "nb201", "-n", "1"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("|")


def test_a_mistyped_flag_gets_a_did_you_mean(capsys):
    for argv, suggested in ((["search", "--space", "nb201", "--tiral", "5"], "did you mean --trials?"),
                            (["export", "--trail", "best", "--out", "x"], "did you mean --trial?")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and suggested in capsys.readouterr().err


def test_search_help_is_grouped_and_every_generated_flag_is_in_its_group(capsys):
    import dataclasses

    from hypernas.cli import build_parser
    from hypernas.config import SearchConfig
    from hypernas.options import _walk

    search = build_parser().subcommands["search"]
    titles = {g.title: {o for a in g._group_actions for o in a.option_strings} for g in search._action_groups}
    assert {"search", "limits", "final stage", "hypernetwork", "storage"} <= set(titles)
    for path, f, _, group in _walk(SearchConfig):
        if f.metadata.get("flag", True):
            flag = "--" + "-".join(path).replace("_", "-")
            assert group and flag in titles[group], (flag, group)
    assert {"--max-params", "--max-flops", "--max-latency"} == titles["limits"]
    assert "--fit-steps" in titles["hypernetwork"] and "--top-k" in titles["final stage"]
    assert all(f.metadata.get("group") for f in dataclasses.fields(SearchConfig))  # declared once, on each field


def test_every_command_prints_its_help(capsys):
    """A help text with a bare % ("its 95% interval") once made `hypernas search --help` a traceback."""
    from hypernas.cli import build_parser

    commands = build_parser().subcommands
    for name in commands:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0 and "usage:" in capsys.readouterr().out, name
    assert "95%" in commands["search"].format_help()  # shown as written, not doubled


def test_options_shared_with_the_search_have_its_default_on_every_command():
    from hypernas.cli import build_parser
    from hypernas.config import FitConfig, SearchConfig

    commands = build_parser().subcommands
    shared = {"seed": SearchConfig.seed, "device": SearchConfig.device, "study": SearchConfig.study,
              "samples": None, "storage": None, "runs": None}  # None: unset, the search's default applies
    seen = set()
    for name, parser in commands.items():
        if name == "search":
            continue
        for action in parser._actions:
            if action.dest in shared:
                seen.add(action.dest)
                # None: a config's flag, unset unless given, so that its field's default applies
                assert parser.get_default(action.dest) in (shared[action.dest], None), (name, action.dest)
    assert seen == set(shared)
    assert FitConfig.seed == SearchConfig.seed  # train-hypernet's --seed is FitConfig's
