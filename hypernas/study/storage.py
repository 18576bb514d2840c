"""Optuna storage for hypernas studies: opening it safely, locking it across workers, reading a study.

Usage:
    storage = open_storage("sqlite:///runs/demo/study.db")
    with study_lock(storage, "demo"): ...
    study = load_study("sqlite:///runs/demo/study.db", "demo")
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import optuna

from hypernas.errors import StorageError, first_line
from hypernas.optuna_private import rdb_of

# Query parameters and libpq keywords that carry a secret: password, sslpassword, passfile, ...
_SECRET = re.compile(r"((?:^|[?&;\s])[^=&;\s]*(?:pass|pwd|secret|token)[^=&;\s]*=)[^&;\s]*", re.IGNORECASE)


def redact(url: str) -> str:
    """The storage URL with any password masked, in the user part and in the query alike,
    safe to print or log."""
    try:
        from sqlalchemy.engine import make_url

        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy understands: show only its scheme, if it has one
        return url.split("://", 1)[0] + "://***" if "://" in url else "***"
    return _SECRET.sub(r"\1***", shown)


def mask_secrets(text: str, url: str) -> str:
    """`text` (a library's error message, say) with the URL and any `password=...` masked."""
    return _SECRET.sub(r"\1***", text.replace(url, redact(url)))


def open_storage(url: str, read_only: bool = False) -> optuna.storages.RDBStorage:
    """An RDB storage (SQLite or PostgreSQL). SQLite gets write-ahead logging, so the
    dashboard can read while a search writes, and commits do not wait for a full fsync.

    `read_only` is for the commands that only read (export, plot): nothing is created or
    changed, not even Optuna's tables in a foreign database, and a study on read-only media
    can still be read. A SQLite file that does not exist is then an error, not a new file."""
    import sqlalchemy

    if url.startswith("sqlite:///"):
        path = os.path.abspath(url[len("sqlite:///"):])
        if read_only:
            if not os.path.isfile(path):
                raise StorageError(f"no study database at {path}")
            return _read_only_sqlite(path, url)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except OSError as err:
            raise StorageError(f"cannot open storage {redact(url)}: {err.strerror} ({err.filename})") from None
    engine_kwargs = {"connect_args": {"options": "-c default_transaction_read_only=on"}} if (
        read_only and url.startswith("postgresql")) else None
    try:
        storage = _rdb_storage(url, read_only=read_only, engine_kwargs=engine_kwargs)
    except Exception as err:
        raise StorageError(mask_secrets(f"cannot open storage {redact(url)}: {first_line(err)}", url)) from None
    if storage.engine.name == "sqlite":

        @sqlalchemy.event.listens_for(storage.engine, "connect")
        def _pragmas(connection, _record):  # every new connection, so the setting always holds
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        storage.engine.dispose()
    return storage


def _read_only_sqlite(path: str, url: str) -> optuna.storages.RDBStorage:
    """A SQLite study opened read-only; on media where even SQLite's shared-memory file cannot
    be made (a read-only disk), as immutable."""
    import sqlite3
    from urllib.parse import quote

    last = None
    for flags in ("mode=ro", "mode=ro&immutable=1"):
        uri = f"file:{quote(path)}?{flags}"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as con:  # what the file is, before Optuna
                tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.Error as err:
            last = err
            continue
        if "studies" not in tables:
            raise StorageError(f"{path} is not an Optuna study database (it has no study tables)")
        try:
            return _rdb_storage(f"sqlite:///{uri}&uri=true", read_only=True)
        except Exception as err:
            last = err
    raise StorageError(mask_secrets(f"cannot read study database {path}: {first_line(last)}", url))


def _rdb_storage(url: str, attempts: int = 5, read_only: bool = False,
                 engine_kwargs: dict | None = None) -> optuna.storages.RDBStorage:
    import sqlalchemy

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=None,
                                              skip_table_creation=read_only)
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


