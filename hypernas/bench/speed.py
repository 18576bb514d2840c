"""How fast scoring is, measured against a bare forward pass of the same networks.

Scoring time covers everything `Scorer.score` does for distinct architectures: hashing,
validation, encoding, the hypernetwork pass and the forward pass on the validation slice.
The baseline runs the same architectures, already compiled with ordinary stored weights,
forward on the same validation slice. The two alternate `--repeats` times in one run, and
the medians are reported, so the ratio is measured side by side on the same machine load.
Hypernetwork training speed is steps per second of `fit_hypernet` with the default
`FitConfig` (meta-batch 8, batch 128), after a 2-step warm-up run.

With `--device cuda`, scoring, the baseline and training run on the GPU; the clock stops
only after the GPU has finished, and the phase's peak GPU memory (`torch.cuda`'s high-water
mark of allocated memory) is reported beside the host's.

Each phase runs in a fresh subprocess, so the peak memory (the high-water mark of the
resident set size, VmHWM) is that phase's own; the start-up share (Python, torch and hypernas imported) is given beside
it. The scoring phase's peak is read before the baseline's compiled models exist; the peak
with them is in the JSON line as `peak_rss_mib_with_baseline`.

Without `--hypernet`, one hypernetwork per space in `--spaces` (nb201 with channels=8,
cells=1; macro with its default options) is trained first, into a temporary directory,
with the default `FitConfig` architecture but only `--fit-steps` steps: scoring speed does
not depend on how well the hypernetwork is trained, only on its architecture and the space.

Output: one JSON line per phase on stdout as it finishes, then a Markdown table (also
written to `--out-md`). Progress lines go to stderr.

`--workload images` measures the networks users search on images: NB201 at its published
skeleton (C=16, N=5) and the macro space on 32x32x3 inputs, CIFAR-10 from `--data-dir` where
given, else `random_images` (its shape, for timing only).

Usage:
    hypernas bench speed --threads 2 --archs 1000 --out-md runs/speed.md
    hypernas bench speed --workload images --archs 20 --repeats 2 --fit-steps 1 --train-steps 3 --batch-size 32
    python -m hypernas.bench.speed --hypernet runs/ref/hypernet.pt --archs 1000
    hypernas bench speed --spaces nb201 --layers mp,transformer   # the two hypernetwork layers side by side
    hypernas bench speed --execution each,together --train-steps 0   # a batch's networks one by one, or together
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

import torch

from hypernas.batched import EXECUTIONS
from hypernas.bench import report
from hypernas.compile import compile_graph
from hypernas.config import FitConfig, HyperConfig
from hypernas.data import load_dataset, load_dataset_like
from hypernas.device import check_device
from hypernas.errors import HypernasError
from hypernas.ghn.checkpoint import load_checkpoint
from hypernas.ghn.fit import fit_hypernet
from hypernas.ghn.model import LAYERS
from hypernas.score import Scorer
from hypernas.spaces import get_space, recorded_space

SPACE_OPTIONS = {"nb201": {"channels": 8, "cells": 1}, "macro": {}}  # options for the spaces benchmarked
# The image-sized workload: the published NB201 skeleton (C=16, N=5) and the macro space on 32x32x3
# inputs, CIFAR-10 from --data-dir where given, else an array of its shape for timing only.
IMAGE_OPTIONS = {"nb201": {}, "macro": {}}


def time_scoring(path: str, n: int, repeats: int, samples: int = 1, device: str = "cpu",
                 data_dir: str | None = None, execution: str = "auto") -> dict:
    ckpt = load_checkpoint(path)
    data = load_dataset_like(ckpt["data"], data_dir)
    graphs = recorded_space(ckpt["space"], None, f"checkpoint {path!r}").sample_distinct(n, 0, data.in_channels, data.num_classes, **ckpt["space_options"])
    x = data.x_val.to(device)
    models, score_peak = None, None
    score_s, forward_s = [], []
    for _ in range(repeats + 1):  # the first round warms up (allocator, kernel choices, first touch) and is dropped
        scorer = Scorer.from_checkpoint(path, data, samples=samples, device=device, execution=execution)  # empty cache
        start = time.perf_counter()
        scorer.score(graphs)  # ends on the host: each score is read back with .item()
        score_s.append(time.perf_counter() - start)
        del scorer
        if models is None:  # the baseline's models are built only now, so scoring's peak leaves them out
            score_peak = _peak_mib()
            models = [compile_graph(G, data.ndim).eval().to(device) for G in graphs]
        start = time.perf_counter()
        with torch.no_grad():
            for m in models:
                m(x)
        _synchronize(device)  # kernels are queued asynchronously on a GPU
        forward_s.append(time.perf_counter() - start)
    score_s, forward_s = score_s[1:], forward_s[1:]
    score, forward = statistics.median(score_s), statistics.median(forward_s)
    return {"phase": "score", "layer": ckpt["hyper"].get("layer", "mp"), "space": ckpt["space"], "space_options": ckpt["space_options"], "archs": n,
            "execution": execution,
            "samples": samples, "val_samples": len(x), "repeats": repeats, "score_seconds": score,
            "forward_seconds": forward, "archs_per_second": n / score, "ratio": score / forward,
            "ratios": [s / f for s, f in zip(score_s, forward_s)], "peak_rss_mib": score_peak}


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else "on the CPU"


def _synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_training(space_name: str, options: dict, steps: int, layer: str = "mp", device: str = "cpu",
                  dataset: str = "mnist1d", data_dir: str | None = None, batch_size: int = 128) -> dict:
    data = load_dataset(dataset, data_dir=data_dir)
    # The default architecture and batch sizes; one validation architecture, so the
    # validation pass at the last step costs a fraction of a step.
    config = FitConfig(steps=steps, warmup=1, eval_archs=1, batch_size=batch_size, hyper=HyperConfig(layer=layer))
    space = get_space(space_name)
    fit_hypernet(space, options, data, replace(config, steps=2), device=device, progress=False)  # warm-up
    start = time.perf_counter()
    fit_hypernet(space, options, data, config, device=device, progress=False)  # ends with .item() on the host
    seconds = time.perf_counter() - start
    return {"phase": "train", "layer": layer, "space": space_name, "space_options": get_space(space_name).resolve_options(options),
            "steps": steps, "meta_batch": config.meta_batch, "batch_size": config.batch_size, "seconds": seconds,
            "steps_per_second": steps / seconds}


def _peak_mib() -> float:
    """This process's peak resident set size in MiB.

    On Linux, VmHWM, the high-water mark of the process's own memory map: `ru_maxrss` is no
    good in a subprocess, since it starts from the parent's resident size at the fork (the
    kernel carries it over the exec), so every phase would report at least the parent's."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def _phase(args: argparse.Namespace) -> dict:
    start_peak = _peak_mib()  # the interpreter with torch and hypernas imported
    torch.set_num_threads(args.threads)
    if args.phase == "score":
        result = time_scoring(args.hypernet[0], args.archs, args.repeats, args.samples, args.device, args.data_dir,
                              args.execution)
        result["peak_rss_mib_with_baseline"] = _peak_mib()
    else:
        result = {**time_training(args.space, json.loads(args.space_options), args.steps, args.layers, args.device,
                                  args.dataset, args.data_dir, args.batch_size),
                  "peak_rss_mib": _peak_mib()}
    if torch.device(args.device).type == "cuda":  # the whole phase's, the baseline's models included
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated(args.device) / 2**20
    return {**result, "startup_rss_mib": start_peak, "threads": args.threads, "device": args.device}


