"""The benchmarks behind BENCHMARKS.md (`hypernas bench NAME --help`)."""

from __future__ import annotations

import os


def report(text: str, out_md: str | None = None) -> None:
    """Print a bench's Markdown result and, if asked, write it to `out_md` (its folder made if missing).

    Usage: report(markdown_text, args.out_md)
    """
    print(text, flush=True)
    if out_md:
        if os.path.dirname(out_md):
            os.makedirs(os.path.dirname(out_md), exist_ok=True)
        with open(out_md, "w") as f:
            f.write(text + "\n")
