"""Search spaces: turn an Optuna trial (define-by-run) into an architecture graph.

A space is one function `suggest(trial, *, in_channels, num_classes, **options) -> DiGraph`
that asks the trial for its choices (`trial.suggest_categorical`, `trial.suggest_int`).
Built-in spaces live in `search_spaces/` and are registered by name below; a user's own
space is a Python file with one such function, named as `path/to/file.py:function`.
`RandomTrial` answers the same calls from a seeded generator, so every space can also be
sampled without Optuna.

Usage:
    space = get_space("nb201")
    G = space.sample(seed=0, in_channels=1, num_classes=10, channels=8, cells=1)
    G = space.build(optuna_trial, in_channels=1, num_classes=10)
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import optuna

from hypernas.errors import GraphError, HypernasError, SpaceError, shown, unknown_name
from hypernas.graph import GraphInfo, canonical_hash, from_json, to_json, validate


class RandomTrial:
    """A stand-in for `optuna.Trial` that draws each choice uniformly from a seeded RNG."""

    def __init__(self, seed: int | random.Random):
        self.rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        self.params: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.params.setdefault(name, self.rng.choice(list(choices)))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return self.params.setdefault(name, self.rng.randrange(low, high + 1, step))

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        return self.params.setdefault(name, self.rng.uniform(low, high))


@dataclass(frozen=True)
class Sketch:
    """What a person draws of an architecture, where the op-level graph is too much to read.

    `cell`: the nodes of one repeated cell, and its edges (source, target, op label); `chain`:
    one box of text per block, in order. `caption` is one line about the rest (the skeleton)."""

    kind: str  # "cell" or "chain"
    nodes: list[str]
    edges: list[tuple[int, int, str]] = field(default_factory=list)
    caption: str = ""


@dataclass(frozen=True)
class Space:
    """A named search space. Optional hooks: `parse`/`format` for a compact string form
    (NB201's `|op~0|+...`), `enumerate` for spaces small enough to list, and `sketch` for a
    drawing of what varies (a cell, a chain of blocks)."""

    name: str
    suggest: Callable[..., nx.DiGraph]
    description: str = ""
    size: int | None = None
    options: dict[str, Any] = field(default_factory=dict)  # option -> default
    parse: Callable[..., nx.DiGraph] | None = None  # (text, in_channels, num_classes, **options)
    format: Callable[[nx.DiGraph], str] | None = None
    enumerate: Callable[..., Iterator[nx.DiGraph]] | None = None
    grid: dict[str, list[Any]] | None = None  # every choice, for Optuna's GridSampler
    sketch: Callable[[nx.DiGraph], Sketch] | None = None  # the drawing a person reads (`hypernas.drawing`)

    def resolve_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled in; an option the space does not take is an error, never ignored."""
        unknown = set(options) - set(self.options)
        if unknown:
            takes = ", ".join(sorted(self.options)) or "no options"
            raise SpaceError(f"space {self.name!r} does not take option(s) {sorted(unknown)}; it takes {takes}")
        for key, value in options.items():
            _check_option(self.name, key, value, self.options[key])
        return {**self.options, **options}

    def build(self, trial: Any, in_channels: int, num_classes: int, **options: Any) -> nx.DiGraph:
        """Ask `trial` for one architecture; the result is validated before it is returned."""
        return self.build_info(trial, in_channels, num_classes, **options)[0]

    def build_info(self, trial: Any, in_channels: int, num_classes: int, **options: Any) -> tuple[nx.DiGraph, GraphInfo]:
        """`build`, with the validation result, for callers that go on to hash or encode the
        graph (validating a large network again costs as much as hashing it)."""
        options = self.resolve_options(options)
        try:
            G = self.suggest(trial, in_channels=in_channels, num_classes=num_classes, **options)
        except HypernasError:
            raise
        except Exception as err:  # a user's space may raise anything; report it as the space's fault
            if type(err).__module__.startswith("optuna"):
                raise  # TrialPruned and friends are Optuna's control flow, not errors
            raise SpaceError(f"space {self.name!r} raised {type(err).__name__}: {err}") from err
        if not isinstance(G, nx.DiGraph):
            raise SpaceError(f"space {self.name!r} returned {type(G).__name__}, not a networkx.DiGraph")
        try:
            return G, validate(G)
        except GraphError as err:
            raise SpaceError(f"space {self.name!r} returned an invalid graph: {err}") from None

    def sample(self, seed: int | random.Random, in_channels: int, num_classes: int, **options: Any) -> nx.DiGraph:
        """One architecture drawn uniformly at each choice, reproducible from `seed`."""
        return self.build(RandomTrial(seed), in_channels, num_classes, **options)

    def sample_distinct(self, n: int, seed: int, in_channels: int, num_classes: int, exclude: Iterable[str] = (),
                        **options: Any) -> list[nx.DiGraph]:
        """`n` architectures drawn in turn from one seeded RNG, keeping only networks whose
        canonical hash is new and not in `exclude`."""
        rng, seen, out = random.Random(seed), set(exclude), []
        while len(out) < n:
            G, info = self.build_info(RandomTrial(rng), in_channels, num_classes, **options)
            key = canonical_hash(info)
            if key not in seen:
                seen.add(key)
                out.append(G)
        return out

    def describe(self, G: nx.DiGraph) -> str:
        """The architecture's shortest faithful text: the space's string form, else JSON."""
        return self.format(G) if self.format else to_json(G)

    def from_text(self, text: str, in_channels: int, num_classes: int, check_data: bool = True, **options: Any) -> nx.DiGraph:
        """Read an architecture given as a JSON file path, inline JSON, or the space's string form.

        JSON must fit the data (`in_channels`, `num_classes`) unless `check_data` is False."""
        text = text.strip()
        if text and not text.startswith(("{", "|")):
            if os.path.isdir(text):
                raise SpaceError(f"{text!r} is a folder, not an architecture file")
            if text.endswith(".json") and not os.path.isfile(text):
                raise SpaceError(f"no architecture file {text!r}")
            if os.path.isfile(text):
                try:
                    with open(text, encoding="utf-8") as f:
                        text = f.read().strip()
                except (OSError, UnicodeDecodeError) as err:
                    raise SpaceError(f"cannot read the architecture file {text!r}: "
                                     f"{getattr(err, 'strerror', None) or err}") from None
        if text.startswith("{"):
            G = from_json(text)
            info = validate(G)
            got = (info.in_channels, info.num_classes)
            if check_data and got != (in_channels, num_classes):
                raise GraphError(f"the architecture takes {got[0]} input channels and predicts {got[1]} classes; the data has {in_channels} and {num_classes}")
            return G
        if self.parse is None:
            raise SpaceError(f"space {self.name!r} reads architectures only as JSON, got {shown(text, 60)}")
        return self.parse(text, in_channels=in_channels, num_classes=num_classes, **self.resolve_options(options))


@dataclass(frozen=True)
class Networks:
    """One space's networks for one data shape, its options resolved: what the search builds
    each trial with, and what a sampler that reads graphs (`wlgp`) is handed. Its `key` names
    the space, the options and the shape, so that caches keyed on it are shared only between
    builders that make the same networks.

    Usage:
        networks = Networks(get_space("nb201"), {"channels": 8, "cells": 1}, 1, 10)
        G, info = networks.build(trial); info = networks({"edge_0": "none", ...})
    """

    space: Space
    options: dict[str, Any]
    in_channels: int
    num_classes: int

    def build(self, trial: Any) -> tuple[nx.DiGraph, GraphInfo]:
        """The trial's network and its validation (`Space.build_info`)."""
        return self.space.build_info(trial, self.in_channels, self.num_classes, **self.options)

    def __call__(self, params: dict[str, Any]) -> GraphInfo:
        """The network that `params` choose."""
        return self.build(optuna.trial.FixedTrial(params))[1]

    @property
    def key(self) -> tuple:
        return self.space.name, json.dumps(self.options, sort_keys=True, default=str), self.in_channels, self.num_classes


def _check_option(space: str, key: str, value: Any, default: Any) -> None:
    """A space option takes the kind of its default (an int where the default is one, a float
    also from an int), so that a mistyped value is refused by its name rather than failing
    as a comparison somewhere inside the space. A default of None takes anything."""
    if default is None:
        return
    kinds = {float: (int, float), tuple: (list, tuple)}.get(type(default), type(default))
    if not isinstance(value, kinds) or (isinstance(value, bool) and not isinstance(default, bool)):
        what = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
            type(default), f"a {type(default).__name__}")
        raise SpaceError(f"space {space!r}: option {key} must be {what} (its default is {default!r}), got {value!r}")


