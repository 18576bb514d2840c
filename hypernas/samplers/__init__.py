"""The samplers that steer a search: one registry, one `make_sampler`.

Optuna's own (`tpe`, `gp`, `nsga2`, `random`, `grid`) and ours, each behind Optuna's sampler
protocol: regularized evolution (`evolution`), best-first local search (`local`) and a
Gaussian process over the networks' graphs (`wlgp`). A sampler is one registered builder;
a name that is not registered gets the nearest names.

Usage:
    sampler = make_sampler("tpe", seed=0, space=get_space("nb201"), options={"n_startup_trials": 5})
    sampler = make_sampler("local", 0, get_space("nb201"), {"n_startup_trials": 20, "startup": "tpe"})
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypernas.errors import OptionError, unknown_name

__all__ = ["SAMPLERS", "LocalSearchSampler", "RegularizedEvolutionSampler", "TimedSampler", "WLGPSampler",
           "check_objectives", "make_sampler"]


@dataclass(frozen=True)
class _Entry:
    build: Callable[..., Any]  # (seed, space, options, graph_of) -> sampler
    cls: str  # "module:Class": its keyword arguments are the sampler's options
    single_objective: bool
    constrained: bool = False  # takes Optuna's constraints_func
    own: tuple[str, ...] = ()  # options the builder reads itself, not the class
    batched: bool = False  # takes the search's batch of asks (`batch`), to fit once per batch


SAMPLERS: dict[str, _Entry] = {}
LOCAL_STARTUPS = ("random", "tpe", "gp", "wlgp")  # grid and evolution keep state that local moves would confuse
SET_BY_THE_SEARCH = ("self", "seed", "constraints_func", "graph_of", "search_space", "startup", "batch")  # not options


def _register(name: str, cls: str, single_objective: bool = False, constrained: bool = False,
              own: tuple[str, ...] = (), batched: bool = False) -> Callable:
    def add(build: Callable) -> Callable:
        SAMPLERS[name] = _Entry(build, cls, single_objective, constrained, own, batched)
        return build

    return add


def _optuna(cls: str, implementation: Any = None) -> Callable:
    def build(seed, space, options, graph_of):
        import warnings

        import optuna

        with warnings.catch_warnings():  # constraints_func is what limits need, whatever Optuna thinks of it:
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # experimental in 4.x,
            # deprecated in 5.0 for Trial.set_constraint, which 4.x lacks; it works in both until 7.0
            warnings.filterwarnings("ignore", message=".*constraints_func", category=FutureWarning)
            return (implementation or getattr(optuna.samplers, cls))(seed=seed, **options)

    return build


@_register("tpe", "hypernas.optuna_private:BatchTPESampler", constrained=True, batched=True)
def _tpe(seed, space, options, graph_of):
    # Optuna's TPE, fitted once per batch on a bounded history: hypernas.optuna_private says why
    from hypernas.optuna_private import BatchTPESampler

    return _optuna("TPESampler", BatchTPESampler)(seed, space, options, graph_of)


for _name, _cls in (("gp", "GPSampler"), ("nsga2", "NSGAIISampler")):
    _register(_name, f"optuna.samplers:{_cls}", constrained=True)(_optuna(_cls))
_register("random", "optuna.samplers:RandomSampler")(_optuna("RandomSampler"))


@_register("grid", "optuna.samplers:GridSampler", single_objective=True)
def _grid(seed, space, options, graph_of):
    import optuna

    if space.grid is None:
        raise OptionError(f"space {space.name!r} has no finite grid; use tpe, nsga2 or random")
    return optuna.samplers.GridSampler(search_space=space.grid, seed=seed, **options)


@_register("evolution", "hypernas.samplers.evolution:RegularizedEvolutionSampler", single_objective=True)
def _evolution(seed, space, options, graph_of):
    from hypernas.samplers.evolution import RegularizedEvolutionSampler

    return RegularizedEvolutionSampler(seed=seed, **options)


@_register("local", "hypernas.samplers.local:LocalSearchSampler", single_objective=True,
           own=("startup", "startup_options"))
def _local(seed, space, options, graph_of):
    from hypernas.samplers.local import LocalSearchSampler

    options = dict(options)
    startup = options.pop("startup", "random")
    if startup not in LOCAL_STARTUPS:
        raise OptionError(f"local search starts from {', '.join(LOCAL_STARTUPS)}, not {startup!r}")
    constraints = options.pop("constraints_func", None)
    startup_options = {**(options.pop("startup_options", None) or {}), **(
        {"constraints_func": constraints} if constraints and SAMPLERS[startup].constrained else {})}
    options["startup"] = make_sampler(startup, seed, space, startup_options, graph_of)
    return LocalSearchSampler(seed=seed, **options)


@_register("wlgp", "hypernas.samplers.wlgp:WLGPSampler", single_objective=True)
def _wlgp(seed, space, options, graph_of):
    from hypernas.samplers.wlgp import WLGPSampler

    return WLGPSampler(graph_of=graph_of, seed=seed, **options)


class _Constraints:
    """Optuna's `constraints_func`: a trial's constraint values, each at most 0 when met."""

    def __init__(self, limits: int):
        self.limits = limits

    def __call__(self, trial: Any) -> list[float]:
        return list(trial.user_attrs.get("constraints", [0.0] * self.limits))


def check_objectives(name: str, objectives: int) -> None:
    """Refuse a sampler that serves one objective for a study with several, before any work."""
    if name not in SAMPLERS:
        raise unknown_name("sampler", name, list(SAMPLERS))
    if SAMPLERS[name].single_objective and objectives > 1:
        raise OptionError(f"the {name} sampler serves one objective; use tpe or nsga2 for several objectives")


def make_sampler(name: str, seed: int, space: Any, options: dict[str, Any] | None = None,
                 graph_of: Callable[[dict[str, Any]], Any] | None = None, limits: int = 0, batch: int = 1) -> Any:
    """A seeded sampler. `options` are its own keyword arguments (e.g. {"multivariate": True}
    for TPE). `grid` needs a space that lists its grid. Local search takes `startup` (a sampler
    name) and `startup_options` for the sampler of its first `n_startup_trials`. `wlgp` needs
    `graph_of`, parameters -> network, which the search loop gives it.

    With `limits` (how many are active), TPE, NSGA-II and GP, and local search's start-up
    among them, learn the feasible region through Optuna's `constraints_func`, which reads the
    trial's `constraints` attribute (`hypernas.budget`). Random, grid and our own samplers see an
    infeasible trial's worst score instead, and steer away from it. `batch` is how many trials
    the search asks together: TPE fits once for them.
    """
    if name not in SAMPLERS:
        raise unknown_name("sampler", name, list(SAMPLERS))
    options = dict(options or {})
    check_options(name, options)
    if limits and (SAMPLERS[name].constrained or name == "local"):
        options["constraints_func"] = _Constraints(limits)
    if SAMPLERS[name].batched:
        options["batch"] = batch
    return SAMPLERS[name].build(seed, space, options, graph_of)


def check_options(name: str, options: dict[str, Any]) -> None:
    """Refuse an option the sampler does not take, or one of the wrong kind, by its name, before
    any work: a sampler's constructor takes `n_startup_trials="x"` without a word and fails
    only at its first decision, after the hypernetwork's training. The kinds are read from the
    constructor's type hints; options come from TOML and JSON, so none can be a Python object.

    Usage: check_options("tpe", {"n_startup_trials": 20})"""
    hints = _hints(SAMPLERS[name].cls)
    takes = sorted({*hints} - set(SET_BY_THE_SEARCH) | set(SAMPLERS[name].own))
    for key, value in options.items():
        if key not in takes:
            raise OptionError(f"sampler {name!r} takes no option {key!r}; it takes {', '.join(takes) or 'none'}")
        fits, what = _kind(Any if key in SAMPLERS[name].own else hints[key])  # the builder checks its own
        if not fits(value):
            raise OptionError(f"sampler option {key} must be {what}, got {value!r}")


class _Unresolved(type):
    def __getattr__(cls, name: str) -> type:
        return cls

    def __getitem__(cls, item: Any) -> type:
        return cls


class _PythonObject(metaclass=_Unresolved):
    """What a type hint names that only type checkers import (Optuna's `BaseMutation`, say):
    some Python object, which no config can give."""


def _hints(target: str) -> dict[str, Any]:
    """The type hints of the keyword arguments of `module:Class`, and of its bases' where it
    passes `**options` on to them. Optuna imports some of the names its hints use only for type
    checkers, so `typing.get_type_hints` fails on them; each hint is evaluated in its class's
    module with such names read as `_PythonObject`."""
    import builtins
    import collections.abc
    import importlib
    import inspect
    import sys

    module, _, name = target.partition(":")
    hints: dict[str, Any] = {}
    for cls in getattr(importlib.import_module(module), name).__mro__:
        names = vars(sys.modules[cls.__module__])

        class Names(dict):
            def __missing__(self, key: str) -> Any:
                spaces = (names, vars(builtins), vars(typing), vars(collections.abc))
                return next((space[key] for space in spaces if key in space), _PythonObject)

        parameters = inspect.signature(cls.__init__).parameters
        for key, p in parameters.items():
            if p.kind is not p.VAR_KEYWORD and key not in hints:
                hints[key] = Any if p.annotation is p.empty else eval(p.annotation, {}, Names()) \
                    if isinstance(p.annotation, str) else p.annotation
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return hints
    return hints


def _kind(hint: Any) -> tuple[Callable[[Any], bool], str]:
    """(whether a value from TOML or JSON fits a type hint, the hint in words)."""
    origin = typing.get_origin(hint) or hint
    if hint is Any:
        return (lambda v: True), "anything"
    if origin in (typing.Union, types.UnionType):
        parts = [_kind(h) for h in typing.get_args(hint)]
        return (lambda v: any(fits(v) for fits, _ in parts)), " or ".join(w for _, w in parts if w != "null")
    if origin is typing.Literal:
        return (lambda v: v in typing.get_args(hint)), f"one of {', '.join(map(repr, typing.get_args(hint)))}"
    simple = {type(None): (lambda v: v is None, "null"), bool: (lambda v: isinstance(v, bool), "true or false"),
              int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
              float: (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
              str: (lambda v: isinstance(v, str), "a string")}
    if origin in simple:
        return simple[origin]
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return (lambda v: isinstance(v, Mapping)), "a table"
    if isinstance(origin, type) and issubclass(origin, Sequence) and origin is not str:
        return (lambda v: isinstance(v, (list, tuple))), "a list"
    shown = "object" if origin is _PythonObject else getattr(origin, "__name__", origin)
    return (lambda v: False), f"a Python {shown} (which no config can give)"


class TimedSampler:
    """A sampler that keeps the seconds its wrapped sampler spends, so that a search can tell the
    sampler's own time from the building of the networks that its suggestions interleave with
    (a define-by-run space asks the sampler from inside the build). Optuna's sampler protocol,
    delegated; `seconds` is the running total, `cpu_seconds` the thread's CPU time within it
    (a background thread that holds the interpreter lock, as the storage writer does, adds to
    the first only).

    Usage: timed = TimedSampler(make_sampler("tpe", 0, space)); ...; timed.seconds
    """

    def __init__(self, sampler: Any):
        self.sampler, self.seconds = sampler, 0.0
        self.cpu_seconds = 0.0  # this thread's CPU time in them: without waiting for the interpreter lock

    def _timed(self, name: str, *args: Any) -> Any:
        import time

        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return getattr(self.sampler, name)(*args)
        finally:
            self.seconds += time.perf_counter() - start
            self.cpu_seconds += time.thread_time() - cpu

    def infer_relative_search_space(self, study, trial):
        return self._timed("infer_relative_search_space", study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._timed("sample_relative", study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._timed("sample_independent", study, trial, param_name, param_distribution)

    def before_trial(self, study, trial):
        return self._timed("before_trial", study, trial)

    def after_trial(self, study, trial, state, values):
        return self._timed("after_trial", study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()


def __getattr__(name: str) -> Any:
    """The sampler classes, imported when first asked for (they import Optuna and scipy)."""
    modules = {"LocalSearchSampler": "local", "RegularizedEvolutionSampler": "evolution", "WLGPSampler": "wlgp"}
    if name in modules:
        import importlib

        return getattr(importlib.import_module(f"hypernas.samplers.{modules[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
