"""One-off measurements behind docs/history.md: development-table experiments, kept runnable, not benchmarks."""
