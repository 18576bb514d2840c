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
    python -m benchmarks.speed --threads 2 --archs 1000 --out-md runs/speed.md
    python -m benchmarks.speed --workload images --archs 20 --repeats 2 --fit-steps 1 --train-steps 3 --batch-size 32
    python -m benchmarks.speed --hypernet runs/ref/hypernet.pt --archs 1000
    python -m benchmarks.speed --spaces nb201 --layers mp,transformer   # the two hypernetwork layers side by side
    python -m benchmarks.speed --execution each,together --train-steps 0   # a batch's networks one by one, or together
"""

from __future__ import annotations

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
from dataclasses import dataclass, replace

import torch

from benchmarks.core.report import one_line_errors, parse, write_report
from hypernas.batched import EXECUTIONS
from hypernas.compile import compile_graph
from hypernas.config import FitConfig, HyperConfig
from hypernas.data import load_dataset, load_dataset_like
from hypernas.device import check_device
from hypernas.ghn.checkpoint import load_checkpoint
from hypernas.ghn.fit import fit_hypernet
from hypernas.ghn.model import LAYERS
from hypernas.options import check, option
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


def _phase(spec: dict) -> dict:
    """One measurement in this (child) process, from the parent's JSON spec."""
    start_peak = _peak_mib()  # the interpreter with torch and hypernas imported
    torch.set_num_threads(spec["threads"])
    if spec["phase"] == "score":
        result = time_scoring(spec["hypernet"], spec["archs"], spec["repeats"], spec["samples"], spec["device"],
                              spec["data_dir"], spec["execution"])
        result["peak_rss_mib_with_baseline"] = _peak_mib()
    else:
        result = {**time_training(spec["space"], spec["space_options"], spec["steps"], spec["layer"], spec["device"],
                                  spec["dataset"], spec["data_dir"], spec["batch_size"]),
                  "peak_rss_mib": _peak_mib()}
    if torch.device(spec["device"]).type == "cuda":  # the whole phase's, the baseline's models included
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated(spec["device"]) / 2**20
    return {**result, "startup_rss_mib": start_peak, "threads": spec["threads"], "device": spec["device"]}


def _describe(space: str, options: dict, layer: str | None = None) -> str:
    text = space + (" (" + ", ".join(f"{k}={v}" for k, v in options.items()) + ")" if options else "")
    return text + (f", {layer} layers" if layer else "")


