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
- TPE's fit (`TPESampler._sample` and the helpers it calls): TPE refits both densities on the
  whole history at every trial, so a study of n trials costs O(n^2); `HistoryTPESampler` keeps
  the fit of the finished trials while they are unchanged (a batch of asks), which no public
  hook allows.
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

from hypernas.errors import StorageError, first_line

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


class HistoryTPESampler(optuna.samplers.TPESampler):
    """Optuna's TPE, fitted once per history of finished trials instead of once per trial.

    Within a batch of asks the finished trials do not change, only the running ones that the
    constant liar adds to the "above" density. The finished trials' split and their internal
    representation, the O(n) part of every ask, are kept while the finished trials stay the
    same; each ask appends the running trials and builds the two densities from arrays. The
    proposals are exactly TPE's (a test checks it against the installed Optuna). Where the
    running trials are not all newer than the finished ones, as after an enqueued trial, it
    falls back to TPE's own fit.
    """

    def __init__(self, **options: Any):
        super().__init__(**options)
        self._kept: dict = {}  # search space -> (observations below, observations above) of the finished trials
        self._kept_for = None  # the finished history they were made from: (count, last number)

    def _sample(self, study, trial, search_space):
        from optuna.samplers._tpe import sampler as tpe
        from optuna.trial import TrialState

        trials = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING),
                                   use_cache=False)
        finished = [t for t in trials if t.state != TrialState.RUNNING]
        running = [t for t in trials if t.state == TrialState.RUNNING and t.number != trial.number] \
            if self._constant_liar else []
        if running and finished and min(t.number for t in running) < finished[-1].number:
            return super()._sample(study, trial, search_space)
        history = (len(finished), finished[-1].number if finished else -1)
        if history != self._kept_for:
            self._kept, self._kept_for = {}, history
        key = tuple(search_space.items())
        if key not in self._kept:
            if self._gamma is None:
                self._gamma = tpe.default_gamma if len(study.directions) <= 1 else tpe.default_gamma_multiobjective
            below, above = tpe._split_trials(study, finished, self._gamma(len(finished)))
            self._kept[key] = (self._get_internal_repr(below, search_space, study),
                               self._get_internal_repr(above, search_space, study))
        below_obs, above_obs = self._kept[key]
        if running:  # TPE's liar: running trials join the "above" density, after the finished (by number)
            extra = self._get_internal_repr(running, search_space, study)
            above_obs = {k: np.concatenate([above_obs[k], extra[k]]) for k in above_obs}
        mpe_below = self._estimator(study, search_space, below_obs, handle_below=True)
        mpe_above = self._estimator(study, search_space, above_obs, handle_below=False)
        samples = mpe_below.sample(self._rng.rng, self._n_ei_candidates)
        chosen = optuna.samplers.TPESampler._compare(samples, self._compute_acquisition_func(samples, mpe_below,
                                                                                               mpe_above))
        return {name: dist.to_external_repr(chosen[name]) for name, dist in search_space.items()}

    def _estimator(self, study, search_space, observations, handle_below: bool):
        """`TPESampler._build_parzen_estimator` from observations already in internal form."""
        weights = None
        if handle_below and study._is_multi_objective():
            weights = np.ones(len(next(iter(observations.values()))) if observations else 0)
        return self._parzen_estimator_cls(observations, search_space, self._parzen_estimator_parameters, weights)
