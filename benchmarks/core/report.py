"""What every bench shares on its way out: its command line, its Markdown, and where both go.

A bench is a module with a frozen `Config` dataclass (fields declared with
`hypernas.options.option`, so each field is one flag), `run(config) -> result` and
`markdown(result) -> str`. `command` turns that pair into the module's `main`.

Usage:
    def main(argv=None):
        return command(Config, run, markdown, argv, prog="python -m benchmarks.budget", doc=__doc__)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.core.stats import Interval
from hypernas.errors import HypernasError, OptionError
from hypernas.options import add_flags, build, flag_of, given_flags, read_mapping


def parse(config_cls: type, argv: list[str] | None, prog: str, doc: str | None) -> tuple[Any, str | None]:
    """(the config the flags give, the `--out-md` path). A bad value is the parser's one-line
    error naming the flag."""
    ap = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n")[0])
    add_flags(ap, config_cls)
    ap.add_argument("--out-md", help="also write the Markdown result to this file")
    args = ap.parse_args(argv)
    try:
        return build(config_cls, read_mapping(config_cls, given_flags(args, config_cls), "command line", flag_of)), \
            args.out_md
    except OptionError as err:
        ap.error(str(err))


def command(config_cls: type, run: Callable[[Any], Any], markdown: Callable[[Any], str], argv: list[str] | None,
            prog: str, doc: str | None) -> Any:
    """Parse the flags into a config, run the bench, print (and write) its Markdown; return the
    result. A bad input or a failed run is one line on stderr and exit code 1, as in `hypernas`."""
    config, out_md = parse(config_cls, argv, prog, doc)
    with one_line_errors(prog):
        result = run(config)
    write_report(markdown(result), out_md)
    return result


@contextlib.contextmanager
def one_line_errors(prog: str):
    """Turn hypernas's own errors into `prog: error: <first line>` and exit code 1."""
    try:
        yield
    except HypernasError as err:
        print(f"{prog}: error: {str(err).splitlines()[0] if str(err) else type(err).__name__}", file=sys.stderr)
        raise SystemExit(1) from None


def write_report(text: str, out_md: str | None = None) -> None:
    """Print a bench's Markdown result and, if asked, write it to `out_md` (its folder made if missing)."""
    print(text, flush=True)
    if out_md:
        if os.path.dirname(out_md):
            os.makedirs(os.path.dirname(out_md), exist_ok=True)
        with open(out_md, "w") as f:
            f.write(text + "\n")


def mean_sd(xs: Sequence[float], places: int = 4) -> str:
    """`mean ± sd` to `places` places (the mean alone for one value)."""
    return f"{statistics.fmean(xs):.{places}f}" + (f" ± {statistics.stdev(xs):.{places}f}" if len(xs) > 1 else "")


def compared(interval: Interval, higher_is_better: bool = True, places: int = 4) -> str:
    """A difference with its interval and verdict, as one table cell."""
    return f"{interval.format(places)} {interval.verdict(higher_is_better)}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table's lines."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]
