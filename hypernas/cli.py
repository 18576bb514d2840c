"""The `hypernas` command line: thin wrappers over the public Python functions.

Flags come from the config dataclasses (`hypernas.config`): each option is declared once,
and a study config (TOML) uses the same names. Any `HypernasError` becomes one line on
stderr and exit code 1, never a traceback; a command line argparse cannot parse exits 2.

Usage:
    hypernas spaces
    hypernas sample --space nb201 -n 5 --seed 0
    hypernas train --space nb201 --arch '|nor_conv_3x3~0|+...' --dataset mnist1d --channels 8 --cells 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import warnings
from collections.abc import Callable

from hypernas import __version__
from hypernas.config import (
    MAX_SEED,
    SPLITS,
    VAL_FRACTION,
    FitConfig,
    SearchConfig,
    TrainConfig,
    check_study_name,
    load_search_config,
    sqlite_url,
)
from hypernas.device import check_device, set_threads
from hypernas.drawing import VIEWS
from hypernas.errors import HypernasError, HypernasWarning, OptionError, first_line
from hypernas.options import SuggestingParser, add_flags, build, flag_of, given_flags, read_mapping

COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {}
STUDY_OPTIONS = ("storage", "study", "runs")  # SearchConfig's, shared by export and plot
DATA_OPTIONS = ("dataset", "layout", "data_dir", "val_fraction")  # SearchConfig's, shared by every command that reads data
PROGRESS_DRAWS = 64  # `score` shows a progress bar beyond this many draws (architectures times --samples)


def command(fn: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
    """Register `fn` as the subcommand named after it (`train_hypernet` -> `train-hypernet`)."""
    COMMANDS[fn.__name__.replace("_", "-")] = fn
    return fn


# ---- shared arguments ----------------------------------------------------------------------


def _space_args(p: argparse.ArgumentParser, with_space: bool = True) -> None:
    if with_space:
        p.add_argument("--space", required=True, help="built-in space name, or path/to/file.py:function")
    p.add_argument("--channels", type=int, help="space option: width C (nb201)")
    p.add_argument("--cells", type=int, help="space option: cells per stage N (nb201)")
    p.add_argument("--space-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other space option ([space_options] in TOML); VALUE is read as JSON where it parses")


def _data_args(p: argparse.ArgumentParser) -> None:
    add_flags(p, SearchConfig, only=DATA_OPTIONS)


def _run_args(p: argparse.ArgumentParser, *names: str) -> None:
    """--seed, --device and --threads (run-time only: no TOML key) as every command takes them."""
    flags = {"seed": {"type": _seed, "default": SearchConfig.seed, "help": f"[default: {SearchConfig.seed}]"},
             "device": {"default": SearchConfig.device, "help": f"[default: {SearchConfig.device}]"},
             "threads": {"type": int, "help": "torch CPU threads"}}
    for name in names:
        p.add_argument(f"--{name}", **flags[name])


def _seed(text: str) -> int:
    """A seed as argparse reads it: an integer from 0 to MAX_SEED."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is an integer from 0 to {MAX_SEED}, got {text!r}")
    return value