def markdown(result: dict) -> str:
    """One row per phase: scoring (with its ratio to the bare forward pass) and training, per space."""
    rows = result["rows"]
    lines = [*result["notes"], "",
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


def _run_phase(spec: dict) -> dict:
    job = [sys.executable, "-m", "benchmarks.speed", PHASE, json.dumps(spec)]
    proc = subprocess.run(job, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"benchmark phase failed: {spec}\n{proc.stderr[-2000:]}")
    line = proc.stdout.strip().splitlines()[-1]
    print(line, flush=True)
    return json.loads(line)


def _progress(message: str) -> None:
    print(f"[speed] {message}", file=sys.stderr, flush=True)


PHASE = "--phase"  # a child process: one measurement, its spec as JSON, printed back as JSON


@dataclass(frozen=True)
class Config:
    hypernet: tuple[str, ...] | None = option(None, "checkpoint(s) to time scoring with (a comma list); otherwise one "
                                                    "per --spaces is trained")
    spaces: tuple[str, ...] = option(tuple(SPACE_OPTIONS), "spaces to train hypernetworks for and time training on",
                                     choices=tuple(SPACE_OPTIONS))
    layers: tuple[str, ...] = option(("mp",), "hypernetwork layers to compare", choices=LAYERS)
    fit_steps: int = option(20, "steps of the hypernetworks trained for scoring", low=1)
    archs: int = option(1000, "distinct architectures scored per repeat", low=1)
    samples: int = option(1, "hypernetwork draws per score", low=1)
    repeats: int = option(3, "timed repeats, scoring and the bare forward pass alternating", low=1)
    train_steps: int = option(30, "timed hypernetwork training steps (0: skip)", low=0)
    threads: int = option(torch.get_num_threads(), "torch threads", low=1)
    device: str = option("cpu", "cpu, cuda or cuda:N: where scoring and training run")
    batch_size: int = option(FitConfig().batch_size, "samples per hypernetwork training step (images at C=16 N=5 "
                                                     "need about 30 GiB at the default)", low=1)
    execution: tuple[str, ...] = option(("auto",), "how a scoring batch's networks run, each timed",
                                        choices=EXECUTIONS)
    workload: str = option("mnist1d", "mnist1d: NB201 at C=8 N=1 and macro on MNIST-1D; images: NB201 at C=16 N=5 "
                                      "and macro on 32x32x3 (CIFAR-10 from --data-dir, else random images of its "
                                      "shape)", choices=("mnist1d", "images"))
    data_dir: str | None = option(None, "the CIFAR-10 python-pickle files, for --workload images")
    command_line: str = ""  # how it was run, for the report (set by `main`)

    def __post_init__(self):
        check(self)
        check_device(self.device)


def run(config: Config) -> dict:
    """Run every phase, each in a fresh process; print a JSON line per phase as it finishes."""
    torch.set_num_threads(config.threads)
    options_of = IMAGE_OPTIONS if config.workload == "images" else SPACE_OPTIONS
    dataset = ("cifar10" if config.data_dir else "random_images") if config.workload == "images" else "mnist1d"
    start = time.perf_counter()
    base = {"threads": config.threads, "device": config.device, "dataset": dataset, "data_dir": config.data_dir}
    rows = []
    with tempfile.TemporaryDirectory(prefix="hypernas-speed-") as tmp:
        hypernets = list(config.hypernet or ())
        if not hypernets:
            data = load_dataset(dataset, data_dir=config.data_dir)
            for s, layer in itertools.product(config.spaces, config.layers):
                path = os.path.join(tmp, f"{s}-{layer}.pt")
                _progress(f"training a {_describe(s, options_of.get(s, {}), layer)} hypernetwork for scoring, "
                          f"{config.fit_steps} steps (not timed)")
                fit_hypernet(get_space(s), options_of.get(s, {}), data, FitConfig(
                    steps=config.fit_steps, batch_size=config.batch_size, hyper=HyperConfig(layer=layer)),
                    out=path, device=config.device, progress=False)
                hypernets.append(path)
        for path, execution in itertools.product(hypernets, config.execution):
            ckpt = load_checkpoint(path)
            _progress(f"scoring {_describe(ckpt['space'], ckpt['space_options'])} ({execution}): {config.archs} archs "
                      f"x {config.repeats} repeats, against a bare forward pass")
            rows.append(_run_phase({**base, "phase": "score", "hypernet": path, "archs": config.archs,
                                    "repeats": config.repeats, "samples": config.samples, "execution": execution}))
        for s, layer in itertools.product(config.spaces, config.layers) if config.train_steps else []:
            options = options_of.get(s, {})
            _progress(f"training a {_describe(s, options, layer)} hypernetwork: {config.train_steps} timed steps")
            rows.append(_run_phase({**base, "phase": "train", "space": s, "space_options": options,
                                    "batch_size": config.batch_size, "steps": config.train_steps, "layer": layer}))
    wall = time.perf_counter() - start
    sources = ("given checkpoints " + ", ".join(f"`{p}`" for p in config.hypernet) if config.hypernet else
               f"hypernetworks with the default FitConfig architecture trained for {config.fit_steps} steps "
               "(scoring speed does not depend on how well they are trained)")
    val = {r["val_samples"] for r in rows if r["phase"] == "score"}
    notes = (f"Command: `{config.command_line}`",
             f"{config.threads} torch thread(s), {os.cpu_count()} CPU cores, {_device_name(config.device)}; {dataset}; "
             f"scoring uses {sources}, {config.samples} draw(s), the {'/'.join(map(str, sorted(val)))}-sample "
             f"validation slice; medians over {config.repeats} repeat(s), scoring and bare forward alternating in one "
             f"process. Training: meta-batch {FitConfig().meta_batch}, batch {config.batch_size}. Each phase in its "
             f"own process; wall time {wall:.0f} s.")
    return {"rows": rows, "notes": notes}


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [PHASE]:
        print(json.dumps(_phase(json.loads(argv[1]))))
        return []
    config, out_md = parse(Config, argv, prog="python -m benchmarks.speed", doc=__doc__)
    with one_line_errors("python -m benchmarks.speed"):
        result = run(replace(config, command_line=" ".join(["python -m benchmarks.speed", shlex.join(argv)]).rstrip()))
    write_report(markdown(result), out_md)
    return result["rows"]


if __name__ == "__main__":
    main()
