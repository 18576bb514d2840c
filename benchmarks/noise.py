"""`python -m benchmarks.noise`: can each truth tell its top architectures apart?

Per truth, in the top half of its architectures by mean accuracy: the spread (sd) of the
architectures' means, one training run's noise (the pooled sd over seeds), the noise of a mean
over the truth's seeds, and their ratio with its 95% interval (a bootstrap over the
architectures). A truth tells its top apart when the noise of a mean is at most half the spread
(ratio <= 0.5) over the whole interval; "within noise" where the interval holds 0.5. Beside it: the seeds that would bring the ratio to 0.5
with the same spread, the seed-to-seed Kendall tau, and the noise ceiling (the tau against the
truth of a scorer that knew every expected accuracy; `benchmarks.core.stats`).

Usage:
    python -m benchmarks.noise --out-md runs/noise.md
    python -m benchmarks.noise --truths nb201_mnist1d,macro_mnist1d_small
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.core.report import command, table
from benchmarks.core.stats import Interval, bootstrap, noise_ceiling, seed_to_seed_tau, truth_noise
from benchmarks.core.tables import merged_table
from benchmarks.core.truths import TRUTHS
from hypernas.options import check, option

TARGET = 0.5  # the noise of a mean, at most this share of the top half's spread


@dataclass(frozen=True)
class Config:
    truths: tuple[str, ...] = option(tuple(TRUTHS), "comma list of truths", choices=tuple(TRUTHS))

    def __post_init__(self):
        check(self)


def run(config: Config) -> list[dict]:
    out = []
    for name in config.truths:
        truth = TRUTHS[name]
        by_seed = merged_table(truth.tables).by_seed
        acc = {seed: np.asarray(values) for seed, values in by_seed.items()}
        archs = len(next(iter(by_seed.values())))
        noise = truth_noise(by_seed)
        ratio = bootstrap(lambda cells, _: {"ratio": truth_noise({s: a[cells] for s, a in acc.items()}).ratio}, archs,
                          estimate={"ratio": noise.ratio})["ratio"]  # over the architectures
        out.append({"name": name, "truth": truth, "archs": archs, "noise": noise, "ratio": ratio,
                    "ceiling": noise_ceiling(by_seed), "seed_tau": seed_to_seed_tau(by_seed)})
    return out


def _meets(ratio: Interval) -> str:
    """Whether the target is met: by the whole 95% interval, by none of it, or within noise."""
    return "yes" if ratio.high <= TARGET else "no" if ratio.low > TARGET else "within noise"


def markdown(results: list[dict]) -> str:
    rows = []
    for r in results:
        n, t = r["noise"], r["truth"]
        kind = "development" if t.development else "secondary" if t.secondary else "reference"
        rows.append([r["name"], kind, t.test, f"{r['archs']} x {n.seeds}", f"{n.top_mean:.4f}", f"{n.spread:.4f}",
                     f"{n.one_run:.4f}", f"{n.noise_of_mean:.4f}",
                     f"{n.ratio:.2f} [{r['ratio'].low:.2f}, {r['ratio'].high:.2f}]",
                     _meets(r["ratio"]), n.seeds_needed or "none suffice",
                     f"{r['seed_tau']:.3f}", f"{r['ceiling']:.3f}"])
    return "\n".join(table(["truth", "kind", "test set", "archs x seeds", "top half: mean", "spread of the means",
                            "one run's sd", "noise of a mean", "ratio [95%]", f"ratio <= {TARGET}", "seeds for 0.5",
                            "seed-to-seed tau", "noise ceiling tau"], rows))


def main(argv: list[str] | None = None) -> list[dict]:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.noise", doc=__doc__)


if __name__ == "__main__":
    main()
