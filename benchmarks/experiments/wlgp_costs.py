"""What the graph GP costs on NB201's CIFAR-10 table (default skeleton, C=16 N=5), one thread.

1. `listing`: listing the whole space for `pool="all"` (15,625 network builds): seconds and
   the process's peak RSS.
2. `cache`: seeds 0-3 of local search handing over to the graph GP (`pool="near"`, 200 queries) in one process, in
   seconds each: its shared bag cache fills as the seeds go.

Usage: python -m benchmarks.experiments.wlgp_costs listing
       python -m benchmarks.experiments.wlgp_costs cache
"""
import resource
import sys
import time
from dataclasses import replace

import optuna
import torch
from optuna.distributions import CategoricalDistribution

from benchmarks import oracle
from benchmarks.cifar10_table import load_cifar10_table
from hypernas.samplers import wlgp
from hypernas.spaces import get_space


def main() -> None:
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if sys.argv[1:] == ["listing"]:
        space = get_space("nb201")
        start = time.perf_counter()
        listing = wlgp.Listing.of({n: CategoricalDistribution(c) for n, c in space.grid.items()},
                                   lambda p: space.build_info(optuna.trial.FixedTrial(p), 3, 10)[1])
        print(f"listing: {time.perf_counter() - start:.0f} s, {len(listing.params)} distinct of {len(listing.row)}, "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")
    elif sys.argv[1:] == ["cache"]:
        table = load_cifar10_table()
        for seed in range(4):
            start = time.perf_counter()
            oracle.run_method(replace(oracle.CANDIDATES["local_escape_wlgp"], trials=200), seed, table)
            print(f"seed {seed}: {time.perf_counter() - start:.1f} s", flush=True)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