def _describe(space: str, options: dict, layer: str | None = None) -> str:
    text = space + (" (" + ", ".join(f"{k}={v}" for k, v in options.items()) + ")" if options else "")
    return text + (f", {layer} layers" if layer else "")


def markdown(rows: list[dict], notes: tuple[str, ...] = ()) -> str:
    """One row per phase: scoring (with its ratio to the bare forward pass) and training, per space."""
    lines = [*notes, "",
             "| space | phase | work | median s | rate | scoring / bare forward | peak RSS MiB (start-up) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        peak = f"{r['peak_rss_mib']:.0f} ({r['startup_rss_mib']:.0f})" + (
            f"; GPU {r['peak_gpu_mib']:.0f}" if "peak_gpu_mib" in r else "")
        if r["phase"] == "score":
            ratios = ", ".join(f"{v:.2f}" for v in r["ratios"])
            lines.append(f"| {_describe(r['space'], r['space_options'], r['layer'])} | scoring, {r['execution']} | "
                         f"{r['archs']} archs, {r['repeats']} repeats | "
                         f"{r['score_seconds']:.2f} | {r['archs_per_second']:.1f} archs/s | **{r['ratio']:.2f}** "
                         f"(forward {r['forward_seconds']:.2f} s; runs {ratios}) | {peak} |")
        else:
            lines.append(f"| {_describe(r['space'], r['space_options'], r['layer'])} | training | {r['steps']} steps x {r['meta_batch']} archs | "
                         f"{r['seconds']:.2f} | {r['steps_per_second']:.2f} steps/s | - | {peak} |")
    return "\n".join(lines)


