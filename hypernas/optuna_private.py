"""Every use of Optuna's private API, in one place, each with why the public API does not serve.

`tests/test_optuna_private.py` runs each of these against the installed Optuna, so an Optuna
release that moves one of them fails that test by name instead of a search at run time.

- A study's storage and id: Optuna keeps them private (`Study._storage`, `Study._study_id`),
  but a lock, a count query or a study system attribute needs them, and the study is what
  the code hands around.
- A trial's storage id (`FrozenTrial._trial_id`): the only key the storage takes.
- Attributes of a finished trial: the final training's result (`trained_accuracy`) and its
  drawing belong on the trial they check, but Optuna's API refuses to change a finished
  trial. They are written with Optuna's own table models, in one transaction. So are the
  rungs' results as intermediate values (`Trial.report` takes a running trial only), where the
  dashboard draws them as learning curves.
- The artifact attribute prefix (`optuna.artifacts._upload.ARTIFACTS_ATTR_PREFIX`), with which
  optuna-dashboard finds a trial's artifacts.
- TPE's fit (`TPESampler._sample_relative`, `_sample` and the helpers they call): TPE refits
  both densities on the whole history at every ask, so a study of n trials costs O(n^2);
  `BatchTPESampler` fits once per batch of asks on a bounded history, which no public hook
  allows.
- Finished trials written in one transaction (`add_trials_at_once`): `Study.add_trials` makes
  one per trial, a query per parameter and attribute, and the search writes thousands.
- A finished trial's dashboard note: `optuna_dashboard.save_note` takes a running trial (it
  reads `trial.study`); the versioned write under it takes the ids.

Usage:
    storage, study_id = storage_of(study), study_id_of(study)
    annotate_trial(study, trial, user_attrs={"trained_accuracy": 0.96})
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from hypernas.errors import OptionError, StorageError, first_line

# The system attribute in which Optuna's samplers keep a trial's constraints (`_CONSTRAINTS_KEY` of
# `optuna.study._constrained_optimization`), and where optuna-dashboard reads them to grey infeasible trials.
CONSTRAINTS_KEY = "constraints"


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a study reads and writes (Optuna may wrap an RDB storage in a cache)."""
    return study._storage


def study_id_of(study: optuna.Study) -> int:
    return study._study_id


def trial_id_of(trial: optuna.trial.FrozenTrial | optuna.trial.Trial) -> int:
    return trial._trial_id


def rdb_of(storage: Any) -> Any:
    """The RDB storage under a study's storage: Optuna wraps it in a cache (`_CachedStorage`)."""
    return getattr(storage, "_backend", storage)


def fresh_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
    """The trial as the database holds it now, past the cache Optuna keeps of finished trials
    (which does not see `annotate_trial`'s writes)."""
    return rdb_of(storage_of(study)).get_trial(trial_id_of(trial))


def set_trial_system_attr(study: optuna.Study, trial: optuna.trial.FrozenTrial, key: str, value: Any) -> None:
    """A system attribute on a running trial, from inside a sampler (as Optuna's own samplers do)."""
    storage_of(study).set_trial_system_attr(trial_id_of(trial), key, value)


@contextlib.contextmanager
def _transaction(study: optuna.Study) -> Iterator[Any]:
    """A session of the study's database, committed at the end; on any error rolled back (a
    full disk, a locked or read-only database) and said in one line: nothing half-written."""
    session = rdb_of(storage_of(study)).scoped_session()
    try:
        yield session
        session.commit()
    except Exception as err:
        session.rollback()
        raise StorageError(f"cannot write to study {study.study_name!r}: {first_line(err)}") from None
    finally:
        session.close()


def annotate_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial, user_attrs: dict[str, Any] | None = None,
                   system_attrs: dict[str, Any] | None = None) -> None:
    """Add attributes to a trial that has already finished, in one transaction."""
    from optuna.storages._rdb import models

    with _transaction(study) as session:
        for model, attrs in ((models.TrialUserAttributeModel, user_attrs or {}),
                             (models.TrialSystemAttributeModel, system_attrs or {})):
            for key, value in attrs.items():
                row = session.query(model).filter_by(trial_id=trial_id_of(trial), key=key).one_or_none()
                if row is None:
                    session.add(model(trial_id=trial_id_of(trial), key=key, value_json=json.dumps(value)))
                else:
                    row.value_json = json.dumps(value)


