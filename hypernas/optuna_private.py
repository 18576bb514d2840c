"""Every use of Optuna's private API, in one place, each with why the public API does not serve.

`tests/test_optuna_private.py` runs each of these against the installed Optuna, so an Optuna
release that moves one of them fails that test by name instead of a search at run time.

- A study's storage and id: Optuna keeps them private (`Study._storage`, `Study._study_id`),
  but a lock, a count query or a study system attribute needs them, and the study is what
  the code hands around.
- A trial's storage id (`FrozenTrial._trial_id`): the only key the storage takes.
- Attributes of a finished trial: the final training's result (`trained_accuracy`) and its
  drawing belong on the trial they check, but Optuna's API refuses to change a finished
  trial. They are written with Optuna's own table models, in one transaction.
- The artifact attribute prefix (`optuna.artifacts._upload.ARTIFACTS_ATTR_PREFIX`), with which
  optuna-dashboard finds a trial's artifacts.

Usage:
    storage, study_id = storage_of(study), study_id_of(study)
    annotate_trial(study, trial, user_attrs={"trained_accuracy": 0.96})
"""

from __future__ import annotations

import json
import os
from typing import Any

import optuna

from hypernas.errors import StorageError, first_line


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


def annotate_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial, user_attrs: dict[str, Any] | None = None,
                   system_attrs: dict[str, Any] | None = None) -> None:
    """Add attributes to a trial that has already finished, in one transaction."""
    from optuna.storages._rdb import models

    session = rdb_of(storage_of(study)).scoped_session()
    try:
        for model, attrs in ((models.TrialUserAttributeModel, user_attrs or {}),
                             (models.TrialSystemAttributeModel, system_attrs or {})):
            for key, value in attrs.items():
                row = session.query(model).filter_by(trial_id=trial_id_of(trial), key=key).one_or_none()
                if row is None:
                    session.add(model(trial_id=trial_id_of(trial), key=key, value_json=json.dumps(value)))
                else:
                    row.value_json = json.dumps(value)
        session.commit()
    except Exception as err:  # a full disk, a locked or read-only database: one line, nothing half-written
        session.rollback()
        raise StorageError(f"cannot write to study {study.study_name!r}: {first_line(err)}") from None
    finally:
        session.close()


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
