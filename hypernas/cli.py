"""The `hypernas` command line: thin wrappers over the public Python functions.

Any `HypernasError` becomes one line on stderr and exit code 2, never a traceback.

Usage:
    hypernas spaces
    hypernas sample --space nb201 -n 5 --seed 0
    hypernas train --space nb201 --arch '|nor_conv_3x3~0|+...' --dataset mnist1d --channels 8 --cells 1
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable

from hypernas.errors import HypernasError

COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {}


def command(fn: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
    """Register `fn` as the subcommand named after it (`train_hypernet` -> `train-hypernet`)."""
    COMMANDS[fn.__name__.replace("_", "-")] = fn
    return fn


# ---- shared argument groups ------------------------------------------------------------------


def _space_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--space", required=required, help="built-in space name, or path/to/file.py:function")
    p.add_argument("--channels", type=int, help="space option: width C (nb201)")
    p.add_argument("--cells", type=int, help="space option: cells per stage N (nb201)")
    p.add_argument("--space-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other space option; VALUE is read as JSON where it parses")


def _data_args(p: argparse.ArgumentParser, default: str | None = "mnist1d") -> None:
    p.add_argument("--dataset", default=default, help="mnist1d, digits, cifar10, or path/to/file.npz")
    p.add_argument("--data-dir", help="directory holding the cifar10 python-pickle files")
    p.add_argument("--val-fraction", type=float, help="share of the train split held out for scoring")


def space_options(args: argparse.Namespace) -> dict:
    """The space options the user gave; the space rejects any it does not take."""
    options = {k: v for k, v in (("channels", args.channels), ("cells", args.cells)) if v is not None}
    for item in args.space_option:
        key, sep, value = item.partition("=")
        if not sep:
            raise HypernasError(f"--space-option needs KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _load_data(args: argparse.Namespace):
    from hypernas.data import VAL_FRACTION, load_dataset

    val_fraction = VAL_FRACTION if args.val_fraction is None else args.val_fraction  # 0 is an error, not the default
    return load_dataset(args.dataset, data_dir=args.data_dir, val_fraction=val_fraction)


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
    from hypernas.train import TrainConfig, train as train_arch

    data = _load_data(args)
    G = get_space(args.space).from_text(args.arch, data.in_channels, data.num_classes, **space_options(args))
    config = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size)
    r = train_arch(G, data, config, seed=args.seed, device=args.device, progress=not args.json)
    out = {"test_accuracy": r.test_accuracy, "test_loss": r.test_loss, "params": r.params,
           "seconds": round(r.seconds, 2), "epochs": args.epochs, "seed": args.seed, "dataset": args.dataset}
    print(json.dumps(out) if args.json else
          f"test accuracy {r.test_accuracy:.4f}  loss {r.test_loss:.4f}  params {r.params}  {r.seconds:.1f}s")


@command
def draw(args: argparse.Namespace) -> None:
    """Draw an architecture to a PNG file."""
    from hypernas.plots import draw_architecture
    from hypernas.spaces import get_space

    G = get_space(args.space).from_text(args.arch, args.in_channels, args.num_classes, check_data=False,
                                       **space_options(args))
    draw_architecture(G, args.out)
    print(args.out)


@command
def train_hypernet(args: argparse.Namespace) -> None:
    """Train a graph hypernetwork on a dataset over architectures sampled from a space."""
    import os

    from hypernas.ghn.fit import FitConfig, fit_hypernet

    if os.path.exists(args.out) and not args.resume:
        raise HypernasError(f"{args.out} exists; pass --resume to continue it, or choose another --out")
    _set_threads(args.threads)
    # FitConfig holds the defaults: an option left out on the command line is None here
    config = FitConfig(**{name: getattr(args, name) for name in FIT_OPTIONS if getattr(args, name) is not None})
    state = fit_hypernet(args.space, space_options(args), _load_data(args), config, out=args.out,
                         resume=args.resume, device=args.device)
    loss = "n/a" if state["loss_ema"] is None else f"{state['loss_ema']:.4f}"  # None when no step ran
    print(f"{args.out}: {state['step']} steps, loss {loss}, {state['skipped']} skipped")


@command
def score(args: argparse.Namespace) -> None:
    """Score architectures (one per line: the space's string form or JSON) with a hypernetwork."""
    from hypernas.data import load_dataset_like
    from hypernas.errors import CheckpointError
    from hypernas.ghn.checkpoint import check_data, load_hypernet
    from hypernas.score import Scorer
    from hypernas.spaces import get_space

    ghn, ckpt = load_hypernet(args.hypernet, device=args.device)
    data = _load_data(args) if args.dataset else load_dataset_like(ckpt["data"], args.data_dir)
    check_data(ckpt, data, args.hypernet)
    scorer = Scorer(ghn, data, samples=args.samples, seed=args.seed, device=args.device, split=args.split)
    try:
        space = get_space(ckpt["space"])
    except HypernasError as err:
        raise CheckpointError(f"checkpoint {args.hypernet!r} was trained on space {ckpt['space']!r}, which cannot be "
                              f"loaded: {err}") from None
    stream = sys.stdin if args.archs == "-" else _open_archs(args.archs)
    graphs, texts = [], []
    for number, line in enumerate(stream, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            graphs.append(space.from_text(line, data.in_channels, data.num_classes, **ckpt["space_options"]))
        except HypernasError as err:
            raise HypernasError(f"{args.archs} line {number}: {err}") from None
        texts.append(line.strip())
    for text, result in zip(texts, scorer.score(graphs)):
        if args.json:
            print(json.dumps({"arch": text, **result.to_dict()}))
        else:
            print(f"score {result.score:.4f} ± {result.score_std:.4f}  acc {result.accuracy:.4f} ± "
                  f"{result.accuracy_std:.4f}  loss {result.loss:.4f} ± "
                  f"{result.loss_std:.4f}  params {result.params}  flops {result.flops}  {result.hash}  {text}")


@command
def search(args: argparse.Namespace) -> None:
    """Search a space with Optuna over hypernetwork scores, then train the best normally."""
    from hypernas.search import run_search, search_config

    _set_threads(args.threads)
    result = run_search(search_config(args.config, _search_overrides(args)))
    t = result.timing
    if t.get("total"):
        print(f"search phase {t['total']:.1f}s: scoring {t['score']:.1f}s, sampler {t['ask']:.1f}s, "
              f"bookkeeping {t['bookkeeping']:.1f}s, waiting for storage {t['storage_wait']:.1f}s "
              f"(the background writer was busy {t['storage_busy']:.1f}s)")


def _search_overrides(args: argparse.Namespace) -> dict:
    """The options given on the command line; they override the config file."""
    keys = ["space", "dataset", "data_dir", "val_fraction", "study", "runs", "storage", "trials", "sampler", "batch", "samples",
            "score_split", "warm_start",
            "hypernet", "top_k", "final_epochs", "seed", "device"]
    out = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    if args.distinct:
        out["distinct"] = True
    if args.objectives:
        out["objectives"] = args.objectives.split(",")
    fit = {k: v for k, v in (("steps", args.hypernet_steps), ("meta_batch", args.meta_batch)) if v is not None}
    if fit:
        out["hypernet_fit"] = fit
    options = space_options(args)
    if options:
        out["space_options"] = options
    return out


def _storage_url(args: argparse.Namespace) -> str:
    import os

    return args.storage or f"sqlite:///{os.path.abspath(os.path.join(args.runs, args.study, 'study.db'))}"


@command
def export(args: argparse.Namespace) -> None:
    """Write a trial's graph and weights (trained if it was, else predicted) to a folder."""
    from hypernas.export import export_trial

    meta = export_trial(_storage_url(args), args.study, args.trial, args.out)
    print(f"{args.out}: trial {meta['trial']} with {meta['weights']} weights"
          + (", model.pt2" if meta["pt2"] else f" (no model.pt2: {meta.get('pt2_error')})"))


@command
def plot(args: argparse.Namespace) -> None:
    """Draw a figure of a study: history, pareto, ranking or arch."""
    from hypernas.plots import plot_study
    from hypernas.study import load_study

    plot_study(load_study(_storage_url(args), args.study), args.kind, args.out)
    print(args.out)


# hypernas.score.SPLITS, named here so that building the parser does not import the scorer
# and the hypernetwork (0.14 s more on every call); a test keeps the two equal
SPLITS = ("val", "train")
SPLIT_HELP = ("score on the validation slice (val), or on as many samples of the hypernetwork's own training "
              "split (train; it ranked better on MNIST-1D and worse on digits, BENCHMARKS.md)")

# train-hypernet's options that are FitConfig fields, under the same names
FIT_OPTIONS = ("steps", "meta_batch", "batch_size", "lr", "checkpoint_every", "seed", "s_max", "layer", "hidden", "rounds",
               "rank")

BENCHES = {"ranking": "scorers against the ground-truth table", "oracle": "steering on NB201's CIFAR-10 table",
           "speed": "scoring and training speed", "workers": "search throughput with several workers",
           "protocol": "the reference training protocol's sanity check", "dynamic": "scoring macro architectures",
           "ground_truth": "train the ground-truth table (resumable)", "search_report": "a finished search against the table",
           "retraining": "how well more training runs rank the ground-truth table",
           "sampler_overhead": "a sampler's own seconds over a long study"}


@command
def bench(args: argparse.Namespace) -> None:
    """Run a benchmark (hypernas bench NAME --help for its options); results go to BENCHMARKS.md."""
    import importlib

    importlib.import_module(f"hypernas.bench.{args.name}").main(args.rest)


def _open_archs(path: str):
    try:
        return open(path, encoding="utf-8")
    except OSError as err:
        raise HypernasError(f"cannot read architectures from {path!r}: {err.strerror}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hypernas", description="Graph-hypernetwork neural architecture search.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("spaces", help=spaces.__doc__)

    p = sub.add_parser("sample", help=sample.__doc__)
    _space_args(p)
    _data_args(p, default=None)
    p.add_argument("-n", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=["auto", "json"], default="auto")
    p.add_argument("--in-channels", type=int, default=1, help="used when no --dataset is given")
    p.add_argument("--num-classes", type=int, default=10, help="used when no --dataset is given")

    p = sub.add_parser("train", help=train.__doc__)
    _space_args(p)
    _data_args(p)
    p.add_argument("--arch", required=True, help="the space's string form, inline JSON, or a JSON file")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("draw", help=draw.__doc__)
    _space_args(p)
    p.add_argument("--arch", required=True)
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--num-classes", type=int, default=10)

    p = sub.add_parser("train-hypernet", help=train_hypernet.__doc__)
    _space_args(p)
    _data_args(p)
    # The defaults are FitConfig's (3000 steps, meta-batch 8, ...), not repeated here: this parser
    # is built on every call, and importing FitConfig would import the hypernetwork (0.16 s more).
    p.add_argument("--steps", type=int)
    p.add_argument("--meta-batch", type=int, help="architectures per data batch")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--s-max", type=int, help="virtual edges up to this many hops (1 = none)")
    p.add_argument("--hidden", type=int, help="width of the hypernetwork's node embeddings")
    p.add_argument("--rounds", type=int, help="message-passing rounds (or transformer layers)")
    p.add_argument("--rank", type=int, help="rank of each predicted weight's core (channels mix through it)")
    p.add_argument("--layer",  # checked by FitConfig against the model's list of layers
                   help="hypernetwork layers: mp (message passing, GHN-2) or transformer (graph transformer, GHN-3)")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", required=True, help="checkpoint path, e.g. runs/NAME/hypernet.pt")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint at --out")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads")

    p = sub.add_parser("score", help=score.__doc__)
    p.add_argument("--hypernet", required=True)
    p.add_argument("--archs", required=True, help="file with one architecture per line, or - for stdin")
    p.add_argument("--samples", type=int, default=3, help="draws of the hypernetwork's noise per architecture")
    p.add_argument("--split", choices=SPLITS, default="val", help=SPLIT_HELP)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--device", default="cpu")
    _data_args(p, default=None)

    p = sub.add_parser("search", help=search.__doc__)
    p.add_argument("--config", help="a study config (TOML), e.g. studies/nb201_mnist1d.toml; flags override it")
    _space_args(p, required=False)
    _data_args(p, default=None)
    p.add_argument("--study", help="study name (default hypernas); the run directory is RUNS/STUDY")
    p.add_argument("--runs", help="folder for run directories (default runs)")
    p.add_argument("--storage", help="Optuna storage URL (default: SQLite in the run directory)")
    p.add_argument("--trials", type=int, help="scored trials to reach in total")
    p.add_argument("--sampler", help="tpe, gp, nsga2, random, grid, evolution, local or wlgp (options: [sampler_options] in --config)")
    p.add_argument("--distinct", action="store_true", default=None,
                   help="--trials counts distinct architectures; isomorphic duplicates are free")
    p.add_argument("--objectives", help="score, score,params or score,flops")
    p.add_argument("--warm-start", type=int, help="try first the K best of warm_pool random architectures by synflow")
    p.add_argument("--batch", type=int, help="trials asked and scored together")
    p.add_argument("--samples", type=int, help="hypernetwork draws per score")
    p.add_argument("--score-split", choices=SPLITS, help=SPLIT_HELP + " (default val)")
    p.add_argument("--hypernet", help="a trained checkpoint; without it one is trained first")
    p.add_argument("--hypernet-steps", type=int, help="hypernetwork training steps")
    p.add_argument("--meta-batch", type=int, help="architectures per hypernetwork training step")
    p.add_argument("--top-k", type=int, help="distinct best architectures to train normally at the end")
    p.add_argument("--final-epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device")
    p.add_argument("--threads", type=int, help="torch CPU threads")

    p = sub.add_parser("bench", help=bench.__doc__,
                       description="\n".join(f"{k}: {v}" for k, v in BENCHES.items()),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(BENCHES))
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options")

    for name, helptext in (("export", export.__doc__), ("plot", plot.__doc__)):
        p = sub.add_parser(name, help=helptext)
        if name == "plot":
            p.add_argument("kind", choices=["history", "pareto", "ranking", "arch"])
        p.add_argument("--storage", help="Optuna storage URL (default: the run directory's SQLite file)")
        p.add_argument("--study", default="hypernas")
        p.add_argument("--runs", default="runs")
        p.add_argument("--out", required=True, help="output folder (export) or PNG file (plot)")
        if name == "export":
            p.add_argument("--trial", default="best", help="'best' or a trial number")
    return parser


def check_device(device: str | None) -> None:
    """A clear error for a device this machine does not have, before any work starts."""
    if not device:
        return
    import torch

    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise HypernasError(f"--device {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HypernasError(f"--device {device}: no CUDA device is available here; use --device cpu")


def _set_threads(threads: int | None) -> None:
    if threads is None:
        return
    if threads < 1:
        raise HypernasError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_device(getattr(args, "device", None))
        COMMANDS[args.command](args)
    except HypernasError as err:
        # One line, whatever the message: some carry a library's multi-line text.
        print(f"hypernas: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hypernas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head`: not an error
        sys.stderr.close()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
