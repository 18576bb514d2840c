"""The trials of a study that several workers share: the writer, the mirror, and joining.

The sampler steers an in-memory mirror of the study. Each finished batch is written to the
persistent storage by a background thread while the next batch is scored, in one
transaction per batch (`hypernas.optuna_private.add_trials_at_once`); a crash
loses at most the batches in flight. Before each batch the mirror takes in the trials other
workers finished, so the sampler and the duplicate cache see the whole study.

The storage holds what the dashboard and Optuna's charts show, so a trial without a result of
its own is stored PRUNED, Optuna's state for a trial that was stopped, which its charts and
its "best trials" leave out: a trial over a limit (never scored: it has no values, and
Optuna's `constraints` mark it infeasible) and, with `prune_copies`, a duplicate (it keeps the
score it copies). What the sampler was told stays on the stored trial (`TOLD`), so a resume or
another worker tells the sampler the same (`steered`).

Usage:
    writer = Writer(study, total=1000, distinct=False)
    mirror = Mirror(study, steer, writer)
    done = mirror.sync(); ...; writer.put(batch); writer.close()
"""

from __future__ import annotations

import copy
import queue
import threading
import time

import optuna

from hypernas.errors import StorageError, first_line
from hypernas.optuna_private import CONSTRAINTS_KEY, add_trials_at_once, storage_of, study_id_of, trial_id_of
from hypernas.study.attrs import check_trial, completed
from hypernas.study.storage import study_lock

TOLD = "hypernas:told"  # a stored PRUNED trial's system attribute: the values the sampler was told
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)  # what a search stores, and counts

SHARED = ("feasible", "constraints", "infeasible", "latency_ms", "latency_spread_ms", "latency_measured",
          "degenerate")  # a duplicate copies these


def shared_attrs(attrs: dict) -> dict:
    """What a duplicate of a trial copies from it, besides its values."""
    return {k: attrs[k] for k in SHARED if k in attrs}


def stored(t: optuna.trial.FrozenTrial, prune_copies: bool = False) -> optuna.trial.FrozenTrial:
    """The form a finished trial is stored in: PRUNED where it has no result of its own (over a
    limit, or with `prune_copies` a duplicate), with what the sampler was told kept in `TOLD`."""
    infeasible = not t.user_attrs.get("feasible", True)
    if t.state != optuna.trial.TrialState.COMPLETE or not (infeasible or (prune_copies and "duplicate_of" in t.user_attrs)):
        return t
    system = {**t.system_attrs, TOLD: list(t.values)}
    if "constraints" in t.user_attrs:  # where the sampler kept none: the dashboard reads Optuna's key
        system[CONSTRAINTS_KEY] = t.user_attrs["constraints"]
    return optuna.trial.FrozenTrial(
        number=t.number, state=optuna.trial.TrialState.PRUNED, value=None, values=None if infeasible else t.values,
        datetime_start=t.datetime_start, datetime_complete=t.datetime_complete, params=t.params,
        distributions=t.distributions, user_attrs=t.user_attrs, system_attrs=system,
        intermediate_values=t.intermediate_values, trial_id=trial_id_of(t))


