"""`python -m benchmarks.budget`: the best architecture within a size or FLOPs limit, by each scorer.

On every shipped truth, with budgets at the 25th, 50th and 75th percentile of the table's
parameter counts and of its FLOPs: for each budget and scorer, the true accuracy of its top-1
pick within the budget and the best of its top 3 (what a user gets with `--top-k 3`), the
budget's best beside them, and the scorer's Kendall tau within the budget; and each scorer's
tau over the whole table. Every difference between the hypernetwork and another scorer comes
with its 95% interval, a paired bootstrap over the architectures and the hypernetwork runs,
and a verdict (`benchmarks.core.stats`).

Scorers: the hypernetwork's score, each of `--runs` hypernetworks trained on the train split
only (figures are mean ± sd over them); the largest network under the limit (`params`) and the
costliest (`flops`); naswot and synflow; one epoch of training; one training run of the full
protocol (seed 0, held out of the truth; tables of three seeds or more); random picks (their
exact expectation). Ties in a scorer are broken at random, averaged over many draws, so the
order of the table favours no scorer. Truth is the mean test accuracy over the truth's seeds.

The hypernetworks are read from `--hypernets DIR` as `TRUTH_sSEED.pt`, trained first where
missing (resumable), with the configuration given in `TRUTHS`; nothing is tuned on a table.

Usage:
    python -m benchmarks.budget --hypernets runs/budget --out-md runs/budget/budget.md
    python -m benchmarks.budget --truths macro_mnist1d_small --runs 3
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import numpy as np

from benchmarks.core.picks import TIE_DRAWS, random_picks, top_picks
from benchmarks.core.report import command, compared, mean_sd, table
from benchmarks.core.scorers import one_epoch_scorer, proxy_scorer
from benchmarks.core.stats import RESAMPLES, Interval, bootstrap, kendall_tau
from benchmarks.core.truths import Judged, Loaded, describe, load, with_fit
from hypernas.options import check, option

PERCENTILES = (25, 50, 75)
OTHER_SCORERS = ("params", "flops", "naswot", "synflow", "one_epoch")


@dataclass(frozen=True)
class Config:
    judged: Judged = option(Judged(), "the truths and hypernetworks judged")
    seed: int = option(0, "proxy weights, one-epoch training, tie-breaks and the bootstrap", low=0)
    resamples: int = option(RESAMPLES, "bootstrap resamples of each interval", low=10)
    # An arm of a development study: the hypernetworks' training options over each truth's own
    # (flat FitConfig keys); the seed stays each run's number. Python only (the experiments).
    fit: dict = field(default_factory=dict)

    def __post_init__(self):
        check(self)


def other_scorer(name: str, loaded: Loaded, seed: int) -> np.ndarray:
    """The scores of one scorer that is not the hypernetwork, in table order."""
    if name in ("params", "flops"):
        return getattr(loaded, name)
    scorer = one_epoch_scorer(loaded.data, seed) if name == "one_epoch" else proxy_scorer(name, loaded.data, seed)
    return np.array(scorer(loaded.graphs))


def budgets_of(loaded: Loaded) -> list[dict]:
    """The six budgets: a limit at each percentile of the parameter counts and of the FLOPs."""
    out = []
    for metric, size in (("params", loaded.params), ("flops", loaded.flops)):
        for q in PERCENTILES:
            out.append({"metric": metric, "percentile": q, "limit": float(np.percentile(size, q, method="lower")),
                        "size": size})
    return out


def measure(values: dict[str, list[np.ndarray]], acc: np.ndarray, budgets: list[dict], cells: np.ndarray,
            runs: np.ndarray, rng: np.random.Generator, draws: int) -> dict[str, float]:
    """Per scorer, on the architectures `cells` (with repeats, as a bootstrap draws them) and the
    hypernetwork runs `runs`: the gaps of its top 1 and best of 3 to each budget's best and its
    within-budget tau, averaged over the budgets (`S.gap1`, `S.gap3`, `S.tau`), its tau over the
    table (`S.whole`), and where the hypernetwork is among them, its lead over each other
    scorer in best-of-3 gap and in within-budget tau (`lead_gap3.S`, `lead_tau.S`)."""
    chosen = {s: [runs_of[r] for r in runs] if s == "hypernet" else runs_of for s, runs_of in values.items()}
    sums: dict[str, dict[str, float]] = {s: {"gap1": 0.0, "gap3": 0.0, "tau": 0.0} for s in [*chosen, "random"]}
    for b in budgets:
        within = cells[b["size"][cells] <= b["limit"]]
        truth = acc[within]
        best = truth.max()
        for s, vs in chosen.items():
            picks = [top_picks(v[within], truth, 3, rng, draws) for v in vs]
            sums[s]["gap1"] += best - statistics.fmean(p[0] for p in picks)
            sums[s]["gap3"] += best - statistics.fmean(p[1] for p in picks)
            sums[s]["tau"] += statistics.fmean(kendall_tau(v[within], truth) for v in vs)
        first, best_of_3 = random_picks(truth, 3)
        sums["random"]["gap1"] += best - first
        sums["random"]["gap3"] += best - best_of_3
    out = {f"{s}.{k}": v / len(budgets) for s, per in sums.items() for k, v in per.items()}
    out.update({f"{s}.whole": statistics.fmean(kendall_tau(v[cells], acc[cells]) for v in vs) for s, vs in chosen.items()})
    if "hypernet" in chosen:
        for s in [*chosen, "random"]:
            if s != "hypernet":
                out[f"lead_gap3.{s}"] = out[f"{s}.gap3"] - out["hypernet.gap3"]
                out[f"lead_tau.{s}"] = out["hypernet.tau"] - out[f"{s}.tau"]
    return out


def evaluate(loaded: Loaded, seed: int = 0, resamples: int = RESAMPLES) -> dict:
    """Every scorer's picks and taus on one loaded truth, budget by budget, with the intervals
    of the hypernetwork's leads."""
    acc = loaded.acc
    values = {"hypernet": loaded.scores, **{s: [other_scorer(s, loaded, seed)] for s in OTHER_SCORERS}}
    if loaded.held_out:
        values["one_run"] = [loaded.label]
    budgets = budgets_of(loaded)
    rng = np.random.default_rng(seed)
    cells, runs = np.arange(len(acc)), np.arange(len(loaded.scores))
    exact = measure(values, acc, budgets, cells, runs, rng, TIE_DRAWS)
    intervals = bootstrap(lambda c, r: measure(values, acc, budgets, c, r, rng, 1), len(acc), len(runs),
                          resamples=resamples, seed=seed, estimate=exact)
    # each hypernetwork run alone, for the mean ± sd over them
    hyper = [measure({"hypernet": loaded.scores}, acc, budgets, cells, np.array([r]), rng, TIE_DRAWS) for r in runs]
    per_run = {s: {k: [h[f"hypernet.{k}"] for h in hyper] if s == "hypernet" else [exact[f"{s}.{k}"]]
                   for k in ("gap1", "gap3", "tau", "whole")} for s in values}
    rows = []
    seed_taus = list(loaded.truth_table.by_seed.values())
    for b in budgets:
        within = np.flatnonzero(b["size"] <= b["limit"])
        row = {k: b[k] for k in ("metric", "percentile", "limit")} | {
            "archs": len(within), "best": float(acc[within].max()), "random": random_picks(acc[within], 3),
            "seed_tau": kendall_tau(np.array(seed_taus[0])[within], np.array(seed_taus[1])[within]), "scorers": {}}
        for s, runs_of in values.items():
            picks = [top_picks(v[within], acc[within], 3, rng) for v in runs_of]
            row["scorers"][s] = {"top1": [p[0] for p in picks], "top3": [p[1] for p in picks],
                                 "tau": [kendall_tau(v[within], acc[within]) for v in runs_of]}
        rows.append(row)
    return {"truth": describe(loaded), "budgets": rows, "per_run": per_run, "intervals": intervals,
            "random": {"gap1": exact["random.gap1"], "gap3": exact["random.gap3"]}}


