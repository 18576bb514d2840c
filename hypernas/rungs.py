"""A middle fidelity: short trainings of the best scored architectures, as successive halving.

Between a score (a hundredth of a second) and a final training (six epochs) the rungs train
the `pool` best candidates for the first rung's epochs, starting from the hypernetwork's
predicted weights (or random ones), rank them on the validation slice of the train split
(never the test set), keep the best fraction for the next, longer rung, and so on. What
survives the last rung goes to the final training. A rung's training is the reference protocol
at that length, from its start (its own cosine schedule), so a result depends only on the
architecture, the rung's epochs and the seed, and a rerun reuses every result it finds.

The ranking signal is the validation loss by default: with a few hundred validation samples,
accuracy is coarse where networks are close.

Usage:
    outcome = successive_halving(candidates, (1, 3), keep=1 / 3, measure=lambda c, epochs: train_for(c, epochs))
    outcome.survivors, outcome.results[c]   # {epochs: RungResult}, and why each stopped (outcome.stopped)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from hypernas.errors import OptionError

SIGNALS = ("loss", "accuracy")  # what a rung ranks by
INITS = ("hypernet", "random")  # where a rung's training starts


@dataclass(frozen=True)
class RungResult:
    """One short training's result on the validation slice."""

    epochs: int
    loss: float
    accuracy: float

    def value(self, signal: str) -> float:
        """Higher is better: the negative loss, or the accuracy."""
        return -self.loss if signal == "loss" else self.accuracy


@dataclass
class Outcome:
    survivors: list  # the candidates of the last rung's best fraction, best first
    results: dict = field(default_factory=dict)  # candidate -> {epochs: RungResult}
    stopped: dict = field(default_factory=dict)  # candidate -> why it left the rungs, in words
    trainings: int = 0  # short trainings run (cached results not counted)
    epochs: int = 0  # their epochs in all


def promoted(n: int, keep: float) -> int:
    """How many of `n` a rung promotes: the best `keep` of them, at least one."""
    return max(1, math.ceil(n * keep - 1e-9))


def survivors(pool: int, schedule: Sequence[int], keep: float) -> int:
    """How many of a pool of `pool` come through every rung (the last rung promotes none away)."""
    alive = pool
    for _ in schedule[:-1]:
        alive = promoted(alive, keep)
    return alive


def check_schedule(schedule: Sequence[int]) -> None:
    """Refuse rungs that are not increasing epochs from 1: a later rung must train longer."""
    if not schedule or list(schedule) != sorted(set(schedule)) or schedule[0] < 1:
        raise OptionError(f"rungs must be increasing epochs from 1, like 1,3; got {','.join(map(str, schedule))}")


def cost(pool: int, schedule: Sequence[int], keep: float) -> int:
    """The epochs the rungs train in all for a pool of `pool` candidates."""
    total, alive = 0, pool
    for epochs in schedule:
        total += alive * epochs
        alive = promoted(alive, keep)
    return total


def successive_halving(candidates: Sequence[Hashable], schedule: Sequence[int], keep: float,
                       measure: Callable[[Hashable, int], RungResult], signal: str = "loss",
                       known: dict | None = None) -> Outcome:
    """Run the rungs over `candidates` (best first by score, which breaks ties): `measure(c,
    epochs)` trains one for a rung; `known` holds results a resumed run already has
    ({candidate: {epochs: RungResult}}), which are used instead of training again."""
    if signal not in SIGNALS:
        raise OptionError(f"signal must be one of {', '.join(SIGNALS)}, not {signal!r}")
    if not 0 < keep <= 1:
        raise OptionError(f"keep must lie in (0, 1], got {keep}")
    check_schedule(schedule)
    outcome = Outcome([], {c: dict((known or {}).get(c, {})) for c in candidates})
    alive = list(candidates)
    for r, epochs in enumerate(schedule):
        for c in alive:
            if epochs not in outcome.results[c]:
                outcome.results[c][epochs] = measure(c, epochs)
                outcome.trainings += 1
                outcome.epochs += epochs
        ranked = sorted(alive, key=lambda c: -outcome.results[c][epochs].value(signal))  # stable: score breaks ties
        kept = ranked[:promoted(len(ranked), keep)] if r < len(schedule) - 1 else ranked
        for place, c in enumerate(ranked[len(kept):], start=len(kept) + 1):
            outcome.stopped[c] = f"cut at rung {r + 1} ({epochs} epochs): {place} of {len(ranked)} by validation {signal}"
        alive = kept
    outcome.survivors = alive
    for place, c in enumerate(alive, start=1):
        outcome.stopped[c] = f"through every rung: {place} of {len(alive)} after {schedule[-1]} epochs"
    return outcome
