"""Optuna storage for hypernas studies: opening it safely, and annotating finished trials.

Usage:
    storage = open_storage("sqlite:///runs/demo/study.db")
    annotate_trial(storage, trial, user_attrs={"trained_accuracy": 0.96})
"""

from __future__ import annotations

import json
import os
from typing import Any

import optuna

from hypernas.errors import HypernasError


class StorageError(HypernasError):
    """A study storage cannot be reached or does not hold what was asked for."""


def redact(url: str) -> str:
    """The storage URL with any password masked, safe to print or log."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy understands: show only its scheme
        return url.split("://", 1)[0] + "://***"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage (SQLite or PostgreSQL). SQLite gets write-ahead logging, so the
    dashboard can read while a search writes, and commits do not wait for a full fsync."""
    import sqlalchemy

    if url.startswith("sqlite:///"):
        folder = os.path.dirname(os.path.abspath(url[len("sqlite:///"):]))
        os.makedirs(folder, exist_ok=True)
    try:
        storage = optuna.storages.RDBStorage(url, heartbeat_interval=None)
    except Exception as err:
        raise StorageError(f"cannot open storage {redact(url)}: {type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''}".replace(url, redact(url))) from None
    if storage.engine.name == "sqlite":

        @sqlalchemy.event.listens_for(storage.engine, "connect")
        def _pragmas(connection, _record):  # every new connection, so the setting always holds
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        storage.engine.dispose()
    return storage


def annotate_trial(storage: optuna.storages.RDBStorage, trial_id: int, user_attrs: dict[str, Any] | None = None,
                   system_attrs: dict[str, Any] | None = None) -> None:
    """Add attributes to a trial that has already finished.

    Optuna's API refuses to change a finished trial, but final training happens after the
    search, and its result belongs on the trial it checks (`trained_accuracy`). This writes
    the attribute rows with Optuna's own table models, in one transaction.
    """
    from optuna.storages._rdb import models

    session = storage.scoped_session()
    try:
        for model, attrs in ((models.TrialUserAttributeModel, user_attrs or {}),
                             (models.TrialSystemAttributeModel, system_attrs or {})):
            for key, value in attrs.items():
                row = session.query(model).filter_by(trial_id=trial_id, key=key).one_or_none()
                if row is None:
                    session.add(model(trial_id=trial_id, key=key, value_json=json.dumps(value)))
                else:
                    row.value_json = json.dumps(value)
        session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


def attach_artifact(storage: optuna.storages.RDBStorage, trial_id: int, store: Any, path: str) -> str:
    """Store a file as an artifact of a finished trial, where optuna-dashboard shows it."""
    import dataclasses
    import mimetypes
    import uuid

    from optuna.artifacts import ArtifactMeta
    from optuna.artifacts._upload import ARTIFACTS_ATTR_PREFIX

    artifact_id = str(uuid.uuid4())
    meta = ArtifactMeta(artifact_id=artifact_id, filename=os.path.basename(path),
                        mimetype=mimetypes.guess_type(path)[0] or "application/octet-stream", encoding=None)
    with open(path, "rb") as f:
        store.write(artifact_id, f)
    annotate_trial(storage, trial_id, system_attrs={ARTIFACTS_ATTR_PREFIX + artifact_id: json.dumps(dataclasses.asdict(meta))})
    return artifact_id


def load_study(url: str, name: str) -> optuna.Study:
    """An existing study, or a clear error naming the studies the storage does hold."""
    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise StorageError(f"no study {name!r} in {redact(url)}; it holds {names or 'no studies'}") from None
