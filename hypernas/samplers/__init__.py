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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypernas.errors import OptionError, unknown_name

__all__ = ["SAMPLERS", "LocalSearchSampler", "RegularizedEvolutionSampler", "TimedSampler", "WLGPSampler",
           "check_objectives", "make_sampler"]


@dataclass(frozen=True)
class _Entry:
    build: Callable[..., Any]  # (seed, space, options, graph_of) -> sampler
    single_objective: bool
    constrained: bool = False  # takes Optuna's constraints_func


SAMPLERS: dict[str, _Entry] = {}
LOCAL_STARTUPS = ("random", "tpe", "gp", "wlgp")  # grid and evolution keep state that local moves would confuse


def _register(name: str, single_objective: bool = False, constrained: bool = False) -> Callable:
    def add(build: Callable) -> Callable:
        SAMPLERS[name] = _Entry(build, single_objective, constrained)
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


@_register("tpe", constrained=True)
def _tpe(seed, space, options, graph_of):
    # Optuna's TPE, its proposals exactly, fitted once per batch: hypernas.optuna_private says why
    from hypernas.optuna_private import HistoryTPESampler

    return _optuna("TPESampler", HistoryTPESampler)(seed, space, options, graph_of)


for _name, _cls in (("gp", "GPSampler"), ("nsga2", "NSGAIISampler")):
    _register(_name, constrained=True)(_optuna(_cls))
_register("random")(_optuna("RandomSampler"))


@_register("grid", single_objective=True)
def _grid(seed, space, options, graph_of):
    import optuna

    if space.grid is None:
        raise OptionError(f"space {space.name!r} has no finite grid; use tpe, nsga2 or random")
    return optuna.samplers.GridSampler(search_space=space.grid, seed=seed, **options)


@_register("evolution", single_objective=True)
def _evolution(seed, space, options, graph_of):
    from hypernas.samplers.evolution import RegularizedEvolutionSampler

    return RegularizedEvolutionSampler(seed=seed, **options)


@_register("local", single_objective=True)
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


@_register("wlgp", single_objective=True)
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
                 graph_of: Callable[[dict[str, Any]], Any] | None = None, limits: int = 0) -> Any:
    """A seeded sampler. `options` are its own keyword arguments (e.g. {"multivariate": True}
    for TPE). `grid` needs a space that lists its grid. Local search takes `startup` (a sampler
    name) and `startup_options` for the sampler of its first `n_startup_trials`. `wlgp` needs
    `graph_of`, parameters -> network, which the search loop gives it.

    With `limits` (how many are active), TPE, NSGA-II and GP, and local search's start-up
    among them, learn the feasible region through Optuna's `constraints_func`, which reads the
    trial's `constraints` attribute (`hypernas.budget`). Random, grid and our own samplers see an
    infeasible trial's worst score instead, and steer away from it.
    """
    if name not in SAMPLERS:
        raise unknown_name("sampler", name, list(SAMPLERS))
    options = dict(options or {})
    if limits and (SAMPLERS[name].constrained or name == "local"):
        options["constraints_func"] = _Constraints(limits)
    try:
        return SAMPLERS[name].build(seed, space, options, graph_of)
    except TypeError as err:  # a misspelt or foreign option: name it, do not ignore it
        raise OptionError(f"sampler {name!r} does not take these options {sorted(options)}: {err}") from None


class TimedSampler:
    """A sampler that keeps the seconds its wrapped sampler spends, so that a search can tell the
    sampler's own time from the building of the networks that its suggestions interleave with
    (a define-by-run space asks the sampler from inside the build). Optuna's sampler protocol,
    delegated; `seconds` is the running total.

    Usage: timed = TimedSampler(make_sampler("tpe", 0, space)); ...; timed.seconds
    """

    def __init__(self, sampler: Any):
        self.sampler, self.seconds = sampler, 0.0

    def _timed(self, name: str, *args: Any) -> Any:
        import time

        start = time.perf_counter()
        try:
            return getattr(self.sampler, name)(*args)
        finally:
            self.seconds += time.perf_counter() - start

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
