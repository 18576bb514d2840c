"""Options declared once, on config dataclasses, and read alike from Python, TOML and flags.

A config is a frozen dataclass whose fields are declared with `option(default, help, ...)`:
the annotation gives the type, the keywords give bounds or choices. From that declaration:
- `check(config)` validates every field (call it in `__post_init__`), naming the field;
- `add_flags(parser, cls)` adds one `--field-name` flag per field, its default in the help, and
  with `grouped=True` each under the heading its field's `group` names (a table's fields under
  the table's), so that `--help` reads in sections;
- `given_flags(args, cls)` collects the flags a user set, as a mapping of field names;
- `SuggestingParser` is argparse with a "did you mean" for a mistyped flag;
- `read_mapping(cls, mapping, where)` checks a TOML table key by key (a key may be spelt
  `top_k` or `top-k`), naming the key, and returns the values to build the config from.
A plain dataclass field (not declared with `option`) is no option: Python sets it, never a
flag or a TOML key. A field whose type is itself a config is a nested table: with `table="fit"` its keys sit
in `[fit]` and its flags are `--fit-KEY`; with no table they sit beside the parent's.

argparse and tomllib do the parsing; what is written here is the one walk over the
declarations that keeps the flag, the TOML key and the field the same option, with our
one-line errors. Libraries that derive CLIs from dataclasses (tyro, simple-parsing) would
bring their own error style and no TOML checks.

Usage:
    @dataclass(frozen=True)
    class TrainConfig:
        epochs: int = option(6, "training epochs", low=0)

        def __post_init__(self):
            check(self)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from hypernas.errors import OptionError

_NO_DEFAULT = dataclasses.MISSING


def option(default: Any = _NO_DEFAULT, help: str = "", *, low: float | None = None, high: float | None = None,
           above: float | None = None, below: float | None = None,
           choices: tuple | Callable[[], tuple] | None = None, flag: bool = True, table: str | None = None,
           group: str | None = None) -> Any:
    """A dataclass field that is also an option. `low`/`high` bound it inclusively, `above`/
    `below` strictly; `choices` lists its values (or a function that lists them, imported
    late); `flag=False` keeps it off the command line (TOML and Python only); `table` names
    the TOML table and flag prefix of a nested config; `group` the `--help` section of its flag
    (and of every flag of a nested config)."""
    meta = {"help": help, "low": low, "high": high, "above": above, "below": below, "choices": choices,
            "flag": flag, "table": table, "group": group}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _inner(kind: Any) -> tuple[Any, bool]:
    """(the type without `| None`, whether None is allowed)."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return args[0], True
    return kind, False


def _choices(f: dataclasses.Field) -> tuple | None:
    choices = f.metadata.get("choices")
    return choices() if callable(choices) else choices


def _describe(kind: Any) -> str:
    if typing.get_origin(kind) is tuple:
        return "a list of integers" if (typing.get_args(kind) or (str,))[0] is int else "a list of strings"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a table"}.get(
        typing.get_origin(kind) or kind, getattr(kind, "__name__", str(kind)))


def check_value(f: dataclasses.Field, kind: Any, value: Any, label: str) -> Any:
    """`value` checked against the field's type, bounds and choices; returns it normalised
    (an int where a float is asked for becomes a float, a comma list a tuple). Raises
    `OptionError` naming `label`."""
    kind, optional = _inner(kind)
    if value is None and optional:
        return None
    base = typing.get_origin(kind) or kind
    ok = {int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
          bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str) and v != "",
          dict: lambda v: isinstance(v, Mapping)}
    what = {str: "a non-empty string", float: "a finite number"}.get(base) or _describe(base)
    if base is tuple:
        item = (typing.get_args(kind) or (str,))[0]
        if isinstance(value, str):  # as on the command line: "score,params" or "1000,5000"
            value = tuple(part.strip() for part in value.split(",") if part.strip())
            if item is int and all(re.fullmatch(r"[+-]?\d+", v) for v in value):
                value = tuple(int(v) for v in value)
        well_typed = (lambda v: isinstance(v, str) and v) if item is str else (
            lambda v: isinstance(v, int) and not isinstance(v, bool))
        if not isinstance(value, (list, tuple)) or not value or not all(well_typed(v) for v in value):
            raise OptionError(f"{label} must be a non-empty list of {'strings' if item is str else 'integers'}, "
                              f"got {value!r}")
        value = tuple(value)
    elif base in ok:
        if not ok[base](value):
            raise OptionError(f"{label} must be {what}, got {value!r}")
        value = float(value) if base is float else dict(value) if base is dict else value
    meta = f.metadata
    for bound, test, words in (("low", lambda v, b: v >= b, ">="), ("high", lambda v, b: v <= b, "<="),
                               ("above", lambda v, b: v > b, ">"), ("below", lambda v, b: v < b, "<")):
        if meta.get(bound) is not None and not test(value, meta[bound]):
            shown = meta[bound] if isinstance(meta[bound], int) else f"{meta[bound]:g}"  # a seed's bound in full
            raise OptionError(f"{label} must be {what} {words} {shown}, got {value!r}")
    choices = _choices(f)
    if choices is not None:
        bad = [v for v in (value if isinstance(value, tuple) else (value,)) if v not in choices]
        if bad:
            raise OptionError(f"{label} must be one of {', '.join(map(str, choices))}; got {bad[0]!r}")
    return value


