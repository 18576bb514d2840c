"""The table of a search's finalists, as the terminal prints it and the dashboard's note shows it.

Each finalist's true accuracy carries its 95% interval (`hypernas.certainty`), and the table
marks the best mean and the finalists tied with it, then says how the intervals were made and
which finalist the pick rule took among the tied: a table of five finalists a test sample
cannot tell apart must not read as a ranking.

Usage:
    print(final_table(rows, tau))                    # rows as `hypernas.finals.finalize` returns them
    note = final_table(rows, tau, markdown=True)     # the dashboard's note
"""

from __future__ import annotations

import optuna

COLUMNS = ("trial", "round", "picked for", "score ± std", "true accuracy [95%]", "runs", "tied", "params", "seconds",
           "architecture")
RULES = {"smallest": "the fewest parameters", "fastest": "the lowest latency", "score": "the highest score"}


def shown_arch(t: optuna.trial.FrozenTrial) -> str:
    """A finalist's architecture in full: the space's string form, or (for graph JSON, which
    runs to thousands of characters) the choices the trial made, which determine it."""
    arch = t.user_attrs["arch"]
    return arch if not arch.startswith("{") else ", ".join(f"{k}={v}" for k, v in sorted(t.params.items()))


def _tie_mark(row: dict) -> str:
    return "best" if row.get("best") else ("tied" if row.get("tied") else "")


def final_table(rows: list[dict], tau: float | None, markdown: bool = False) -> str:
    """The finalists, one row each: trial, round, why it was picked, score +- std, true
    accuracy with its 95% interval, training runs, whether it is the best or tied with it,
    params, seconds and architecture (last: the long one); then what the intervals cover, the
    pick among the tied, and the Kendall tau. Plain text for the terminal, where an architecture
    is copied whole into `hypernas train --arch`; with `markdown`, a table for the dashboard's
    note, where an NB201 string's `|` is escaped (it would split the cell)."""
    columns = COLUMNS
    cells = [[str(r["trial"]), str(r["round"]), r["reason"], f"{r['score']:.4f} ± {r['score_std']:.4f}",
              f"{r['trained_accuracy']:.4f} [{r['low']:.4f}, {r['high']:.4f}]", str(r["runs"]), _tie_mark(r),
              str(r["params"]), f"{r['seconds']:.1f}", r["arch"]] for r in rows]
    if any("rungs" in r for r in rows):  # after rungs: each finalist's validation accuracy after each
        columns = (*COLUMNS[:3], "rungs: validation accuracy", *COLUMNS[3:])
        cells = [[*c[:3], r.get("rungs", ""), *c[3:]] for c, r in zip(cells, rows)]
    if markdown:
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join([*c[:-1], "`" + c[-1].replace("|", "\\|") + "`"]) + " |" for c in cells]
    else:
        widths = [max(len(x) for x in column) for column in zip(columns, *cells)]
        lines = ["  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in (columns, *cells)]
    said = [*verdict_lines(rows), f"Kendall tau between score and true accuracy over these {len(rows)}: "
            + ("n/a" if tau is None else f"{tau:.3f}")]
    lines += ["", ("\n\n" if markdown else "\n").join(said)]  # markdown runs lines into one paragraph
    return "\n".join(lines)


def verdict_lines(rows: list[dict]) -> list[str]:
    """What the intervals cover and which finalist the pick rule took among those tied with the best."""
    if not rows:
        return []
    if rows[0]["interval"] == "seeds":
        covers = (f"95% intervals over training seeds ({min(r['runs'] for r in rows)} to {max(r['runs'] for r in rows)} "
                  "runs each, one run's sd pooled over the finalists)")
    else:
        covers = ("95% intervals cover the test sample only (Wilson), not the training seed, which moves a result "
                  "as much: train each finalist more than once to cover it (--final-seeds 3, --final-race)")
    tied = [r for r in rows if r.get("tied")]
    picked = next((r for r in rows if r.get("picked")), None)
    lines = [covers]
    if picked is not None and len(tied) > 1:
        lines.append(f"{len(tied)} finalists are tied with the best (their intervals overlap its); picked trial "
                     f"{picked['trial']}, {RULES[picked['rule']]} among them (--final-pick {picked['rule']}): what "
                     "`--trial best` exports")
    elif picked is not None:
        lines.append(f"trial {picked['trial']} stands apart from the others: what `--trial best` exports")
    return lines