def _pairs(items: list[str], flag: str) -> dict:
    """KEY=VALUE pairs, each VALUE read as JSON where it parses."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise OptionError(f"{flag} needs KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def space_options(args: argparse.Namespace) -> dict:
    """The space options the user gave; the space rejects any it does not take."""
    options = {k: v for k, v in (("channels", args.channels), ("cells", args.cells)) if v is not None}
    return {**options, **_pairs(args.space_option, "--space-option")}


def _load_data(args: argparse.Namespace):
    """The dataset the data flags name (mnist1d by default), checked as the search checks them."""
    from hypernas.data import load_dataset

    given = read_mapping(SearchConfig, {k: v for k in DATA_OPTIONS if (v := getattr(args, k)) is not None},
                         "command line", flag_of)
    data = load_dataset(given.get("dataset", "mnist1d"), data_dir=given.get("data_dir"),
                        val_fraction=given.get("val_fraction", VAL_FRACTION), layout=given.get("layout"))
    print(f"hypernas: {data.summary()}", file=sys.stderr)  # stderr: stdout may be architectures or JSON
    return data


def _config(args: argparse.Namespace, cls: type):
    """A config from the flags of `cls` that were given (the rest keep its defaults)."""
    return build(cls, read_mapping(cls, given_flags(args, cls), "command line", flag_of))


# ---- commands ----------------------------------------------------------------------------------


@command
def spaces(args: argparse.Namespace) -> None:
    """List the registered spaces with their size and a one-line description."""
    from hypernas.spaces import list_spaces

    for s in list_spaces():
        size = f"{s.size:.3g}" if s.size and s.size > 10**6 else str(s.size or "?")
        print(f"{s.name:10s} {size:>10s}  {s.description}")


@command
def sample(args: argparse.Namespace) -> None:
    """Print `-n` architectures, one per line, drawn from the space with `--seed`."""
    from hypernas.graph import to_json
    from hypernas.spaces import get_space

    space = get_space(args.space)
    in_channels, num_classes = args.in_channels, args.num_classes
    if args.dataset:
        data = _load_data(args)
        in_channels, num_classes = data.in_channels, data.num_classes
    rng = random.Random(args.seed)
    for _ in range(args.n):
        G = space.sample(rng, in_channels, num_classes, **space_options(args))
        print(to_json(G) if args.format == "json" else space.describe(G))


@command
def train(args: argparse.Namespace) -> None:
    """Train one architecture normally and report its test accuracy."""
    from hypernas.spaces import get_space
    from hypernas.train import train as train_arch

    config = _config(args, TrainConfig)
    data = _load_data(args)
    space = get_space(args.space)
    G = space.from_text(args.arch, data.in_channels, data.num_classes, **space_options(args))
    start = None
    if args.init_from:  # the hypernetwork's prediction as the start, for its own space and data only
        from hypernas.ghn.checkpoint import check_space, load_hypernet
        from hypernas.ghn.start import predicted_start, scoring_samples

        hypernet = load_hypernet(args.init_from, data=data, device=args.device)
        check_space(hypernet.checkpoint, space.name, space.resolve_options(space_options(args)), args.init_from)
        start = predicted_start(hypernet.model, G, scoring_samples(data)[0])
    r = train_arch(G, data, config, seed=args.seed, device=args.device, progress=not args.json, init=start)
    out = {"test_accuracy": r.test_accuracy, "test_loss": r.test_loss, "params": r.params,
           "seconds": round(r.seconds, 2), "epochs": config.epochs, "seed": args.seed, "dataset": data.name}
    print(json.dumps(out) if args.json else
          f"test accuracy {r.test_accuracy:.4f}  loss {r.test_loss:.4f}  params {r.params}  {r.seconds:.1f}s")


@command
def draw(args: argparse.Namespace) -> None:
    """Draw an architecture to a PNG file."""
    from hypernas.drawing import draw_architecture
    from hypernas.spaces import get_space

    space = get_space(args.space)
    G = space.from_text(args.arch, args.in_channels, args.num_classes, check_data=False, **space_options(args))
    draw_architecture(G, args.out, view=args.view, sketch=space.sketch)
    print(args.out)


@command
def train_hypernet(args: argparse.Namespace) -> None:
    """Train a graph hypernetwork on a dataset over architectures sampled from a space."""
    from hypernas.ghn.fit import fit_hypernet, process_group
    from hypernas.spaces import get_space

    if os.path.exists(args.out) and not args.resume:
        raise OptionError(f"{args.out} exists; pass --resume to continue it, or choose another --out")
    set_threads(args.threads)
    config = _config(args, FitConfig)
    with process_group(args.device) as (device, rank):
        state = fit_hypernet(get_space(args.space), space_options(args), _load_data(args), config, out=args.out,
                             resume=args.resume, device=device)
    if rank == 0:
        loss = "n/a" if state["loss_ema"] is None else f"{state['loss_ema']:.4f}"  # None when no step ran
        print(f"{args.out}: {state['step']} steps, loss {loss}, {state['skipped']} skipped"
              + (f", {state['world_size']} processes" if state["world_size"] > 1 else ""))


@command
def score(args: argparse.Namespace) -> None:
    """Score architectures (one per line: the space's string form or JSON) with a hypernetwork."""
    from hypernas.data import load_dataset_like
    from hypernas.ghn.checkpoint import check_data, load_hypernet, warn_unfinished
    from hypernas.score import Scorer, SpaceCheck
    from hypernas.spaces import recorded_space

    samples = SearchConfig.samples if args.samples is None else args.samples
    read_mapping(SearchConfig, {"samples": samples}, "command line", flag_of)  # bounded as the search's
    hypernet = load_hypernet(args.hypernet, device=args.device)
    ckpt = hypernet.checkpoint
    data = _load_data(args) if args.dataset else load_dataset_like(ckpt["data"], args.data_dir)
    check_data(ckpt, data, args.hypernet)
    space = recorded_space(ckpt["space"], _user_space(args), f"checkpoint {args.hypernet!r}")
    scorer = Scorer(hypernet.model, data, samples=samples, seed=args.seed, device=args.device, split=args.split,
                    space=SpaceCheck(space, ckpt["space_options"], data.in_channels, data.num_classes))
    warn_unfinished(hypernet)
    graphs, texts = [], []
    for number, line in enumerate(_read_archs(args.archs), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            graphs.append(space.from_text(line, data.in_channels, data.num_classes, **ckpt["space_options"]))
        except HypernasError as err:
            raise HypernasError(f"{args.archs} line {number}: {err}") from None
        texts.append(line.strip())
    long = len(graphs) * samples > PROGRESS_DRAWS
    for text, result in zip(texts, scorer.score(graphs, progress=not args.json and long)):
        if args.json:
            print(json.dumps({"arch": text, **result.to_dict()}))
        else:
            print(f"score {result.score:.4f} ± {result.score_std:.4f}  acc {result.accuracy:.4f} ± "
                  f"{result.accuracy_std:.4f}  loss {result.loss:.4f} ± "
                  f"{result.loss_std:.4f}  params {result.params}  flops {result.flops}  {result.hash}  {text}")


@command
def search(args: argparse.Namespace) -> None:
    """Search a space with Optuna over hypernetwork scores, then train the best normally."""
    from hypernas.search import run_search

    set_threads(args.threads)
    overrides = given_flags(args, SearchConfig)
    for key, pairs in (("space_options", space_options(args)), ("sampler_options", _pairs(args.sampler_option,
                                                                                          "--sampler-option"))):
        if pairs:
            overrides[key] = pairs
    result = run_search(load_search_config(args.config, overrides, flag_of))
    t = result.timing
    if t.get("total"):
        print(f"search phase {t['total']:.1f}s: scoring {t['score']:.1f}s, sampler {t['sampler']:.1f}s, "
              f"building and bookkeeping {t['ask'] - t['sampler'] + t['bookkeeping']:.1f}s, "
              f"waiting for storage {t['storage_wait']:.1f}s (the background writer was busy {t['storage_busy']:.1f}s)")


def _storage_url(args: argparse.Namespace) -> str:
    check_study_name(args.study)
    return args.storage or sqlite_url(os.path.join(args.runs or "runs", args.study))


def _run_dir(args: argparse.Namespace) -> str | None:
    """The run directory the user points at: the one holding the SQLite study (or --runs
    given with --storage); None to use the one the study recorded."""
    return os.path.join(args.runs or "runs", args.study) if args.runs or not args.storage else None


def _user_space(args: argparse.Namespace):
    from hypernas.spaces import get_space

    return get_space(args.space) if args.space else None


@command
def export(args: argparse.Namespace) -> None:
    """Write a trial's graph and weights (trained if it was, else predicted) to a folder."""
    from hypernas.export import export_trial

    meta = export_trial(_storage_url(args), args.study, args.trial, args.out, _user_space(args), _run_dir(args),
                        args.hypernet)
    files = [meta[k] or f"no model.{k} ({meta.get(k + '_error')})" for k in ("pt2", "onnx")]
    print(f"{args.out}: trial {meta['trial']} with {meta['weights']} weights, " + ", ".join(files))
    if meta.get("best"):
        print(f"best: {meta['best']}")


@command
def plot(args: argparse.Namespace) -> None:
    """Draw a figure of a study: history, pareto, ranking or arch."""
    from hypernas.plots import plot_study
    from hypernas.study import load_study

    said = plot_study(load_study(_storage_url(args), args.study, read_only=True), args.kind, args.out,
                      _user_space(args))
    print(args.out + (f": {said}" if said else ""))


def _read_archs(path: str) -> list[str]:
    """The lines of an architectures file (or of stdin for "-"), as UTF-8."""
    try:
        if path == "-":
            return sys.stdin.readlines()
        with open(path, encoding="utf-8") as f:
            return f.readlines()
    except OSError as err:
        raise OptionError(f"cannot read architectures from {path!r}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise OptionError(f"cannot read architectures from {path!r}: not UTF-8 text ({err.reason} at byte "
                          f"{err.start})") from None


def build_parser() -> argparse.ArgumentParser:
    parser = SuggestingParser(prog="hypernas", description="Graph-hypernetwork neural architecture search.")
    parser.add_argument("--version", action="version", version=f"hypernas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    parser.subcommands = sub.choices  # name -> its parser, which reports a flag it does not know

    def subcommand(name: str, fn: Callable) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=fn.__doc__, description=fn.__doc__)

    subcommand("spaces", spaces)

    p = subcommand("sample", sample)
    _space_args(p)
    _data_args(p)
    p.add_argument("-n", type=int, default=5, help="architectures to print [default: 5]")
    _run_args(p, "seed")
    p.add_argument("--format", choices=["auto", "json"], default="auto",
                   help="the space's string form where it has one, else JSON [default: auto]")
    p.add_argument("--in-channels", type=int, default=1, help="used when no --dataset is given [default: 1]")
    p.add_argument("--num-classes", type=int, default=10, help="used when no --dataset is given [default: 10]")

    p = subcommand("train", train)
    _space_args(p)
    _data_args(p)
    p.add_argument("--arch", required=True, help="the space's string form, inline JSON, or a JSON file")
    add_flags(p, TrainConfig)
    p.add_argument("--init-from", metavar="HYPERNET.pt",
                   help="start from this hypernetwork's predicted weights instead of random ones")
    _run_args(p, "seed", "device")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = subcommand("draw", draw)
    _space_args(p)
    p.add_argument("--arch", required=True)
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--view", choices=VIEWS, default="auto",
                   help="sketch: what the space varies (a cell, a chain of blocks); ops: every op [default: auto, the "
                        "sketch where the space has one]")
    p.add_argument("--in-channels", type=int, default=1, help="[default: 1]")
    p.add_argument("--num-classes", type=int, default=10, help="[default: 10]")

    p = subcommand("train-hypernet", train_hypernet)
    _space_args(p)
    _data_args(p)
    add_flags(p, FitConfig)
    p.add_argument("--out", required=True, help="checkpoint path, e.g. runs/NAME/hypernet.pt")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint at --out")
    _run_args(p, "device", "threads")

    p = subcommand("score", score)
    p.add_argument("--hypernet", required=True, help="a checkpoint written by train-hypernet or search")
    p.add_argument("--space", help="the checkpoint's own space file (path/to/file.py:function), if it has one")
    p.add_argument("--archs", required=True, help="file with one architecture per line, or - for stdin")
    add_flags(p, SearchConfig, only=("samples",))  # the search's option: one default, one bound
    p.add_argument("--split", choices=SPLITS, default="val",
                   help="score on the validation slice or on training samples [default: val]")
    _run_args(p, "seed", "device")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    _data_args(p)

    p = subcommand("search", search)
    groups = add_flags(p, SearchConfig, grouped=True)  # in sections; --space among them, as the TOML key `space`
    searching = groups["search"]
    searching.add_argument("--config", help="a study config (TOML), e.g. studies/nb201_mnist1d.toml; flags override it")
    _space_args(searching, with_space=False)
    searching.add_argument("--sampler-option", action="append", default=[], metavar="KEY=VALUE",
                           help="a keyword argument of the sampler ([sampler_options] in TOML)")
    _run_args(searching, "threads")

    for name, fn in (("export", export), ("plot", plot)):
        p = subcommand(name, fn)
        if name == "plot":
            p.add_argument("kind", choices=["history", "pareto", "ranking", "arch"])
        add_flags(p, SearchConfig, only=STUDY_OPTIONS)
        p.set_defaults(study=SearchConfig.study)  # --runs stays None unless given: _run_dir tells the two apart
        p.add_argument("--space", help="the study's own space file (path/to/file.py:function), if it has one")
        p.add_argument("--out", required=True, help="output folder (export) or PNG file (plot)")
        if name == "export":
            p.add_argument("--trial", default="best", help="'best' (the best trained finalist) or a trial number "
                                                           "[default: best]")
            p.add_argument("--hypernet", help="the study's hypernetwork, for a trial that was not trained "
                                              "[default: the run directory's, else the recorded path]")
    return parser


def _out_of_memory(err: BaseException) -> bool:
    """Whether an allocation failed: torch reports it on the CPU as a plain RuntimeError."""
    import torch

    return isinstance(err, (MemoryError, torch.cuda.OutOfMemoryError)) or "can't allocate memory" in str(err)


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """Our warnings as one line, as errors are; others as Python shows them."""
    if issubclass(category, HypernasWarning):
        return f"hypernas: warning: {' '.join(str(message).split())}\n"
    return _python_format_warning(message, category, filename, lineno, line)


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _format_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_device(getattr(args, "device", None))
        COMMANDS[args.command](args)
    except HypernasError as err:
        # One line, whatever the message: some carry a library's multi-line text.
        print(f"hypernas: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    except (MemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise
        print(f"hypernas: error: out of memory ({first_line(err)}); use a smaller batch or network, or allow this "
              "process more memory", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hypernas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head`: not an error
        sys.stderr.close()
        return 0
    return 0


_python_format_warning = warnings.formatwarning

if __name__ == "__main__":
    sys.exit(main())
