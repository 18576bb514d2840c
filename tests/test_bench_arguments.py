"""Every benchmark refuses a bad command line before any work: an unknown flag, and a value
out of an option's range, each end in argparse's exit status 2 with one error line naming it."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import pytest

import benchmarks

BENCHES = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__)
                 if not m.ispkg and hasattr(importlib.import_module(f"benchmarks.{m.name}"), "main"))


def _bad_value(config: type) -> tuple[str, str] | None:
    """(an option's name, a value it refuses): below the first lower bound of a number option,
    else outside the first list of choices, nested configs included."""
    fields = [f for f in dataclasses.fields(config) if f.metadata and f.metadata.get("flag", True)]
    for f in fields:
        low = f.metadata.get("low")
        if low is not None and isinstance(f.default, (int, float)) and not isinstance(f.default, bool):
            return f.name, str(low - 1)
    for f in fields:
        if isinstance(f.metadata.get("choices"), tuple):
            return f.name, "no-such-choice"
    nested = [f.default for f in fields if dataclasses.is_dataclass(f.default)]
    return next((bad for bad in map(_bad_value, map(type, nested)) if bad), None)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "nothing was said"
    return err[-1]


def test_every_benchmark_is_covered():
    assert {"budget", "dynamic", "fidelity", "init", "latency", "noise", "protocol", "sampler_overhead",
            "search_report", "workers"} <= set(BENCHES)


@pytest.mark.parametrize("name", BENCHES)
def test_an_unknown_flag_is_one_error_line(name, capsys):
    bench = importlib.import_module(f"benchmarks.{name}")
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--no-such-flag", "1"])
    assert exit_.value.code == 2
    line = _error_line(capsys)
    assert "error:" in line and "--no-such-flag" in line, line


@pytest.mark.parametrize("name", BENCHES)
def test_a_value_out_of_range_is_one_error_line(name, capsys):
    bench = importlib.import_module(f"benchmarks.{name}")
    bad = _bad_value(bench.Config)
    assert bad is not None, f"benchmarks.{name} has no option with a bound or choices to refuse"
    key, value = bad
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--" + key.replace("_", "-"), value])
    assert exit_.value.code == 2
    line = _error_line(capsys)
    assert "error:" in line and key.replace("_", "-") in line.replace("_", "-"), line


def documented_commands() -> list[tuple[str, list[str]]]:
    """Every `python -m benchmarks.NAME ...` that BENCHMARKS.md, the README and the history
    print in backticks or code blocks, as (NAME, its flags)."""
    import pathlib
    import re
    import shlex

    root = pathlib.Path(__file__).resolve().parent.parent
    found = []
    for doc in ("BENCHMARKS.md", "README.md"):
        text = (root / doc).read_text()
        for line in re.findall(r"python -m benchmarks\.(\w+)([^`\n]*)", text):
            name, rest = line
            rest = rest.split("&&")[0].split(";")[0].split("|")[0].split(">")[0]  # the command alone
            if not name.islower() or re.search(r"\.\.\.|\$|&|\bK/|\b[A-Z]{3,}\b", rest) or not rest.strip():
                continue  # a pattern (NAME, ARM, ...), a shell loop, or the bench named without a command
            found.append((name, shlex.split(rest.replace("\\", ""))))
    return found


@pytest.mark.parametrize("name, argv", documented_commands(), ids=lambda v: v if isinstance(v, str) else None)
def test_every_documented_bench_command_parses_as_written(name, argv):
    from benchmarks.core.report import parse

    bench = importlib.import_module(f"benchmarks.{name}")
    parse(bench.Config, argv, f"python -m benchmarks.{name}", bench.__doc__)  # exits 2 on a flag it lacks
