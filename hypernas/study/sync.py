"""The trials of a study that several workers share: the writer, the mirror, and joining.

The sampler steers an in-memory mirror of the study. Each finished batch is written to the
persistent storage by a background thread while the next batch is scored, because SQLite
through Optuna costs about 10 ms per trial (a query per parameter and attribute); a crash
loses at most the batches in flight. Before each batch the mirror takes in the trials other
workers finished, so the sampler and the duplicate cache see the whole study.

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

from hypernas.errors import StorageError
from hypernas.optuna_private import storage_of, study_id_of
from hypernas.study.storage import study_lock


def counts(t: optuna.trial.FrozenTrial, distinct: bool) -> bool:
    """Whether a finished trial counts toward `trials`: every completed one, or only the
    first of each architecture with `distinct`."""
    return t.state == optuna.trial.TrialState.COMPLETE and not (distinct and "duplicate_of" in t.user_attrs)


def count_done(study: optuna.Study, distinct: bool) -> int:
    """How many of the study's trials count toward its total."""
    if not distinct:
        return storage_of(study).get_n_trials(study_id_of(study), state=optuna.trial.TrialState.COMPLETE)
    return sum(counts(t, True) for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]))


class Writer:
    """Writes finished batches to the study's storage on a background thread, in order.
    `close` waits for the queue.

    Several workers may share one study. Each batch is written under the study's lock, and
    only as many counted trials as the requested total still has room for, so the total is
    exact; the rest of a batch is dropped and `full` is set. The storage numbers the trials
    (`first`, `first + 1`, ... while the lock is held); `duplicate_of` is kept in the
    mirror's numbering until then and mapped here.
    """

    def __init__(self, study: optuna.Study, total: int, distinct: bool):
        self.study, self.total, self.distinct = study, total, distinct
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.error: Exception | None = None
        self.full = False
        self.numbers: dict[int, int] = {}  # mirror trial number -> storage trial number
        self.lock = threading.Lock()  # guards `numbers`, which the mirror reads from the main thread
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

    def _write(self, batch: list[optuna.trial.FrozenTrial]) -> None:
        storage = storage_of(self.study)
        with study_lock(storage, self.study.study_name):
            room = self.total - count_done(self.study, self.distinct)
            keep = []
            for t in batch:  # in order; failed trials ride along with the counted ones
                if counts(t, self.distinct):
                    if room <= 0:
                        break
                    room -= 1
                keep.append(t)
            first = storage.get_n_trials(study_id_of(self.study))
            with self.lock:  # before the trials exist, so the mirror never takes them for another worker's
                for i, t in enumerate(keep):
                    self.numbers[t.number] = first + i
            self.study.add_trials([self._resolved(t) for t in keep])
            self.full = room <= 0

    def _resolved(self, t: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
        if "duplicate_of" not in t.user_attrs:
            return t
        t = copy.copy(t)
        t.user_attrs = {**t.user_attrs, "duplicate_of": self.numbers[t.user_attrs["duplicate_of"]]}
        return t

    def stored(self) -> set[int]:
        """Storage numbers of the trials this process wrote or took in."""
        with self.lock:
            return set(self.numbers.values())

    def put(self, batch: list) -> None:
        self._raise()
        self.queue.put(batch)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            raise StorageError(f"writing trials to the storage failed: {self.error}") from self.error


class Mirror:
    """The in-memory study the sampler works on, kept in step with the storage.

    Before each batch it takes in the trials other workers finished since the last look (one
    count query when there are none), so the sampler and the duplicate cache see the whole
    study. Trials this process wrote are known by their storage numbers and not taken in twice.
    """

    def __init__(self, study: optuna.Study, steer: optuna.Study, writer: Writer):
        self.study, self.steer, self.writer = study, steer, writer
        self.cache: dict[str, tuple[list[float], int]] = {}  # hash -> (values, mirror number of the scored trial)
        self.known = 0  # storage trials at the last look

    def sync(self) -> int:
        """Take in new finished trials from other workers; returns how many count toward the total."""
        if storage_of(self.study).get_n_trials(study_id_of(self.study)) == self.known:
            return 0
        trials = self.study.get_trials(deepcopy=False)
        self.known = len(trials)
        stored = self.writer.stored()  # read after the trials: a batch written meanwhile is known by now
        new = [t for t in trials if t.state.is_finished() and t.number not in stored]
        self.steer.add_trials(new)
        mirrored = self.steer.get_trials(deepcopy=False)[-len(new):] if new else []
        with self.writer.lock:
            for t, m in zip(new, mirrored):
                self.writer.numbers[m.number] = t.number
        for t, m in zip(new, mirrored):
            if t.state == optuna.trial.TrialState.COMPLETE and "duplicate_of" not in t.user_attrs:
                self.cache.setdefault(t.user_attrs["hash"], (t.values, m.number))
        return sum(counts(t, self.writer.distinct) for t in new)


def join(study: optuna.Study) -> int:
    """This worker's index among all that have run on the study (0 for the first). Workers of
    one study seed their samplers apart by it, or the same command would propose the same
    trials in every worker; a single fresh run keeps the seed it was given."""
    storage, key = storage_of(study), "hypernas:workers"
    with study_lock(storage, study.study_name):
        index = storage.get_study_system_attrs(study_id_of(study)).get(key, 0)
        storage.set_study_system_attr(study_id_of(study), key, index + 1)
    return index