def run(config: Config) -> list[dict]:
    """Every chosen truth's result (hypernetworks trained first where missing)."""
    import torch

    torch.set_num_threads(config.judged.threads)
    return [evaluate(load(name, with_fit(truth, config.fit), config.judged.trainings, config.judged.hypernets, train=True,
                          limit=config.judged.limit), config.seed, config.resamples)
            for name, truth in config.judged.chosen()]


def lead_cell(intervals: dict[str, Interval], key: str, scorer: str) -> str:
    return compared(intervals[f"{key}.{scorer}"], places=4 if key == "lead_gap3" else 3) \
        if f"{key}.{scorer}" in intervals else ""


def markdown_one(result: dict) -> str:
    t, iv = result["truth"], result["intervals"]
    lines = [f"### {t['name']}: {t['summary']}", "",
             "Averaged over the 6 budgets (25th/50th/75th percentile of params and of FLOPs): the gap of the top-1 "
             "pick and of the best of the top 3 to the budget's best, and the within-budget Kendall tau. The "
             "hypernetwork's lead: the other's best-of-3 gap minus the hypernetwork's, and the hypernetwork's "
             "within-budget tau minus the other's, each with its 95% interval and verdict.", ""]
    rows = []
    for s, v in result["per_run"].items():
        lead = ["", ""] if s == "hypernet" else [lead_cell(iv, "lead_gap3", s), lead_cell(iv, "lead_tau", s)]
        rows.append([s, mean_sd(v["gap1"]), mean_sd(v["gap3"]), mean_sd(v["tau"], 3), mean_sd(v["whole"], 3), *lead])
    rows.append(["random", f"{result['random']['gap1']:.4f}", f"{result['random']['gap3']:.4f}", "", "",
                 lead_cell(iv, "lead_gap3", "random"), ""])
    lines += table(["scorer", "top-1 gap", "best-of-3 gap", "within-budget tau", "tau over the whole table",
                    "best of 3: hypernetwork's lead", "within-budget tau: hypernetwork's lead"], rows)
    others = [s for s in [*result["per_run"], "random"] if s != "hypernet"]
    verdicts = {s: iv[f"lead_gap3.{s}"].verdict() for s in others}
    ahead_all = all(v == "ahead" for v in verdicts.values())
    lines += ["", f"Best of 3 under a limit, the hypernetwork ahead of every other scorer: {'yes' if ahead_all else 'no'} "
                  f"(" + "; ".join(f"{s}: {v}" for s, v in verdicts.items()) + ")."]
    if "lead_tau.one_run" in iv:
        lines.append(f"Within-budget tau against one training run: {compared(iv['lead_tau.one_run'], places=3)}.")
    lines += ["", *table(["budget", "archs", "best", "hypernet top-1", "hypernet best of 3", "params best of 3",
                          "random best of 3", "hypernet tau", "params tau", "seed-to-seed tau"],
                         [[f"{b['metric']} <= {b['limit']:,.0f} (p{b['percentile']})", b["archs"], f"{b['best']:.4f}",
                           mean_sd(b["scorers"]["hypernet"]["top1"]), mean_sd(b["scorers"]["hypernet"]["top3"]),
                           f"{b['scorers']['params']['top3'][0]:.4f}", f"{b['random'][1]:.4f}",
                           mean_sd(b["scorers"]["hypernet"]["tau"], 3), f"{b['scorers']['params']['tau'][0]:.3f}",
                           f"{b['seed_tau']:.3f}"] for b in result["budgets"]])]
    return "\n".join(lines)


def markdown(results: list[dict]) -> str:
    return "\n\n".join(markdown_one(r) for r in results)


def main(argv: list[str] | None = None) -> list[dict]:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.budget", doc=__doc__)


if __name__ == "__main__":
    main()