def report_finished(study: optuna.Study, trial: optuna.trial.FrozenTrial, step: int, value: float) -> None:
    """An intermediate value of a finished trial at `step` (replacing one already there), as
    `Trial.report` writes it for a running one."""
    from optuna.storages._rdb import models

    model = models.TrialIntermediateValueModel
    stored, kind = model.intermediate_value_to_stored_repr(value)
    with _transaction(study) as session:
        row = session.query(model).filter_by(trial_id=trial_id_of(trial), step=step).one_or_none()
        if row is None:
            session.add(model(trial_id=trial_id_of(trial), step=step, intermediate_value=stored,
                              intermediate_value_type=kind))
        else:
            row.intermediate_value, row.intermediate_value_type = stored, kind


def add_trials_at_once(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> None:
    """Finished trials added to the study, numbered in order, in one transaction of its database.

    `Study.add_trials` makes a transaction per trial, with a query per parameter and attribute:
    12 ms a trial on SQLite, all of it Python, which holds the lock the search's main thread
    needs to score and sample. Here the rows are those `RDBStorage` writes, made with Optuna's
    table models and flushed together. A storage that is not a database takes `add_trials`.
    """
    from optuna import distributions
    from optuna.storages._rdb import models

    if not isinstance(rdb_of(storage_of(study)), optuna.storages.RDBStorage):
        study.add_trials(trials)
        return
    study_id = study_id_of(study)
    with _transaction(study) as session:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)  # as Optuna numbers a trial
        number = session.query(models.TrialModel).filter(models.TrialModel.study_id == study_id).count()
        first: dict[str, Any] = {}  # a parameter's first distribution in the study, as `set_trial_param` checks
        for t in trials:
            for name, distribution in t.distributions.items():
                if name not in first:
                    previous = session.query(models.TrialParamModel).join(models.TrialModel).filter(
                        models.TrialModel.study_id == study_id, models.TrialParamModel.param_name == name).first()
                    first[name] = distribution if previous is None else \
                        distributions.json_to_distribution(previous.distribution_json)
                distributions.check_distribution_compatibility(first[name], distribution)
            row = models.TrialModel(study_id=study_id, number=number, state=t.state, datetime_start=t.datetime_start,
                                    datetime_complete=t.datetime_complete)
            number += 1
            row.values = [models.TrialValueModel(objective=i, value=stored, value_type=kind) for i, (stored, kind)
                          in enumerate(map(models.TrialValueModel.value_to_stored_repr, t.values or []))]
            row.params = [models.TrialParamModel(param_name=name, param_value=t.distributions[name].to_internal_repr(v),
                                                 distribution_json=distributions.distribution_to_json(t.distributions[name]))
                          for name, v in t.params.items()]
            row.user_attributes = [models.TrialUserAttributeModel(key=k, value_json=json.dumps(v))
                                   for k, v in t.user_attrs.items()]
            row.system_attributes = [models.TrialSystemAttributeModel(key=k, value_json=json.dumps(v))
                                     for k, v in t.system_attrs.items()]
            row.intermediate_values = [
                models.TrialIntermediateValueModel(step=step, intermediate_value=stored, intermediate_value_type=kind)
                for step, (stored, kind) in ((step, models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(v))
                                             for step, v in t.intermediate_values.items())]
            session.add(row)


def save_trial_note(study: optuna.Study, trial: optuna.trial.FrozenTrial, body: str) -> None:
    """The dashboard note (Markdown) of a finished trial, the first thing its page shows; a
    newer version of the note replaces it, as `optuna_dashboard.save_note` does."""
    from optuna_dashboard._note import note_ver_key, save_note_with_version

    storage = storage_of(study)
    version = storage.get_study_system_attrs(study_id_of(study)).get(note_ver_key(trial_id_of(trial)), 0) + 1
    save_note_with_version(storage, study_id_of(study), trial_id_of(trial), version, body)