def _run_phase(job: list[str]) -> dict:
    proc = subprocess.run(job, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"benchmark phase failed: {' '.join(job[3:])}\n{proc.stderr[-2000:]}")
    line = proc.stdout.strip().splitlines()[-1]
    print(line, flush=True)
    return json.loads(line)


def _progress(message: str) -> None:
    print(f"[speed] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run every phase; print a JSON line per phase and the Markdown table, and return the rows."""
    ap = argparse.ArgumentParser(prog="hypernas bench speed", description=__doc__.split("\n")[0])
    ap.add_argument("--hypernet", action="append", default=[],
                    help="checkpoint(s) to time scoring with (repeatable); otherwise one per --spaces is trained")
    ap.add_argument("--spaces", default=",".join(SPACE_OPTIONS),
                    help="comma list of spaces to train hypernetworks for and time training on")
    ap.add_argument("--layers", default="mp", help="comma list of hypernetwork layers to compare: mp, transformer")
    ap.add_argument("--fit-steps", type=int, default=20, help="steps of the hypernetworks trained for scoring")
    ap.add_argument("--archs", type=int, default=1000, help="distinct architectures scored per repeat")
    ap.add_argument("--samples", type=int, default=1, help="hypernetwork draws per score")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=30, help="timed hypernetwork training steps (0: skip)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where scoring and training run")
    ap.add_argument("--out-md")
    ap.add_argument("--batch-size", type=int, default=FitConfig().batch_size,
                    help="samples per hypernetwork training step (images at C=16 N=5 need about 30 GiB at the "
                         f"default) [default: {FitConfig().batch_size}]")
    ap.add_argument("--execution", default="auto",
                    help=f"comma list of how a scoring batch's networks run, each timed: {', '.join(EXECUTIONS)} "
                         "[default: auto]")
    ap.add_argument("--workload", choices=["mnist1d", "images"], default="mnist1d",
                    help="mnist1d: NB201 at C=8 N=1 and macro on MNIST-1D; images: NB201 at C=16 N=5 and macro on "
                         "32x32x3 (CIFAR-10 from --data-dir, else random images of its shape)")
    ap.add_argument("--data-dir", help="the CIFAR-10 python-pickle files, for --workload images")
    ap.add_argument("--dataset", help=argparse.SUPPRESS)
    ap.add_argument("--phase", choices=["score", "train"], help=argparse.SUPPRESS)
    ap.add_argument("--space", help=argparse.SUPPRESS)
    ap.add_argument("--space-options", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase:  # a child process: one measurement, printed as JSON
        print(json.dumps(_phase(args)))
        return []
    spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
    layers = [x.strip() for x in args.layers.split(",") if x.strip()]
    executions = [x.strip() for x in args.execution.split(",") if x.strip()]
    if not executions or set(executions) - set(EXECUTIONS):
        ap.error(f"--execution takes a comma list of {', '.join(EXECUTIONS)}")
    if not layers or set(layers) - set(LAYERS):
        ap.error(f"--layers takes a comma list of {', '.join(LAYERS)}")
    for s in spaces:
        try:
            get_space(s)
        except HypernasError as err:
            ap.error(str(err))
    for name in ("archs", "repeats", "fit_steps", "threads", "samples", "batch_size"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.train_steps < 0:
        ap.error("--train-steps must be >= 0")
    check_device(args.device)
    torch.set_num_threads(args.threads)
    options_of = IMAGE_OPTIONS if args.workload == "images" else SPACE_OPTIONS
    dataset = ("cifar10" if args.data_dir else "random_images") if args.workload == "images" else "mnist1d"
    start = time.perf_counter()
    base = [sys.executable, "-m", "hypernas.bench.speed", "--threads", str(args.threads), "--device", args.device,
            "--dataset", dataset, *(["--data-dir", args.data_dir] if args.data_dir else [])]
    rows = []
    with tempfile.TemporaryDirectory(prefix="hypernas-speed-") as tmp:
        hypernets = list(args.hypernet)
        if not hypernets:
            data = load_dataset(dataset, data_dir=args.data_dir)
            for s, layer in itertools.product(spaces, layers):
                path = os.path.join(tmp, f"{s}-{layer}.pt")
                _progress(f"training a {_describe(s, options_of.get(s, {}), layer)} hypernetwork for scoring, "
                          f"{args.fit_steps} steps (not timed)")
                fit_hypernet(get_space(s), options_of.get(s, {}), data,
                             FitConfig(steps=args.fit_steps, batch_size=args.batch_size, hyper=HyperConfig(layer=layer)),
                             out=path, device=args.device, progress=False)
                hypernets.append(path)
        for path, execution in itertools.product(hypernets, executions):
            ckpt = load_checkpoint(path)
            _progress(f"scoring {_describe(ckpt['space'], ckpt['space_options'])} ({execution}): {args.archs} archs x "
                      f"{args.repeats} repeats, against a bare forward pass")
            rows.append(_run_phase(base + ["--phase", "score", "--hypernet", path, "--archs", str(args.archs),
                                           "--repeats", str(args.repeats), "--samples", str(args.samples),
                                           "--execution", execution]))
        for s, layer in itertools.product(spaces, layers) if args.train_steps else []:
            options = options_of.get(s, {})
            _progress(f"training a {_describe(s, options, layer)} hypernetwork: {args.train_steps} timed steps")
            rows.append(_run_phase(base + ["--phase", "train", "--space", s, "--space-options", json.dumps(options),
                                           "--batch-size", str(args.batch_size),
                                           "--steps", str(args.train_steps), "--layers", layer]))
    wall = time.perf_counter() - start
    sources = ("given checkpoints " + ", ".join(f"`{p}`" for p in args.hypernet) if args.hypernet else
               f"hypernetworks with the default FitConfig architecture trained for {args.fit_steps} steps "
               "(scoring speed does not depend on how well they are trained)")
    val = {r["val_samples"] for r in rows if r["phase"] == "score"}
    command = " ".join(["hypernas bench speed", shlex.join(sys.argv[1:] if argv is None else argv)]).rstrip()
    notes = (f"Command: `{command}`",
             f"{args.threads} torch thread(s), {os.cpu_count()} CPU cores, {_device_name(args.device)}; {dataset}; scoring uses {sources}, "
             f"{args.samples} draw(s), the {'/'.join(map(str, sorted(val)))}-sample validation slice; medians over "
             f"{args.repeats} repeat(s), scoring and bare forward alternating in one process. Training: meta-batch "
             f"{FitConfig().meta_batch}, batch {args.batch_size}. Each phase in its own process; "
             f"wall time {wall:.0f} s.")
    text = markdown(rows, notes)
    report(text, args.out_md)
    return rows


if __name__ == "__main__":
    main()
