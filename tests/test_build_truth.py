"""The truth tables: their hash column is current, their draws reproduce, and the builder resumes."""

from __future__ import annotations

import csv

import pytest

from benchmarks.build_truth import jobs, main
from benchmarks.core.tables import SPACE_OPTIONS, arch_graph, draw_archs, table_path
from hypernas.graph import canonical_hash, param_count
from hypernas.spaces import get_space
from search_spaces import nb201

PROTOCOL = SPACE_OPTIONS["nb201"]
DEFAULT_TABLE = table_path("nb201_mnist1d.csv")
DEV_TABLE = DEFAULT_TABLE.replace(".csv", "_dev.csv")
EXTRA_SEEDS = DEFAULT_TABLE.replace(".csv", "_seeds2-5.csv")
DEV_EXTRA_SEEDS = DEFAULT_TABLE.replace(".csv", "_dev_seeds2-5.csv")
DIGITS_TABLE = DEFAULT_TABLE.replace("mnist1d", "digits")
TABLES_20K = [table_path("nb201_mnist1d_20k_even.csv"), table_path("nb201_mnist1d_20k_odd.csv")]  # two shards


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("path", [DEFAULT_TABLE, DEV_TABLE, EXTRA_SEEDS, DEV_EXTRA_SEEDS, DIGITS_TABLE, *TABLES_20K])
def test_stored_hashes_match_the_current_canonical_hash(path):
    for r in rows(path):
        assert canonical_hash(nb201.from_string(r["arch"], 1, 10, **PROTOCOL)) == r["hash"], r["arch"]


def test_the_tables_are_the_documented_draws():
    space = get_space("nb201")
    reference = [r["arch"] for r in rows(DEFAULT_TABLE) if r["seed"] == "0"]
    assert draw_archs(space, 300, 0) == reference
    exclude = {r["hash"] for r in rows(DEFAULT_TABLE)}
    assert draw_archs(space, 80, 1, exclude) == [r["arch"] for r in rows(DEV_TABLE) if r["seed"] == "0"]
    assert draw_archs(space, 100, 0) == [r["arch"] for r in rows(DIGITS_TABLE) if r["seed"] == "0"]  # the first 100


def test_the_20k_tables_are_the_reference_cells_in_order_each_with_its_shards_seeds():
    reference = draw_archs(get_space("nb201"), 300, 0)
    for path, parity in zip(TABLES_20K, (0, 1)):
        table = rows(path)
        archs = list(dict.fromkeys(r["arch"] for r in table))  # in the order they were trained
        assert len(archs) == 143 and archs == reference[:len(archs)]
        seeds = {int(r["seed"]) for r in table}
        assert seeds == set(range(parity, 24, 2)) and len(table) == 143 * 12  # every cell with each of its seeds


def test_the_macro_20k_tables_are_the_reference_networks_in_order_whole_but_the_last():
    """Built in the background across sittings: each shard's file is a prefix of the reference
    draw, every network but the one under way with all of its shard's seeds."""
    paths = [table_path(f"macro_mnist1d_20k_{parity}.csv") for parity in ("even", "odd")]
    trained = [list(dict.fromkeys(r["arch"] for r in rows(path))) for path in paths]
    reference = draw_archs(get_space("macro"), max(map(len, trained)), 0)
    for path, archs, parity in zip(paths, trained, (0, 1)):
        assert len(archs) >= 30 and archs == reference[:len(archs)]
        seeds = {}
        for r in rows(path):
            seeds.setdefault(r["arch"], []).append(int(r["seed"]))
        assert all(seeds[a] == list(range(parity, 16, 2)) for a in archs[:-1])
        assert seeds[archs[-1]] == list(range(parity, 16, 2))[:len(seeds[archs[-1]])]


def test_shards_split_the_jobs_exactly_once():
    cells, seeds = ["a", "b", "c", "d", "e"], (2, 3)
    shards = [jobs(cells, seeds, (k, 3)) for k in range(3)]
    assert sorted(j for shard in shards for j in shard) == sorted(jobs(cells, seeds))
    assert len(jobs(cells, seeds)) == 10


@pytest.mark.parametrize("shard", ["3/3", "x", "1/0", "-1/2"])
def test_a_bad_shard_is_a_clear_error(shard, capsys):
    with pytest.raises(SystemExit):
        main(["--shard", shard, "--out", "/nonexistent/never-written.csv"])
    assert "--shard" in capsys.readouterr().err


def test_a_table_for_another_dataset_counts_its_networks_in_its_own_dimensions(tmp_path, capsys):
    with pytest.raises(SystemExit):  # no table without a file of its own
        main(["--dataset", "digits", "--cells", "1"])
    assert "--out is required" in capsys.readouterr().err
    out = tmp_path / "digits.csv"
    main(["--dataset", "digits", "--cells", "1", "--seeds", "0", "--threads", "1", "--out", str(out)])
    (row,) = rows(out)
    G = nb201.from_string(row["arch"], 1, 10, **PROTOCOL)
    assert int(row["params"]) == param_count(G, 2) != param_count(G, 1)  # 3x3 kernels on images
    assert 0 <= float(row["test_accuracy"]) <= 1
    main(["--dataset", "digits", "--cells", "1", "--seeds", "0", "--threads", "1", "--out", str(out)])
    assert len(rows(out)) == 1  # a rerun resumes: nothing trained twice
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--cells", "2", "--seeds", "0", "--threads", "1", "--out", str(out)])  # resumed with another dataset
    assert "was made with another dataset: its networks are not mnist1d's" in capsys.readouterr().err
    assert rows(out) == [row]  # the table untouched


def test_extra_test_samples_and_weight_averaging_reach_the_rows(tmp_path):
    out = tmp_path / "t.csv"
    main(["--cells", "1", "--seeds", "0", "--threads", "1", "--test-samples", "2000", "--average-epochs", "2",
          "--out", str(out)])
    (row,) = rows(out)
    correct = float(row["test_accuracy"]) * 2000
    assert abs(correct - round(correct)) < 0.06 and 0.5 < float(row["test_accuracy"]) <= 1  # a share of 2,000
    with pytest.raises(SystemExit):
        main(["--dataset", "digits", "--cells", "1", "--test-samples", "100", "--out", str(tmp_path / "d.csv")])


MACRO_TABLE = table_path("macro_mnist1d_small.csv")
MACRO_DEV = MACRO_TABLE.replace(".csv", "_dev.csv")


def test_the_macro_tables_are_their_documented_draws_and_disjoint():
    macro = get_space("macro")
    reference = [r["arch"] for r in rows(MACRO_TABLE) if r["seed"] == "0"]
    assert len(reference) == 200 and draw_archs(macro, 200, 0) == reference
    for r in rows(MACRO_TABLE)[:40]:
        assert canonical_hash(arch_graph(macro, r["arch"], 1, 10)) == r["hash"]
    dev = [r["arch"] for r in rows(MACRO_DEV) if r["seed"] == "0"]
    exclude = {r["hash"] for r in rows(MACRO_TABLE)}
    assert len(dev) == 150 and draw_archs(macro, 150, 1, exclude) == dev
    assert not {r["hash"] for r in rows(MACRO_DEV)} & exclude