class _Lock:
    """A lock every hypernas worker of a study honours, across processes and (with PostgreSQL)
    machines: a session advisory lock on PostgreSQL, an advisory file lock beside a SQLite
    file, a plain thread lock for an in-memory study. The server or the kernel releases it
    when its holder dies, so a killed worker never blocks the others."""

    def __init__(self, storage: Any, key: str):
        import hashlib

        self.engine = getattr(rdb_of(storage), "engine", None)
        self.kind = "thread"  # one process owns an in-memory study; other RDBs: one writer per study (documented)
        if self.engine is not None and self.engine.name == "postgresql":
            self.kind = "postgresql"
            self.lock_id = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)
            self.conn = None
        elif self.engine is not None and self.engine.name == "sqlite" and self.engine.url.database not in (
                None, "", ":memory:"):
            self.kind = "file"
            digest = hashlib.blake2b(key.encode(), digest_size=6).hexdigest()
            self.path = f"{os.path.abspath(self.engine.url.database)}.{digest}.lock"
            self.file = None
        else:
            self.thread_lock = _local_locks.setdefault(key, threading.Lock())

    def try_acquire(self) -> bool:
        if self.kind == "postgresql":
            import sqlalchemy

            if self.conn is None:
                self.conn = self.engine.connect()
            got = self.conn.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:id)"), {"id": self.lock_id}).scalar()
            self.conn.commit()
            return bool(got)
        if self.kind == "file":
            import fcntl

            if self.file is None:
                self.file = open(self.path, "a")
            try:
                fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
        return self.thread_lock.acquire(blocking=False)

    def release(self) -> None:
        if self.kind == "postgresql":
            import sqlalchemy

            self.conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:id)"), {"id": self.lock_id})
            self.conn.commit()
        elif self.kind == "file":
            import fcntl

            fcntl.flock(self.file, fcntl.LOCK_UN)
        else:
            self.thread_lock.release()
        self.close()

    def close(self) -> None:
        if self.kind == "postgresql" and self.conn is not None:
            self.conn.close()
            self.conn = None
        elif self.kind == "file" and self.file is not None:
            self.file.close()
            self.file = None


_local_locks: dict[str, threading.Lock] = {}
WAIT_NOTE_SECONDS = (2.0, 30.0)  # the first note after this long, then one every so often


@contextlib.contextmanager
def study_lock(storage: Any, study_name: str, purpose: str = "write") -> Iterator[None]:
    """Hold the study's lock for `purpose`, across processes and machines (`_Lock`). While
    another live worker holds it, say so on stderr, with how long this one has waited.

    Usage: with study_lock(storage, "demo", "hypernet"): train_once()
    """
    lock = _Lock(storage, f"hypernas:{study_name}:{purpose}")
    start, note = time.monotonic(), WAIT_NOTE_SECONDS[0]
    while not lock.try_acquire():
        waited = time.monotonic() - start
        if waited >= note:
            print(f"hypernas: waiting for another worker's lock on study {study_name!r} ({purpose}): "
                  f"{waited:.0f} s so far", file=sys.stderr, flush=True)
            note += WAIT_NOTE_SECONDS[1]
        time.sleep(0.05)
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def worker_slot(storage: Any, study_name: str) -> Iterator[int]:
    """The lowest worker index of the study no live worker holds, held until the block ends.
    Workers of one study seed their samplers apart by it. A worker that dies frees its index,
    so a rerun after a crash takes the same index, and with it the same sampler seed."""
    index = 0
    while True:
        lock = _Lock(storage, f"hypernas:{study_name}:worker-{index}")
        if lock.try_acquire():
            break
        lock.close()
        index += 1
    try:
        yield index
    finally:
        lock.release()


def load_study(url: str, name: str, read_only: bool = False) -> optuna.Study:
    """An existing study, or a clear error naming the studies the storage does hold."""
    storage = open_storage(url, read_only=read_only)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise StorageError(f"no study {name!r} in {redact(url)}; it holds {names or 'no studies'}") from None
