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
from hypernas.study.attrs import checked_attrs

# Names of query parameters and libpq keywords that carry a secret: password, sslpassword, ...
_SECRET_KEY = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)
_SECRET = re.compile(r"((?:^|[?&;\s])[^=&;\s]*(?:pass|pwd|secret|token)[^=&;\s]*\s*=\s*)('[^']*'|[^&;\s]*)",
                     re.IGNORECASE)


def redact(url: str) -> str:
    """The storage URL with every value libpq would read as a password masked: in the user
    part, in the query, and inside a query value that is itself a libpq connection string
    (`?dsn=password%3D...`); safe to print or log.

    Usage: redact("postgresql://u:secret@host/db")  # 'postgresql://u:***@host/db'"""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
        query = {key: _masked(key, value) for key, value in parsed.query.items()}
        shown = parsed.set(query=query).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy understands: show only its scheme, if it has one
        return url.split("://", 1)[0] + "://***" if "://" in url else "***"
    return shown.replace("%2A%2A%2A", "***")


def _masked(key: str, value: str | tuple) -> str | tuple:
    """A query value with its secrets masked: all of it under a secret's name, the secret
    keywords of a libpq connection string in it (parsed by psycopg, as libpq would)."""
    if isinstance(value, tuple):  # a parameter given more than once
        return tuple(_masked(key, v) for v in value)
    if _SECRET_KEY.search(key):
        return "***"
    params = _conninfo(value)
    if params is None:
        return "***" if "=" in value and _SECRET_KEY.search(value) else value  # unparsed: hide it whole
    if not any(_SECRET_KEY.search(k) for k in params):
        return value
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**{k: "***" if _SECRET_KEY.search(k) else v for k, v in params.items()})


def _conninfo(text: str) -> dict | None:
    """A libpq connection string (`host=h password=p`, or a postgresql:// URI) as psycopg reads
    it, or None where it is not one (or psycopg is not installed)."""
    if "=" not in text and "://" not in text:
        return None
    try:
        from psycopg import Error
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return None
    try:
        return conninfo_to_dict(text)
    except Error:
        return None


def _secrets(url: str) -> list[str]:
    """Every secret value of a storage URL or libpq connection string, for masking wherever a
    library's message repeats one. Shorter than 4 characters, a secret says nothing a guess
    would not, and masking it would garble the message."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    found = []
    try:
        parsed = make_url(url)
        found.append(parsed.password or "")
        for key, values in parsed.query.items():
            for value in values if isinstance(values, tuple) else (values,):
                found += [value] if _SECRET_KEY.search(key) else [
                    v for k, v in (_conninfo(value) or {}).items() if _SECRET_KEY.search(k)]
    except (ArgumentError, ValueError):  # not a URL: a libpq keyword string, perhaps
        found += [v for k, v in (_conninfo(url) or {}).items() if _SECRET_KEY.search(k)]
    return [str(s) for s in found if len(str(s)) >= 4]


def mask_secrets(text: str, url: str) -> str:
    """`text` (a library's error message, say) with the URL, any `password=...` and every
    secret of the URL masked wherever it appears."""
    from urllib.parse import quote, quote_plus

    text = _SECRET.sub(r"\1***", text.replace(url, redact(url)))
    for secret in _secrets(url):
        for form in (secret, quote(secret), quote_plus(secret)):
            text = text.replace(form, "***")
    return text


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
    be made (a read-only disk), as immutable, which ignores locks: never past another
    process's lock."""
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
            if "locked" in str(err):  # another process is writing it: its pages may be half written
                break
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

    def __init__(self, storage: Any, study: str, purpose: str):
        import hashlib

        self.study, key = study, f"hypernas:{study}:{purpose}"
        self.engine = getattr(rdb_of(storage), "engine", None)
        self.kind = "thread"  # one process owns an in-memory study; other RDBs: one writer per study (documented)
        if self.engine is not None and self.engine.name == "postgresql":
            self.kind = "postgresql"
            self.lock_id = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)
            self.conn = None
        elif self.engine is not None and self.engine.name == "sqlite" and self.engine.url.database not in (
                None, "", ":memory:"):
            self.kind = "file"
            self.path = _lock_file(self.engine.url.database, study, purpose)
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
                try:
                    self.file = open(self.path, "a")
                except OSError as err:  # a folder or an unwritable file where the lock goes
                    raise StorageError(f"cannot lock study {self.study!r}: {err.strerror} ({self.path})") from None
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


def _lock_file(database: str, study: str, purpose: str) -> str:
    """The lock file beside a SQLite database of one purpose of one study."""
    import hashlib

    digest = hashlib.blake2b(f"hypernas:{study}:{purpose}".encode(), digest_size=6).hexdigest()
    return f"{os.path.abspath(database)}.{digest}.lock"


def check_not_gone(url: str, name: str) -> None:
    """Refuse a SQLite file that no longer holds a study which wrote trials to it, rather than
    make the study anew there. Every batch is written under the study's write lock, whose file
    stays beside the database; SQLite, for one, replays a -wal file of another database left
    beside it, and the study vanishes. Read only, before anything writes to the file, so that
    the study can still be recovered (here: by removing the foreign -wal file).

    Usage: check_not_gone("sqlite:///runs/demo/study.db", "demo")  # before open_storage"""
    import sqlite3
    from urllib.parse import quote

    if not url.startswith("sqlite:///"):
        return
    path = os.path.abspath(url[len("sqlite:///"):])
    lock = _lock_file(path, name, "write")
    if not os.path.exists(lock):
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)) as con:
            if con.execute("SELECT 1 FROM studies WHERE study_name = ?", (name,)).fetchone():
                return
    except sqlite3.Error as err:  # a database that cannot be read says so when it is opened
        if os.path.exists(path) and "no such table" not in str(err):
            return
    raise StorageError(f"study {name!r} wrote trials to {path} (the lock file {lock} says so), but the database no "
                       "longer holds it: it was replaced, deleted or damaged (SQLite replays the -wal file of another "
                       f"database left beside it, say); restore it, or remove {lock} to start the study afresh")


_local_locks: dict[str, threading.Lock] = {}
WAIT_NOTE_SECONDS = (2.0, 30.0)  # the first note after this long, then one every so often


@contextlib.contextmanager
def study_lock(storage: Any, study_name: str, purpose: str = "write") -> Iterator[None]:
    """Hold the study's lock for `purpose`, across processes and machines (`_Lock`). While
    another live worker holds it, say so on stderr, with how long this one has waited.

    Usage: with study_lock(storage, "demo", "hypernet"): train_once()
    """
    lock = _Lock(storage, study_name, purpose)
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
        lock = _Lock(storage, study_name, f"worker-{index}")
        if lock.try_acquire():
            break
        lock.close()
        index += 1
    try:
        yield index
    finally:
        lock.release()


def load_study(url: str, name: str, read_only: bool = False) -> optuna.Study:
    """An existing study, its attributes checked (`hypernas.study.attrs`), or a clear error
    naming the studies the storage does hold."""
    check_not_gone(url, name)
    storage = open_storage(url, read_only=read_only)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise StorageError(f"no study {name!r} in {redact(url)}; it holds {names or 'no studies'}") from None
    checked_attrs(study)  # what it records is read as untrusted
    return study
