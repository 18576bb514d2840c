"""`hypernas bench retraining`: more training runs of the reference cells, scored against its truth."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy.stats import kendalltau

from hypernas.bench import ranking, retraining
from hypernas.bench.ground_truth import DEFAULT_TABLE
from hypernas.bench.table import Table, read_table
from hypernas.errors import HypernasError


def write_table(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, ["arch", "seed", "test_accuracy"])
        writer.writeheader()
        writer.writerows({"arch": a, "seed": s, "test_accuracy": acc} for a, s, acc in rows)


@pytest.mark.filterwarnings("ignore:An input array is constant")  # the constant mean, on purpose
def test_runs_equal_to_the_truth_get_tau_one_and_noise_lowers_it(tmp_path):
    truth_path, extra_path = tmp_path / "truth.csv", tmp_path / "extra.csv"
    accs = {f"cell{i}": 0.5 + 0.04 * i for i in range(10)}
    write_table(truth_path, [(a, s, v) for a, v in accs.items() for s in (0, 1)])
    # seed 2 is the truth exactly (a perfect scorer); seed 3 reverses it; their mean is constant
    write_table(extra_path, [(a, 2, v) for a, v in accs.items()] + [(a, 3, 1.4 - v) for a, v in accs.items()])
    rows = retraining.main(["--table", str(truth_path), "--extra", str(extra_path),
                            "--out-md", str(tmp_path / "r.md")])
    one, two = rows
    assert (one["runs"], one["combinations"], two["runs"], two["combinations"]) == (1, 2, 2, 1)
    tau_mean, tau_min, tau_max = one["kendall_tau"]
    assert tau_max == pytest.approx(1.0) and tau_min == pytest.approx(-1.0) and tau_mean == pytest.approx(0.0)
    assert two["kendall_tau"][0] == 0.0  # a constant scorer ranks nothing
    assert "| one more training run | 2 |" in (tmp_path / "r.md").read_text()


@pytest.mark.parametrize("table", [DEFAULT_TABLE, DEFAULT_TABLE.replace(".csv", "_dev.csv")])
def test_the_shipped_runs_cover_the_tables_cells_with_seeds_of_their_own(table):
    truth, extra = read_table(table), read_table(table.replace(".csv", "_seeds2-5.csv"))
    assert sorted(extra.archs) == sorted(truth.archs) and sorted(extra.by_seed) == [2, 3, 4, 5]
    rows = retraining.retraining_rows(truth, extra)
    assert [r["runs"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert -1 <= r["kendall_tau"][1] <= r["kendall_tau"][0] <= r["kendall_tau"][2] <= 1


def test_missing_cells_or_shared_seeds_are_clear_errors(tmp_path):
    truth_path, extra_path = tmp_path / "truth.csv", tmp_path / "extra.csv"
    write_table(truth_path, [(a, s, 0.5) for a in ("a", "b", "c") for s in (0, 1)])
    write_table(extra_path, [(a, 2, 0.5) for a in ("a", "b")])
    with pytest.raises(HypernasError, match="lack 1 of the table's 3 cells, e.g. c"):
        retraining.main(["--table", str(truth_path), "--extra", str(extra_path)])
    write_table(extra_path, [(a, 1, 0.5) for a in ("a", "b", "c")])
    with pytest.raises(HypernasError, match=r"seeds \[1\] are in both tables"):
        retraining.main(["--table", str(truth_path), "--extra", str(extra_path)])
    with pytest.raises(SystemExit):
        retraining.main(["--extra", str(tmp_path / "nowhere.csv")])
    # beside a table, such runs only cost `bench ranking` its ceiling line, which says why
    write_table(tmp_path / "truth_seeds2-5.csv", [(a, 1, 0.5) for a in ("a", "b", "c")])
    (note,) = ranking.ceiling_note(str(truth_path), read_table(str(truth_path)))
    assert note.startswith("No ceiling from truth_seeds2-5.csv: seeds [1] are in both tables")
    assert ranking.ceiling_note(str(tmp_path / "alone.csv"), read_table(str(truth_path))) == []


def test_the_perfect_scorer_tau_is_recovered_from_noisy_runs_alone():
    # Cells with a known expected accuracy, every run that plus Gaussian noise: the extrapolation
    # from 1-4 extra runs must find the tau of the expected accuracy itself against the truth.
    rng = np.random.default_rng(0)
    expected = rng.normal(size=1500)
    runs = {s: expected + rng.normal(scale=0.7, size=expected.size) for s in range(6)}
    archs = [f"cell{i}" for i in range(expected.size)]
    truth = Table(archs, {s: list(runs[s]) for s in (0, 1)})
    extra = Table(archs, {s: list(runs[s]) for s in (2, 3, 4, 5)})
    rows = retraining.retraining_rows(truth, extra)
    exact = kendalltau(expected, (runs[0] + runs[1]) / 2)[0]
    assert rows[-1]["kendall_tau"][0] < exact - 0.02  # four runs are still short of it
    assert retraining.perfect_scorer_tau(rows) == pytest.approx(exact, abs=0.02)
    low, high = retraining.perfect_scorer_interval(truth, extra, resamples=20)
    assert low < retraining.perfect_scorer_tau(rows) < high and high - low < 0.1
    assert retraining.perfect_scorer_tau(rows[:1]) is None  # one point fits no curve
