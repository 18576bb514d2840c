"""The project's error types. Every error a user can cause derives from `HypernasError`.

The command line turns any `HypernasError` into one line on stderr and exit code 1 (argparse
keeps exit code 2 for a command line it cannot parse), so messages must name the offending
thing (node, file, option) and say what to do.

Usage:
    raise OptionError("trials must be an integer >= 1, got 0")
"""

from __future__ import annotations

from typing import Any


class HypernasError(Exception):
    """Base of every error hypernas raises on bad input."""


class GraphError(HypernasError):
    """An architecture graph is invalid. `node` names the offending node where there is one."""

    def __init__(self, message: str, node: object | None = None):
        self.node = node
        super().__init__(f"node {node!r}: {message}" if node is not None else message)


class UnknownNameError(HypernasError, KeyError):
    """A registry lookup (op, space, dataset) failed; the message suggests the nearest names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class SpaceError(HypernasError):
    """A search space could not be loaded or did not return a valid graph."""


class DatasetError(HypernasError):
    """A dataset is missing, unreadable or malformed."""


class CheckpointError(HypernasError):
    """A checkpoint is missing, corrupt, or incompatible with the requested use."""


class StorageError(HypernasError):
    """A study storage cannot be reached or does not hold what was asked for."""


class OptionError(HypernasError):
    """An option (a flag, a TOML key or a config field) has a wrong type or value."""


class HypernasWarning(UserWarning):
    """Something hypernas did for the user that they should know of (a guess it made, a
    partly trained checkpoint): the command line shows it as one line on stderr."""


def warn(message: str) -> None:
    """Announce `message` as a `HypernasWarning`."""
    import warnings

    warnings.warn(message, HypernasWarning, stacklevel=3)


def first_line(err: BaseException) -> str:
    """`Type: first line` of what went wrong at the bottom of `err`'s chain of causes: a
    library's wrapper says less than what it wraps (Optuna turns a full disk, a locked file
    or a refused password into "invalid data in the commit").

    Usage: raise StorageError(f"cannot write the study: {first_line(err)}") from None"""
    while err.__cause__ is not None:
        err = err.__cause__
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def shown(value: Any, limit: int = 80) -> str:
    """`repr(value)`, cut to `limit` characters: an error echoes what it refuses, but a line of
    200,000 characters is no longer one line a person reads.

    Usage: raise SpaceError(f"not an NB201 string: {shown(text)}")"""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 5]}...{text[-2:]}"


def unknown_name(kind: str, name: str, known: list[str]) -> UnknownNameError:
    """Build an `UnknownNameError` that suggests the closest known names."""
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return UnknownNameError(f"unknown {kind} {name!r}.{hint} Known: {', '.join(sorted(known))}.")