def _is_config(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def check(config: Any) -> None:
    """Validate every option field of a config instance (nested configs check themselves)."""
    hints = _hints(type(config))
    for f in dataclasses.fields(config):
        if _is_config(hints[f.name]) or not f.metadata:  # a plain field is not an option: Python only
            continue
        value = check_value(f, hints[f.name], getattr(config, f.name), f.name)
        if value is not getattr(config, f.name):
            object.__setattr__(config, f.name, value)  # normalised: frozen dataclasses allow this in __post_init__


def _level(cls: type) -> tuple[dict[str, tuple[dataclasses.Field, Any]], dict[str, type]]:
    """The keys of one TOML level of `cls`: its options, those of untabled nested configs
    beside them, and its tables (key -> nested config class)."""
    scalars, tables = {}, {}
    for key, (f, kind, _), nested in _fields(cls):
        if nested:
            tables[key] = kind
        else:
            scalars[key] = (f, kind)
    return scalars, tables


def _fields(cls: type, group: str | None = None) -> list[tuple[str, tuple[dataclasses.Field, Any, str | None], bool]]:
    """(key, (field, type, its --help group), whether it is a table) of one TOML level of `cls`,
    untabled nested configs' fields beside its own; a field without a group takes its parent's."""
    hints = _hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind, own = hints[f.name], f.metadata.get("group") or group
        if not f.metadata and not _is_config(kind):
            continue
        if not _is_config(kind):
            out.append((f.name, (f, kind, own), False))
        elif f.metadata.get("table"):
            out.append((f.metadata["table"], (f, kind, own), True))
        else:
            out += _fields(kind, own)
    return out


def _walk(cls: type, path: tuple[str, ...] = (), group: str | None = None
          ) -> list[tuple[tuple[str, ...], dataclasses.Field, Any, str | None]]:
    """(TOML key path, field, type, --help group) of every option of `cls`."""
    out = []
    for key, (f, kind, own), nested in _fields(cls, group):
        out += _walk(kind, (*path, key), own) if nested else [((*path, key), f, kind, own)]
    return out


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not _NO_DEFAULT:
        return f.default
    return f.default_factory() if f.default_factory is not _NO_DEFAULT else _NO_DEFAULT


def _defaults(cls: type, instance: Any = None, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """The default of every option of `cls` by TOML key path. A nested config's defaults are
    those of the instance its field defaults to, which may differ from its class's."""
    hints, out = _hints(cls), {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        value = getattr(instance, f.name) if instance is not None else _field_default(f)
        if _is_config(kind):
            table = f.metadata.get("table")
            out.update(_defaults(kind, None if value is _NO_DEFAULT else value, (*path, table) if table else path))
        elif f.metadata:
            out[(*path, f.name)] = value
    return out


def flag_of(path: tuple[str, ...] | list[str], prefix: str = "") -> str:
    """The flag of the option at a TOML key path: ("fit", "steps") -> "--fit-steps"."""
    return "--" + prefix + "-".join(path).replace("_", "-")


def add_flags(parser: argparse.ArgumentParser, cls: type, only: tuple[str, ...] | None = None,
              grouped: bool = False) -> dict[str, Any]:
    """One flag per option of `cls` (those declared with `flag=False` aside; with `only`, just
    those keys). The parsed value is None unless given, so a flag overrides a config file
    only when it is set. With `grouped`, each flag goes into the argument group its field
    names (made here, in the order first met); returns the groups by name."""
    groups: dict[str, Any] = {}
    defaults = _defaults(cls)
    for path, f, kind, group in _walk(cls):
        if not f.metadata.get("flag", True) or (only is not None and ".".join(path) not in only):
            continue
        target = parser
        if grouped and group:
            if group not in groups:
                groups[group] = parser.add_argument_group(group)
            target = groups[group]
        base, _ = _inner(kind)
        help_text = f.metadata.get("help", "")
        choices = _choices(f)
        if choices:
            help_text += f" ({' | '.join(map(str, choices))})"
        default = defaults.get(path, _NO_DEFAULT)
        if default is not _NO_DEFAULT and default is not None:
            help_text += f" [default: {','.join(map(str, default)) if isinstance(default, tuple) else default}]"
        flag, dest = flag_of(path), "_".join(path)
        help_text = help_text.replace("%", "%%")  # argparse formats help with %: "95% interval" is no placeholder
        if base is bool:
            target.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            convert = {int: int, float: float}.get(base, str)
            target.add_argument(flag, dest=dest, type=convert, default=None, help=help_text,
                                metavar=path[-1].upper())
    return groups


class SuggestingParser(argparse.ArgumentParser):
    """argparse, with a suggestion for a mistyped flag (difflib's closest; Python 3.14's
    `suggest_on_error` does this for choices only, and this Python may predate it). A parser
    with `subcommands` (name -> parser) lets the subcommand given report a flag it does not
    know, since it knows its own flags to suggest from.

    Usage: SuggestingParser(prog="hypernas").parse_args(["--tiral", "5"])   # did you mean --trials?"""

    subcommands: typing.ClassVar[dict] = {}  # set on an instance by whoever adds the subparsers

    def error(self, message: str):
        import difflib
        import re

        known = [o for action in self._actions for o in action.option_strings]
        for typed in re.findall(r"(?<![\w-])(--?[\w-]+)", message) if "unrecognized arguments" in message else []:
            close = difflib.get_close_matches(typed.split("=")[0], known, n=1, cutoff=0.6)
            if close:
                message += f"; did you mean {close[0]}?"
                break
        super().error(message)

    def parse_args(self, args=None, namespace=None):
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            command = self.subcommands.get(getattr(parsed, "command", None), self)
            command.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed


def given_flags(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The options of `cls` set on the command line, as a TOML-shaped mapping."""
    out: dict[str, Any] = {}
    for path, *_ in _walk(cls):
        value = getattr(args, "_".join(path), None)
        if value is not None:
            node = out
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
    return out


def read_mapping(cls: type, mapping: Mapping[str, Any], where: str,
                 label: Callable[[tuple[str, ...]], str] | None = None, _path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check a TOML-shaped mapping of options for `cls`: every key known (`top-k` reads as
    `top_k`), every value of its option's type, bounds and choices. Returns the checked values
    in the same shape. An error names `where` and the key, or `label(key path)` (a flag)."""
    scalars, tables = _level(cls)
    out: dict[str, Any] = {}
    for raw_key, value in mapping.items():
        key = str(raw_key).replace("-", "_")
        path = (*_path, key)
        name = label(path) if label else f"{where}: {'.'.join(path)}"
        if key in scalars:
            f, kind = scalars[key]
            out[key] = check_value(f, kind, value, name)
        elif key in tables:
            if not isinstance(value, Mapping):
                raise OptionError(f"{name} must be a table ([{'.'.join(path)}] in TOML), got {value!r}")
            out[key] = read_mapping(tables[key], value, where, label, path)
        else:
            import difflib

            known = sorted([*scalars, *tables])
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            raise OptionError(f"{where}: unknown option {'.'.join(path)!r}; {hint}")
    return out


def build(cls: type, values: Mapping[str, Any], base: Any = None) -> Any:
    """A config from checked TOML-shaped values (`read_mapping`); the rest keep their defaults,
    or the values of `base` (an instance of `cls`). A nested config starts from the instance
    its field defaults to."""
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if not _is_config(kind):
            if f.name in values:
                kwargs[f.name] = values[f.name]
            continue
        nested = getattr(base, f.name) if base is not None else _field_default(f)
        nested = None if nested is _NO_DEFAULT else nested
        if f.metadata.get("table"):
            if f.metadata["table"] in values:
                kwargs[f.name] = build(kind, values[f.metadata["table"]], nested)
        else:
            inner = {k: v for k, v in values.items() if k in _level(kind)[0] or k in _level(kind)[1]}
            if inner:
                kwargs[f.name] = build(kind, inner, nested)
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """`top` over `base`, nested tables merged key by key (a flag over its TOML key)."""
    out = dict(base)
    for key, value in top.items():
        out[key] = merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out