def steered(t: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
    """A stored trial as the sampler was told it: `stored` undone."""
    if t.state != optuna.trial.TrialState.PRUNED or TOLD not in t.system_attrs:
        return t
    return optuna.trial.FrozenTrial(
        number=t.number, state=optuna.trial.TrialState.COMPLETE, value=None, values=t.system_attrs[TOLD],
        datetime_start=t.datetime_start, datetime_complete=t.datetime_complete, params=t.params,
        distributions=t.distributions, user_attrs=t.user_attrs, system_attrs=t.system_attrs,
        intermediate_values=t.intermediate_values, trial_id=trial_id_of(t))


def counts(t: optuna.trial.FrozenTrial, distinct: bool) -> bool:
    """Whether a finished trial counts toward `trials`: every one within the limits (a stored
    duplicate too), or only the first of each such architecture with `distinct`."""
    return (t.state in FINISHED and t.user_attrs.get("feasible", True)
            and not (distinct and "duplicate_of" in t.user_attrs))


def count_done(study: optuna.Study, distinct: bool, limited: bool = False) -> int:
    """How many of the study's trials count toward its total (`limited`: a study with limits,
    whose infeasible trials do not count)."""
    if not distinct and not limited:  # a count query per state
        return sum(storage_of(study).get_n_trials(study_id_of(study), state=state) for state in FINISHED)
    if not distinct:
        return sum(counts(t, False) for t in study.get_trials(deepcopy=False, states=FINISHED))
    return len(first_of_each(study))


def first_of_each(study: optuna.Study) -> dict[str, int]:
    """Architecture hash -> the number of its first completed trial within the limits."""
    first: dict[str, int] = {}
    for t in sorted(completed(study), key=lambda t: t.number):
        if t.user_attrs.get("feasible", True):
            first.setdefault(t.user_attrs.get("hash"), t.number)
    return first


class Writer:
    """Writes finished batches to the study's storage on a background thread, in order.
    `close` waits for the queue.

    Several workers may share one study. Each batch is written under the study's lock, and
    only as many counted trials as the requested total still has room for, so the total is
    exact; the rest of a batch is dropped and `full` is set. The storage numbers the trials
    (`first`, `first + 1`, ... while the lock is held); `duplicate_of` is kept in the
    mirror's numbering until then and mapped here.
    """

    def __init__(self, study: optuna.Study, total: int, distinct: bool, limited: bool = False,
                 prune_copies: bool = False):
        self.study, self.total, self.distinct, self.limited = study, total, distinct, limited
        self.prune_copies = prune_copies  # duplicates stored PRUNED (`stored`)
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.error: Exception | None = None
        self.full = False
        self.numbers: dict[int, int] = {}  # mirror trial number -> storage trial number
        self.redirect: dict[int, int] = {}  # storage number of a trial stored as another worker's duplicate -> that one
        self.lock = threading.Lock()  # guards `numbers`, which the main thread reads and adds to (`adopt`)
        self.busy = 0.0  # seconds spent writing
        self.thread = threading.Thread(target=self._run, name="hypernas-storage-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (batch := self.queue.get()) is not None:
            start = time.perf_counter()
            try:
                if self.error is None:
                    self._write(batch)
            except Exception as err:  # reported by the main thread at its next put or at close
                self.error = err
            self.busy += time.perf_counter() - start
            self.queue.task_done()

    def _write(self, batch: list[optuna.trial.FrozenTrial]) -> None:
        if self.full:  # the total was reached by an earlier batch: this one came too late
            return
        storage = storage_of(self.study)
        with study_lock(storage, self.study.study_name):
            # With `distinct`, what counts is distinct architectures in the storage, read under
            # the lock: another worker may have scored this batch's new architecture meanwhile,
            # and then this trial is stored as a duplicate of that worker's.
            known = first_of_each(self.study) if self.distinct else {}
            room = self.total - (len(known) if self.distinct else count_done(self.study, False, self.limited))
            keep, elsewhere = [], {}
            kept = set()
            for t in batch:  # in order; failed trials ride along with the counted ones
                target = t.user_attrs.get("duplicate_of")
                if target is not None and target not in self.numbers and target not in kept:
                    continue  # a duplicate of a trial that was never stored (dropped at the total)
                if counts(t, self.distinct):
                    if t.user_attrs.get("hash") in known:
                        elsewhere[t.number] = known[t.user_attrs["hash"]]
                    else:
                        if room <= 0:
                            break
                        room -= 1
                keep.append(t)
                kept.add(t.number)
            first = storage.get_n_trials(study_id_of(self.study))
            with self.lock:  # before the trials exist, so the mirror never takes them for another worker's
                for i, t in enumerate(keep):
                    self.numbers[t.number] = first + i
            for number, other in elsewhere.items():  # this worker's later duplicates of it point there too
                self.redirect[self.numbers[number]] = other
            add_trials_at_once(self.study, [stored(self._resolved(t, elsewhere.get(t.number)), self.prune_copies)
                                            for t in keep])
            self.full = room <= 0

    def _resolved(self, t: optuna.trial.FrozenTrial, duplicate_of: int | None) -> optuna.trial.FrozenTrial:
        """`t` in the storage's numbering; `duplicate_of` names another worker's trial of its architecture."""
        if duplicate_of is None and "duplicate_of" not in t.user_attrs:
            return t
        t = copy.copy(t)
        if duplicate_of is None:
            duplicate_of = self.numbers[t.user_attrs["duplicate_of"]]
            duplicate_of = self.redirect.get(duplicate_of, duplicate_of)
        first = duplicate_of
        t.user_attrs = {**t.user_attrs, "duplicate_of": first, "duplicate": True}
        return t

    def adopt(self, numbers: dict[int, int]) -> None:
        """Other workers' trials the mirror took in: mirror number -> storage number, so that a
        duplicate of one of them is stored pointing at it, and it is never taken in twice."""
        with self.lock:
            self.numbers.update(numbers)

    def stored(self) -> set[int]:
        """Storage numbers of the trials this process wrote or took in."""
        with self.lock:
            return set(self.numbers.values())

    def counted(self) -> int:
        """What the storage holds toward the total once every queued batch is written: a
        worker's own count can run ahead of it (with `distinct`, another worker may have
        scored one of its new architectures first)."""
        self.queue.join()
        self._raise()
        return count_done(self.study, self.distinct, self.limited)

    def put(self, batch: list) -> None:
        self._raise()
        self.queue.put(batch)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            raise StorageError(f"writing trials to the storage failed: {first_line(self.error)}") from None


class Mirror:
    """The in-memory study the sampler works on, kept in step with the storage.

    Before each batch it takes in the trials other workers finished since the last look (one
    count query when there are none), so the sampler and the duplicate cache see the whole
    study. Trials this process wrote are known by their storage numbers and not taken in twice.
    """

    def __init__(self, study: optuna.Study, steer: optuna.Study, writer: Writer):
        self.study, self.steer, self.writer = study, steer, writer
        # hash -> (values, mirror number of the scored trial, what its duplicates copy: feasibility, latency)
        self.cache: dict[str, tuple[list[float], int, dict]] = {}
        self.known = 0  # storage trials at the last look

    def sync(self) -> int:
        """Take in new finished trials from other workers; returns how many count toward the total."""
        if storage_of(self.study).get_n_trials(study_id_of(self.study)) == self.known:
            return 0
        trials = self.study.get_trials(deepcopy=False)
        self.known = len(trials)
        mine = self.writer.stored()  # read after the trials: a batch written meanwhile is known by now
        new = [steered(check_trial(self.study.study_name, t)) for t in trials
               if t.state.is_finished() and t.number not in mine]
        self.steer.add_trials(new)
        mirrored = self.steer.get_trials(deepcopy=False)[-len(new):] if new else []
        self.writer.adopt({m.number: t.number for t, m in zip(new, mirrored)})
        for t, m in zip(new, mirrored):
            if t.state == optuna.trial.TrialState.COMPLETE and "duplicate_of" not in t.user_attrs:
                self.cache.setdefault(t.user_attrs["hash"], (t.values, m.number, shared_attrs(t.user_attrs)))
        return sum(counts(t, self.writer.distinct) for t in new)
