"""The benchmarks behind BENCHMARKS.md, beside the package: run each as `python -m benchmarks.NAME --help`
from a checkout. They ship in no wheel; `benchmarks/core/` holds what they share (truths, tables,
statistics with one convention, picks, reports), `benchmarks/data/` the truth tables, and
`benchmarks/experiments/` the one-off scripts behind docs/history.md.
"""
