"""`python -m benchmarks.noise`: each truth's noise beside the spread it judges."""

from __future__ import annotations

from benchmarks import noise
from benchmarks.core.stats import Interval
from benchmarks.core.tables import merged_table
from benchmarks.core.truths import TRUTHS


def test_every_truth_reports_its_noise_against_its_spread():
    results = noise.run(noise.Config())
    assert [r["name"] for r in results] == list(TRUTHS)
    for r in results:
        n = r["noise"]
        assert n.seeds == len(merged_table(TRUTHS[r["name"]].tables).by_seed) >= 2
        assert 0 < n.spread < 0.1 and 0 < n.one_run < 0.1 and n.noise_of_mean < n.one_run
        assert r["archs"] >= 20 and -1 <= r["seed_tau"] <= 1 and -1 <= r["ceiling"] <= 1
        assert r["ratio"].estimate == n.ratio and r["ratio"].low <= n.ratio <= r["ratio"].high
    text = noise.markdown(results)
    assert all(f"| {name} |" in text for name in TRUTHS) and "ratio <= 0.5" in text and "ratio [95%]" in text
    assert noise._meets(Interval(0.4, 0.3, 0.49)) == "yes" and noise._meets(Interval(0.6, 0.51, 0.7)) == "no"
    assert noise._meets(Interval(0.51, 0.43, 0.6)) == "within noise"
