"""`python -m benchmarks.speed` end to end in a tiny configuration: it trains its own hypernetwork."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import speed


@pytest.mark.slow  # 45 s: it trains a hypernetwork, then times scoring and training
def test_without_a_checkpoint_it_trains_one_and_reports_scoring_and_training(tmp_path, capsys):
    md = tmp_path / "out" / "speed.md"
    rows = speed.main(["--spaces", "nb201", "--layers", "mp,transformer", "--archs", "8", "--repeats", "1",
                       "--train-steps", "2", "--fit-steps", "2", "--threads", "1", "--out-md", str(md)])
    out, err = capsys.readouterr()

    assert [(r["phase"], r["space"], r["layer"]) for r in rows] == [
        ("score", "nb201", "mp"), ("score", "nb201", "transformer"), ("train", "nb201", "mp"),
        ("train", "nb201", "transformer")]
    score, _, train, _ = rows
    assert score["space_options"] == {"channels": 8, "cells": 1} and score["archs"] == 8
    assert score["archs_per_second"] > 0 and score["score_seconds"] > 0 and score["forward_seconds"] > 0
    assert score["ratio"] > 0 and len(score["ratios"]) == 1 and score["ratio"] == pytest.approx(score["ratios"][0])
    assert score["peak_rss_mib_with_baseline"] >= score["peak_rss_mib"] >= score["startup_rss_mib"] > 0
    assert train["steps"] == 2 and train["steps_per_second"] > 0
    assert train["peak_rss_mib"] >= train["startup_rss_mib"] > 0
    assert {r["device"] for r in rows} == {"cpu"} and not any("peak_gpu_mib" in r for r in rows)

    # One JSON line per phase on stdout, as returned; progress on stderr, one line per phase.
    assert [json.loads(line) for line in out.splitlines() if line.startswith("{")] == rows
    progress = [line for line in err.splitlines() if line.startswith("[speed]")]
    assert len(progress) == 6 and "training a nb201" in progress[0] and "scoring nb201" in progress[2]

    # The Markdown table: printed at the end and written to --out-md, one row per phase.
    text = md.read_text()
    assert text.startswith("Command: `python -m benchmarks.speed --spaces nb201 --layers mp,transformer --archs 8 ")
    assert out.rstrip().endswith(text.rstrip())
    body = [line.split(" | ") for line in text.splitlines() if line.startswith("| nb201")]
    assert [(cells[0], cells[1]) for cells in body] == [
        ("| nb201 (channels=8, cells=1), mp layers", "scoring, auto"),
        ("| nb201 (channels=8, cells=1), transformer layers", "scoring, auto"),
        ("| nb201 (channels=8, cells=1), mp layers", "training"), ("| nb201 (channels=8, cells=1), transformer layers", "training")]
    assert body[0][4].endswith("archs/s") and body[2][4].endswith("steps/s")
    assert float(body[0][5].split("**")[1]) == pytest.approx(score["ratio"], abs=0.005)


def test_each_execution_is_timed_side_by_side(tmp_path):
    rows = speed.main(["--spaces", "nb201", "--execution", "each,together", "--archs", "8", "--repeats", "1",
                       "--train-steps", "0", "--fit-steps", "1", "--threads", "1"])
    assert [(r["phase"], r["execution"]) for r in rows] == [("score", "each"), ("score", "together")]
    assert all(r["archs_per_second"] > 0 for r in rows)


def test_unknown_space_layer_or_execution_is_refused():
    with pytest.raises(SystemExit):
        speed.main(["--execution", "each,fast"])
    with pytest.raises(SystemExit):
        speed.main(["--spaces", "nb201,nope"])
    with pytest.raises(SystemExit):
        speed.main(["--layers", "mp,lstm"])


def test_a_device_this_machine_lacks_is_refused_before_any_work(monkeypatch, capsys):
    monkeypatch.setattr(speed.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        speed.main(["--device", "cuda", "--archs", "2"])
    assert "no CUDA device is available here" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        speed.main(["--device", "tpu7"])
    assert "is not a device" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_scoring_and_training_run_there_and_report_gpu_memory():
    rows = speed.main(["--spaces", "nb201", "--archs", "8", "--repeats", "1", "--train-steps", "2",
                       "--fit-steps", "2", "--threads", "1", "--device", "cuda"])
    assert [r["phase"] for r in rows] == ["score", "train"]
    assert all(r["device"] == "cuda" and r["peak_gpu_mib"] > 0 for r in rows)
    assert rows[0]["archs_per_second"] > 0 and rows[1]["steps_per_second"] > 0


@pytest.mark.slow
def test_the_image_sized_workload_is_measured(capsys):
    from benchmarks import speed

    rows = speed.main(["--workload", "images", "--spaces", "macro", "--archs", "2", "--repeats", "1", "--fit-steps", "1",
                       "--train-steps", "1", "--threads", "1"])
    score = next(r for r in rows if r["phase"] == "score")
    assert score["space"] == "macro" and score["archs_per_second"] > 0 and score["val_samples"] == 500
    assert "random_images" in capsys.readouterr().out
