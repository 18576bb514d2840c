"""What the benchmarks share: truths and their tables, one convention for every statistic, picks and reports."""
