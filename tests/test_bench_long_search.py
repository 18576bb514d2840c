"""`python -m benchmarks.long_search`: the README's search phase alone, timed by phase."""

from __future__ import annotations

import pytest
from conftest import fit_config

from benchmarks import long_search
from hypernas.ghn.fit import fit_hypernet
from hypernas.spaces import get_space


def test_the_search_phase_is_split_into_its_steps(tmp_path, mnist1d, capsys):
    hypernet = str(tmp_path / "h.pt")
    fit_hypernet(get_space("nb201"), {"channels": 8, "cells": 1}, mnist1d,
                 fit_config(steps=2, meta_batch=2, batch_size=16, hidden=8, rounds=1, rank=2, eval_archs=2, warmup=1),
                 out=hypernet, progress=False)
    result = long_search.run(long_search.Config(hypernet=hypernet, trials=70, threads=1))
    phases = result["phases"]
    assert result["trials"] >= 70 and set(phases) == {"sampler", "scoring", "rest of the loop", "waiting for the storage"}
    assert all(s >= 0 for s in phases.values()) and sum(phases.values()) <= result["search"] + 1e-6
    assert phases["sampler"] > 0 and phases["scoring"] > 0
    assert "| search phase |" in long_search.markdown(result)
    with pytest.raises(SystemExit):
        long_search.main(["--trials", "10"])
    assert "--hypernet is required" in capsys.readouterr().err