# Built-in spaces, imported only when asked for (no import side effects).
BUILTIN = {
    "nb201": "search_spaces.nb201",
    "macro": "search_spaces.macro",
    "tiny_cnn": "search_spaces.example_user_space",
}


def recorded_space(recorded: Any, given: Space | None, where: str) -> Space:
    """The space a checkpoint or a study was made with, from its record. A built-in space is
    found by name. A user's space is a Python file, and a file hypernas reads must never decide
    what code runs: the user names it (`given`, from `--space`), and it must be the one recorded."""
    if given is not None:
        if given.name != recorded:
            raise SpaceError(f"{where} was made with space {recorded!r}, not {given.name!r}")
        return given
    if isinstance(recorded, str) and recorded in BUILTIN:
        return get_space(recorded)
    raise SpaceError(f"{where} names the space {shown(recorded, 200)}, which is code, so it is refused: hypernas "
                     "never imports a file because a record names it, as anyone who can write the record can name "
                     "any file; to read the record, pass --space with a copy of that space you trust")


def list_spaces() -> list[Space]:
    """Every built-in space."""
    return [get_space(name) for name in BUILTIN]


def get_space(name: str) -> Space:
    """A built-in space by name, or a user's space as `path/to/file.py:function`."""
    if not isinstance(name, str):  # a config file may hand in any type
        raise SpaceError(f"a space is named by a string, got {name!r}")
    if name in BUILTIN:
        return importlib.import_module(BUILTIN[name]).SPACE
    if ":" in name:
        return load_user_space(name)
    raise unknown_name("space", name, list(BUILTIN) + ["path/to/file.py:function"])


def load_user_space(spec: str) -> Space:
    """Load `path/to/file.py:function` as a space. The function's keyword-only parameters
    beyond `in_channels` and `num_classes`, with their defaults, become the space's options.
    Its name holds the file's absolute path, so a record of it means one file wherever it is read."""
    path, _, func_name = spec.rpartition(":")
    if not os.path.isfile(path):
        raise SpaceError(f"space file {path!r} does not exist (expected path/to/file.py:function)")
    try:
        module_spec = importlib.util.spec_from_file_location(f"hypernas_user_space_{abs(hash(path))}", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    except Exception as err:
        raise SpaceError(f"space file {path!r} failed to import: {type(err).__name__}: {err}") from err
    fn = getattr(module, func_name, None)
    if not callable(fn):
        found = [n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")]
        raise SpaceError(f"space file {path!r} has no function {func_name!r}; it defines {found}")
    options = {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.name not in ("trial", "in_channels", "num_classes") and p.default is not inspect.Parameter.empty
    }
    return Space(name=f"{os.path.abspath(path)}:{func_name}", suggest=fn, description=(fn.__doc__ or "").strip().split("\n")[0], options=options)
