"""Files hypernas writes: whole or not at all, and a clear error when the disk says no.

Every file is written to a temporary file in the same folder, flushed to disk, then renamed
over its name: a crash or a full disk never leaves half a file under the real name, and the
earlier version stays whole. An `OSError` (no space left, a read-only disk, a folder where a
file should be) becomes one `HypernasError` line that names the file. Only a regular file is
ever replaced: a device, a pipe or a folder under the name is refused.

Usage:
    save_file(lambda f: torch.save(state, f), "runs/a/hypernet.pt", CheckpointError, "checkpoint")
    save_text('{"a": 1}', "out/meta.json")
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from typing import BinaryIO

from hypernas.errors import HypernasError


def _temp_file(path: str, error: type[HypernasError], what: str) -> tuple[int, str]:
    """A new hidden temporary file beside `path` (its folder made if need be). Only a regular
    file is ever replaced: a device, a pipe or a folder at `path` (`--out /dev/null`, run as
    root, would otherwise replace the system's /dev/null with a PNG) is refused."""
    if not path:
        raise error(f"cannot write {what or 'a file'}: no file name given")
    try:
        mode = os.stat(path).st_mode
    except OSError:  # nothing there yet (or nothing readable): the write itself says why, if it fails
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise error(f"cannot write {what + ' ' if what else ''}{path!r}: it is not a regular file (a folder, a device "
                    "or a pipe), and hypernas replaces only regular files")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        return tempfile.mkstemp(prefix=".hypernas-", suffix=".tmp", dir=folder)
    except OSError as err:
        raise error(_why(path, err, what)) from None


def _why(path: str, err: OSError, what: str) -> str:
    where = f" ({err.filename})" if err.filename and os.path.abspath(str(err.filename)) != os.path.abspath(path) else ""
    return f"cannot write {what + ' ' if what else ''}{path!r}: {err.strerror or err}{where}"


def check_writable(path: str, error: type[HypernasError] = HypernasError, what: str = "") -> None:
    """Fail now, not after hours of work, when a file cannot be written at `path`."""
    fd, tmp = _temp_file(path, error, what)
    os.close(fd)
    os.unlink(tmp)


def save_file(write: Callable[[BinaryIO], None], path: str, error: type[HypernasError] = HypernasError,
              what: str = "") -> None:
    """`write(f)` into a temporary file beside `path`, then rename it to `path`.

    A process killed mid-write leaves at most a `.hypernas-*.tmp` file beside `path`, which
    nothing reads; the file at `path` is the previous one, whole."""
    fd, tmp = _temp_file(path, error, what)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            # The rename below is atomic, but without fsync a power cut can commit the rename
            # before the data, leaving an empty or partial file under the real name.
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(os.path.dirname(os.path.abspath(path)))  # and make the rename itself durable
    except BaseException as err:
        # torch's writer reports a full disk as its own error ("unexpected pos"); whether the disk
        # is full must be read while the partial file still fills it, before it is removed.
        full = isinstance(err, RuntimeError) and _nearly_full(path)
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise error(_why(path, err, what)) from None
        if full:
            raise error(_why(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), what)) from None
        raise


def _nearly_full(path: str) -> bool:
    try:
        return shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free < 2**20
    except OSError:
        return False


def save_text(text: str, path: str, error: type[HypernasError] = HypernasError, what: str = "") -> None:
    """`save_file` for text, as UTF-8."""
    save_file(lambda f: f.write(text.encode("utf-8")), path, error, what)


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some systems cannot open a folder; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