def attach_artifact(study: optuna.Study, trial: optuna.trial.FrozenTrial, store: Any, path: str) -> str:
    """Store a file as an artifact of a finished trial, where optuna-dashboard shows it.
    `optuna.artifacts.upload_artifact` does this for a running trial only."""
    import dataclasses
    import mimetypes
    import uuid

    from optuna.artifacts import ArtifactMeta
    from optuna.artifacts._upload import ARTIFACTS_ATTR_PREFIX

    artifact_id = str(uuid.uuid4())
    meta = ArtifactMeta(artifact_id=artifact_id, filename=os.path.basename(path),
                        mimetype=mimetypes.guess_type(path)[0] or "application/octet-stream", encoding=None)
    try:
        with open(path, "rb") as f:
            store.write(artifact_id, f)
    except OSError as err:
        try:
            store.remove(artifact_id)  # no truncated artifact left behind
        except Exception:
            pass
        raise StorageError(f"cannot store {os.path.basename(path)!r} as an artifact: {err.strerror or err}") from None
    annotate_trial(study, trial, system_attrs={ARTIFACTS_ATTR_PREFIX + artifact_id: json.dumps(dataclasses.asdict(meta))})
    return artifact_id


def _split(study: optuna.Study, trials: list, n_below: int) -> tuple[list, list]:
    """TPE's split into the best `n_below` trials and the rest, each by number. Optuna's
    (`_split_trials`) reads each trial's state and constraints in Python, the larger part of a
    fit over a long study; where every trial is a feasible completed one of a single objective,
    its split is a stable sort of the values, done here in numpy."""
    from optuna.samplers._tpe import sampler as tpe

    if len(study.directions) > 1 or any(t.state != TrialState.COMPLETE or CONSTRAINTS_KEY in t.system_attrs
                                        for t in trials):
        return tpe._split_trials(study, trials, n_below)
    values = np.fromiter((t.value for t in trials), dtype=float, count=len(trials))
    order = np.argsort(values if study.direction == optuna.study.StudyDirection.MINIMIZE else -values, kind="stable")
    best = np.zeros(len(trials), dtype=bool)
    best[order[:n_below]] = True  # the listing is by number, so both parts stay in it
    return [t for t, b in zip(trials, best) if b], [t for t, b in zip(trials, best) if not b]


