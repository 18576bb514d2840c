"""The shipped ground-truth tables: their hash column is current, and their draws reproduce."""

from __future__ import annotations

import csv

import pytest

from hypernas.bench.ground_truth import DEFAULT_TABLE, PROTOCOL, draw_cells, jobs, main
from hypernas.graph import canonical_hash, param_count
from search_spaces import nb201

DEV_TABLE = DEFAULT_TABLE.replace(".csv", "_dev.csv")
EXTRA_SEEDS = DEFAULT_TABLE.replace(".csv", "_seeds2-5.csv")
DEV_EXTRA_SEEDS = DEFAULT_TABLE.replace(".csv", "_dev_seeds2-5.csv")
DIGITS_TABLE = DEFAULT_TABLE.replace("mnist1d", "digits")


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("path", [DEFAULT_TABLE, DEV_TABLE, EXTRA_SEEDS, DEV_EXTRA_SEEDS, DIGITS_TABLE])
def test_stored_hashes_match_the_current_canonical_hash(path):
    for r in rows(path):
        assert canonical_hash(nb201.from_string(r["arch"], 1, 10, **PROTOCOL)) == r["hash"], r["arch"]


def test_the_tables_are_the_documented_draws():
    reference = [r["arch"] for r in rows(DEFAULT_TABLE) if r["seed"] == "0"]
    assert draw_cells(300, 0) == reference
    exclude = {r["hash"] for r in rows(DEFAULT_TABLE)}
    assert draw_cells(80, 1, exclude) == [r["arch"] for r in rows(DEV_TABLE) if r["seed"] == "0"]
    assert draw_cells(100, 0) == [r["arch"] for r in rows(DIGITS_TABLE) if r["seed"] == "0"]  # the first 100


def test_shards_split_the_jobs_exactly_once():
    cells, seeds = ["a", "b", "c", "d", "e"], [2, 3]
    shards = [jobs(cells, seeds, (k, 3)) for k in range(3)]
    assert sorted(j for shard in shards for j in shard) == sorted(jobs(cells, seeds))
    assert len(jobs(cells, seeds)) == 10


@pytest.mark.parametrize("shard", ["3/3", "x", "1/0", "-1/2"])
def test_a_bad_shard_is_a_clear_error(shard, capsys):
    with pytest.raises(SystemExit):
        main(["--shard", shard, "--out", "/nonexistent/never-written.csv"])
    assert "--shard" in capsys.readouterr().err


def test_a_table_for_another_dataset_counts_its_networks_in_its_own_dimensions(tmp_path, capsys):
    with pytest.raises(SystemExit):  # never appended to the MNIST-1D reference table
        main(["--dataset", "digits", "--cells", "1"])
    assert "needs an --out of its own" in capsys.readouterr().err
    out = tmp_path / "digits.csv"
    main(["--dataset", "digits", "--cells", "1", "--seeds", "0", "--threads", "1", "--out", str(out)])
    (row,) = rows(out)
    G = nb201.from_string(row["arch"], 1, 10, **PROTOCOL)
    assert int(row["params"]) == param_count(G, 2) != param_count(G, 1)  # 3x3 kernels on images
    assert 0 <= float(row["test_accuracy"]) <= 1
    main(["--dataset", "digits", "--cells", "1", "--seeds", "0", "--threads", "1", "--out", str(out)])
    assert len(rows(out)) == 1  # a rerun resumes: nothing trained twice
    with pytest.raises(SystemExit):  # resumed with another dataset: refused, the table untouched
        main(["--cells", "2", "--seeds", "0", "--threads", "1", "--out", str(out)])
    assert "was made with another dataset: its networks are not mnist1d's" in capsys.readouterr().err
    assert rows(out) == [row]


MACRO_TABLE = DEFAULT_TABLE.replace("nb201_mnist1d", "macro_mnist1d_small")
MACRO_DEV = MACRO_TABLE.replace(".csv", "_dev.csv")


def test_the_macro_tables_are_their_documented_draws_and_disjoint():
    from hypernas.bench.ground_truth import arch_graph, draw_archs
    from hypernas.spaces import get_space

    macro = get_space("macro")
    reference = [r["arch"] for r in rows(MACRO_TABLE) if r["seed"] == "0"]
    assert len(reference) == 200 and draw_archs(macro, 200, 0) == reference
    for r in rows(MACRO_TABLE)[:40]:
        assert canonical_hash(arch_graph(macro, r["arch"], 1, 10)) == r["hash"]
    dev = [r["arch"] for r in rows(MACRO_DEV) if r["seed"] == "0"]
    exclude = {r["hash"] for r in rows(MACRO_TABLE)}
    assert len(dev) == 150 and draw_archs(macro, 150, 1, exclude) == dev
    assert not {r["hash"] for r in rows(MACRO_DEV)} & exclude


def test_latency_is_added_once_per_network(tmp_path):
    import shutil

    out = tmp_path / "t.csv"
    with open(MACRO_TABLE, newline="") as f:
        head = f.readlines()[:5]  # the header and two networks of two seeds each
    out.write_text("".join(head))
    main(["--space", "macro", "--dataset", "mnist1d_small", "--latency", "--threads", "1", "--out", str(out)])
    table = rows(out)
    assert len(table) == 4 and all(float(r["latency_ms"]) > 0 for r in table)
    assert table[0]["latency_ms"] == table[1]["latency_ms"]  # one network, one measurement
    before = out.read_text()
    shutil.copy(out, tmp_path / "again.csv")
    main(["--space", "macro", "--dataset", "mnist1d_small", "--latency", "--threads", "1", "--out", str(out)])
    assert out.read_text() == before  # measured ones are kept
