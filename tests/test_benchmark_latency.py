"""The latency benchmark (`python -m benchmarks.latency`) runs end to end on a tiny config."""

from __future__ import annotations

from benchmarks import latency


def test_the_latency_benchmark_compares_a_quiet_and_a_busy_pass(capsys):
    result = latency.main(["--archs", "3", "--channels", "2", "--busy", "1", "--seconds", "0.005"])
    assert len(result["rows"]) == 3 and result["limit_ms"] > 0
    for r in result["rows"]:
        assert r["quiet_ms"] > 0 and r["busy_ms"] > 0 and r["quiet_looks"] >= 1
    out = capsys.readouterr().out
    assert "| busy, the search's rule |" in out and "Same feasible set within the recorded spread:" in out