class BatchTPESampler(optuna.samplers.TPESampler):
    """Optuna's TPE, fitted once per batch of asks, its "above" density thinned to `history` trials.

    TPE refits both densities on the whole history at every ask and weighs each candidate
    against every trial, so a study of n trials costs O(n^2), and over a long search the
    sampler outgrew the scoring it steers. Here one fit serves a batch: at the first ask after
    a trial finished, `batch` groups of `n_ei_candidates` are drawn from the "below" density and
    weighed in one pass; the i-th ask takes the best of the i-th group that no earlier ask of the
    batch took (TPE's constant liar, which keeps concurrent asks apart, in batch form). The
    "above" density keeps at most `history` of its trials (0: all), evenly spaced over the
    study, each with its TPE weight, scaled so that their sum is the whole's and the prior
    keeps its share.

    With `batch=1` and at most `history` trials above, the proposals are TPE's exactly (a test
    checks it against the installed Optuna). A parameter outside the relative search space (a
    define-by-run space) takes TPE's independent path, on the thinned history.
    """

    def __init__(self, *, batch: int = 1, history: int = 1000, **options: Any):
        if not (isinstance(batch, int) and batch >= 1):
            raise OptionError(f"the TPE batch must be a positive integer, got {batch!r}")
        if isinstance(history, bool) or not (isinstance(history, int) and (history == 0 or history >= 2)):
            raise OptionError(f"sampler option history must be 0 (every trial) or an integer of at least 2, "
                              f"got {history!r}")
        super().__init__(**options)
        self._batch, self._history = batch, history
        self._queue: list[dict[str, Any]] = []  # the batch's proposals not yet asked for
        self._split_kept: tuple[int, list, list] | None = None  # (finished trials, their split): kept while they last
        self._queue_space: dict | None = None

    def after_trial(self, study, trial, state, values):
        self._queue = []  # a finished trial changes the history: the next ask refits
        super().after_trial(study, trial, state, values)

    def _sample_relative(self, study, trial, search_space):
        if search_space == {}:
            return {}
        if not self._queue or self._queue_space != search_space:
            trials = self._history_of(study, trial)
            if sum(t.state != TrialState.RUNNING for t in trials) < self._n_startup_trials:
                return {}  # TPE's random start-up
            self._queue, self._queue_space = self._proposals(study, trials, search_space, self._batch), search_space
        return self._queue.pop(0)

    def _sample(self, study, trial, search_space):  # TPE's independent path: one parameter at a time
        return self._proposals(study, self._history_of(study, trial), search_space, 1)[0]

    def _history_of(self, study, trial) -> list:
        """The trials TPE fits on, as TPE lists them: the running ones too with the liar, not the asking one."""
        if not self._constant_liar:
            return study._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED), use_cache=True)
        trials = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING),
                                   use_cache=False)
        return [t for t in trials if t.number != trial.number]

    def _proposals(self, study, trials: list, search_space: dict, count: int) -> list[dict[str, Any]]:
        """`count` proposals from one fit of the two densities on `trials` (TPE's `_sample`, batched)."""
        from optuna.samplers._tpe import sampler as tpe

        if self._gamma is None:
            self._gamma = tpe.default_gamma if len(study.directions) <= 1 else tpe.default_gamma_multiobjective
        running = [t for t in trials if t.state == TrialState.RUNNING]
        # Finished trials are only ever added, so their count tells whether the split still holds:
        # a define-by-run space asks once per parameter, and the batch's asks share one split.
        if self._split_kept is None or self._split_kept[0] != len(trials) - len(running):
            finished = [t for t in trials if t.state != TrialState.RUNNING]
            self._split_kept = (len(finished), *_split(study, finished, self._gamma(len(finished))))
        _, below, above = self._split_kept
        if running:  # TPE's liar: the running trials join the "above" trials, in the order of their numbers
            above = sorted(above + running, key=lambda t: t.number) \
                if above and min(t.number for t in running) < above[-1].number else above + running
        mpe_below = self._build_parzen_estimator(study, search_space, below, handle_below=True)
        mpe_above = self._thinned_above(study, search_space, above)
        candidates = self._n_ei_candidates
        samples = mpe_below.sample(self._rng.rng, candidates * count)
        gains = self._compute_acquisition_func(samples, mpe_below, mpe_above)
        taken, out = set(), []
        for group in range(count):
            part = slice(group * candidates, (group + 1) * candidates)
            chosen = self._compare({k: v[part] for k, v in samples.items()}, gains[part])  # TPE's pick
            if self._constant_liar and tuple(chosen.values()) in taken:  # the best one not taken yet, if any
                for i in np.argsort(-gains[part], kind="stable"):
                    option = {k: v[part][i].item() for k, v in samples.items()}
                    if tuple(option.values()) not in taken:
                        chosen = option
                        break
            taken.add(tuple(chosen.values()))
            out.append({name: dist.to_external_repr(chosen[name]) for name, dist in search_space.items()})
        return out

    def _thinned_above(self, study, search_space: dict, above: list):
        """TPE's "above" density, from at most `history` of its trials."""
        if not self._history or len(above) <= self._history:
            return self._parzen_estimator_cls(self._get_internal_repr(above, search_space, study), search_space,
                                              self._parzen_estimator_parameters)
        weights = self._parzen_estimator_cls._call_weights_func(self._parzen_estimator_parameters.weights, len(above))
        keep = np.linspace(0, len(above) - 1, self._history).round().astype(int)  # distinct: their spacing exceeds 1
        observations = self._get_internal_repr([above[i] for i in keep], search_space, study)
        kept = weights[keep] * (weights.sum() / weights[keep].sum())
        if observations and len(next(iter(observations.values()))) != len(keep):
            kept = None  # some lack a parameter of the space (define-by-run): TPE's own weights for the rest
        return self._parzen_estimator_cls(observations, search_space, self._parzen_estimator_parameters, kept)

    def _compute_acquisition_func(self, samples, mpe_below, mpe_above):
        """TPE's acquisition, weighed once per distinct candidate: a batch's candidates, drawn from
        the few trials of the "below" density, repeat one another, and each weighing is against
        every trial of the "above" one."""
        names = list(samples)
        rows = np.stack([samples[k] for k in names], axis=1)
        distinct, back = np.unique(rows, axis=0, return_inverse=True)
        gains = super()._compute_acquisition_func({k: distinct[:, i] for i, k in enumerate(names)}, mpe_below, mpe_above)
        return gains[back.reshape(-1)]
