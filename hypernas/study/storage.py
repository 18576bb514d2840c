"""Optuna storage for hypernas studies: opening it safely, locking it across workers, reading a study.

Usage:
    storage = open_storage("sqlite:///runs/demo/study.db")
    with study_lock(storage, "demo"): ...
    study = load_study("sqlite:///runs/demo/study.db", "demo")
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import optuna

from hypernas.errors import StorageError
from hypernas.optuna_private import rdb_of


def redact(url: str) -> str:
    """The storage URL with any password masked, safe to print or log."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy understands: show only its scheme, if it has one
        return url.split("://", 1)[0] + "://***" if "://" in url else "***"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage (SQLite or PostgreSQL). SQLite gets write-ahead logging, so the
    dashboard can read while a search writes, and commits do not wait for a full fsync."""
    import sqlalchemy

    if url.startswith("sqlite:///"):
        folder = os.path.dirname(os.path.abspath(url[len("sqlite:///"):]))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise StorageError(f"cannot open storage {redact(url)}: {err.strerror} ({err.filename})") from None
    try:
        storage = _rdb_storage(url)
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


def _rdb_storage(url: str, attempts: int = 5) -> optuna.storages.RDBStorage:
    import sqlalchemy

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=None)
        except sqlalchemy.exc.DBAPIError as err:
            # Workers started together race to create Optuna's tables; the loser finds them
            # made (PostgreSQL: an integrity or programming error; SQLite: an operational
            # "already exists" or "locked"). Any other error, a refused connection say, is final.
            lost_race = isinstance(err, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)) or (
                isinstance(err, sqlalchemy.exc.OperationalError)
                and any(text in str(err) for text in ("already exists", "database is locked")))
            if not lost_race or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


@contextlib.contextmanager
def study_lock(storage: Any, study_name: str, purpose: str = "write") -> Iterator[None]:
    """Hold a lock that every hypernas worker of `study_name` honours, across processes and
    (with PostgreSQL) machines: a session advisory lock on PostgreSQL, an advisory file lock
    beside a SQLite file, a plain thread lock for an in-memory study. The server or the
    kernel releases it when its holder dies, so a killed worker never blocks the others.

    Usage: with study_lock(storage, "demo", "hypernet"): train_once()
    """
    import hashlib

    engine = getattr(rdb_of(storage), "engine", None)
    key = f"hypernas:{study_name}:{purpose}"
    if engine is not None and engine.name == "postgresql":
        import sqlalchemy

        lock_id = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
                conn.commit()
    elif engine is not None and engine.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        import fcntl

        digest = hashlib.blake2b(key.encode(), digest_size=6).hexdigest()
        with open(f"{os.path.abspath(engine.url.database)}.{digest}.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    else:  # one process owns an in-memory study; other RDBs: one writer per study (documented)
        with _local_locks.setdefault(key, threading.Lock()):
            yield


_local_locks: dict[str, threading.Lock] = {}


def load_study(url: str, name: str) -> optuna.Study:
    """An existing study, or a clear error naming the studies the storage does hold."""
    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise StorageError(f"no study {name!r} in {redact(url)}; it holds {names or 'no studies'}") from None
