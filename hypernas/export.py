"""Export a trial of a study as a ready model, and load it back.

A trial that was trained in the final phase exports its trained weights; any other trial
exports the weights the hypernetwork predicts for it, with BatchNorm's running statistics
taken from the batch its score was computed on. The folder holds `arch.json` (the graph),
`weights.pt` (a state dict), where `torch.export` handles the model `model.pt2` (and beside it
`model.onnx` where `onnx` and `onnxscript` are installed: `pip install hypernas[onnx]`), and
`meta.json`: which weights, the data's shape, normalisation and classes, and the digests of
every file, its own content included.

Usage:
    info = export_trial("sqlite:///runs/demo/study.db", "demo", "best", "exported/")
    model = hypernas.load("exported/")
"""

from __future__ import annotations

import hashlib
import io
import json
import os

import torch

from hypernas.compile import GraphModule, compile_graph
from hypernas.device import check_memory
from hypernas.errors import CheckpointError, HypernasError, first_line, shown, warn
from hypernas.files import save_file, save_text
from hypernas.finals import best_said, pick_trial
from hypernas.ghn.checkpoint import non_finite
from hypernas.graph import activation_numel, from_json, to_json, validate
from hypernas.spaces import Space
from hypernas.study import load_study
from hypernas.study.attrs import META, check_kinds, weights_name
from hypernas.study.record import trial_graph


def export_trial(storage: str, study_name: str, which: str | int, out_dir: str, space: Space | None = None,
                 run_dir: str | None = None, hypernet: str | None = None) -> dict:
    """Write a trial's graph and weights to `out_dir`; returns what `meta.json` records.
    `which` is a trial number or `best` (`hypernas.finals.best_trial`: the best trained finalist).

    A trained finalist's weights are found in `run_dir` (by default the one the study
    recorded), where the final training put them; if they are not there the export fails
    rather than fall back to predicted weights. Any other trial's weights are predicted by the
    hypernetwork: `hypernet` where given, else the one in `run_dir`, else the path the study
    recorded, checked against the digest it recorded. `space` is needed only for a user's own
    space (`hypernas.study.record.study_space`). The study is read, never written."""
    study = load_study(storage, study_name, read_only=True)
    attrs = study.user_attrs
    check_kinds(attrs, {}, f"study {study_name!r}", required=("ndim", "in_channels", "input_size", "num_classes"))
    trial = pick_trial(study, which)
    best = best_said(study, trial) if str(which) == "best" else None
    G = trial_graph(study, trial, space)
    model = compile_graph(G, attrs["ndim"])
    check_memory(2 * 4 * activation_numel(G, tuple(attrs["input_size"])), f"exporting trial {trial.number} (inputs "
                 f"of size {attrs['input_size']})")
    if "trained_accuracy" in trial.user_attrs:
        _load_state(model, _trained_weights(trial, attrs, run_dir or attrs.get("run_dir", ".")), "its trained weights")
        kind = "trained"
    else:
        _predicted_weights(model, G, attrs, _hypernet_path(attrs, run_dir, hypernet))
        kind = "predicted"
    files = {"arch": to_json(G).encode(), "weights": _saved(model.state_dict())}
    meta = {"weights": kind, "batch_stats": model.batch_stats, "ndim": attrs["ndim"], "input_size": attrs["input_size"],
            "in_channels": attrs["in_channels"], "num_classes": attrs["num_classes"], "classes": attrs.get("classes"),
            "input_mean": attrs.get("input_mean"), "input_std": attrs.get("input_std"),
            "study": study_name, "trial": trial.number, "score": trial.values[0],
            "trained_accuracy": trial.user_attrs.get("trained_accuracy"), "pt2": None, "onnx": None, "best": best}
    example = torch.randn(2, meta["in_channels"], *meta["input_size"])
    try:
        batch = torch.export.Dim("batch", min=2)  # any batch size, not just the example's
        program = torch.export.export(model.eval(), (example,), dynamic_shapes={"x": {0: batch}})
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
        files["pt2"], meta["pt2"] = buffer.getvalue(), "model.pt2"
        _onnx(program, example, files, meta)
    except Exception as err:  # torch.export is best effort; the graph and weights always load
        meta["pt2_error"] = first_line(err)
    for name, raw in files.items():
        meta[f"{name}_sha256"] = _digest(raw)
        save_file(lambda f, raw=raw: f.write(raw), os.path.join(out_dir, FILES[name]), CheckpointError)
    meta["meta_sha256"] = _meta_digest(meta)
    save_text(json.dumps(meta, indent=1), os.path.join(out_dir, "meta.json"), CheckpointError)
    return meta


FILES = {"arch": "arch.json", "weights": "weights.pt", "pt2": "model.pt2", "onnx": "model.onnx"}  # besides meta.json


def _onnx(program, example: torch.Tensor, files: dict, meta: dict) -> None:
    """`model.onnx` from the exported program, where the optional `onnx` extra is installed."""
    import importlib.util
    import logging

    if not (importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxscript")):
        meta["onnx_error"] = "onnx and onnxscript are not installed (pip install hypernas[onnx])"
        return
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it names every torchvision op it skips
    try:
        raw = io.BytesIO()  # it saves by the file's name, which a file opened from a descriptor lacks
        torch.onnx.export(program, (example,), dynamo=True, verbose=False).save(raw)
        files["onnx"], meta["onnx"] = raw.getvalue(), "model.onnx"
    except Exception as err:  # noqa: BLE001 (best effort, as model.pt2: the exporter raises many kinds)
        meta["onnx_error"] = first_line(err)
    finally:
        quiet.setLevel(level)


def _hypernet_path(attrs: dict, run_dir: str | None, given: str | None) -> str:
    """Where the study's hypernetwork is: `given`, else the run directory's (a moved run), else
    the recorded path."""
    check_kinds(attrs, {}, "the study", required=("hypernet", "hypernet_sha256"))
    if given:
        return given
    moved = os.path.join(run_dir, "hypernet.pt") if run_dir else None
    if moved and os.path.isfile(moved):
        return moved
    if not os.path.isfile(attrs["hypernet"]):
        raise CheckpointError(f"the study's hypernetwork is not at {attrs['hypernet']!r}"
                              + (f" nor in {run_dir!r}" if run_dir else "") +
                              "; pass --hypernet (or --runs with the moved run directory) to export predicted weights")
    return attrs["hypernet"]


def _saved(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _trained_weights(trial, attrs: dict, run_dir: str) -> dict:
    """The state dict the final training saved for `trial`, from the run directory. Only the
    file that training wrote is read (`weights_name`): a study's attribute never decides which."""
    recorded = trial.user_attrs.get("trained_weights")
    expected = weights_name(attrs.get("run_token", ""), trial.number)
    if recorded != expected:
        raise CheckpointError(f"trial {trial.number} records its trained_weights as {shown(recorded)}, not {expected!r}, "
                              "the file its final training wrote; it is not read")
    path = os.path.join(run_dir, expected)
    if not os.path.isfile(path):
        raise CheckpointError(f"trial {trial.number} was trained, but its weights {recorded!r} are not in {run_dir!r}; "
                              "pass the run directory that holds them (--runs and --study), e.g. after a move")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"cannot read the trained weights {path!r}: {type(err).__name__}") from None


def _load_state(model: GraphModule, state: object, what: str) -> None:
    """`model.load_state_dict(state)`, or one line saying why the state does not fit."""
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"{what} hold {shown(type(state).__name__)}, not a state dict of named tensors")
    bad = non_finite(state)
    if bad:
        raise CheckpointError(f"{what} hold NaN or inf ({', '.join(bad[:3])}); they will not be loaded")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{what} do not fit its architecture: {first_line(err)}") from None


def _predicted_weights(model: GraphModule, G, attrs: dict, path: str) -> None:
    """The hypernetwork's central prediction (the checkpoint at `path`), with BatchNorm's running
    statistics taken from the batch the score was computed on, so the model answers alike for
    any batch size."""
    from hypernas.data import load_dataset_like
    from hypernas.errors import DatasetError
    from hypernas.ghn.checkpoint import file_digest, load_hypernet
    from hypernas.ghn.model import predict_weights
    from hypernas.ghn.start import predicted_start, scoring_samples

    check_kinds(attrs, {}, "the study", required=("hypernet_sha256", "dataset", "val_fraction", "split_seed"))
    recorded = attrs["hypernet_sha256"]
    digest = file_digest(path) if os.path.isfile(path) else None
    if digest is not None and digest != recorded:  # checked before the file is parsed: the study names it
        raise CheckpointError(f"the hypernetwork {path!r} is not the one the study was scored with (digest {digest}, "
                              f"recorded {recorded})")
    hypernet = load_hypernet(path)
    try:
        data = load_dataset_like({k: attrs.get(k) for k in ("dataset", "sha256", "in_channels", "input_size",
                                                           "num_classes", "val_fraction", "split_seed", "classes",
                                                           "layout")})
    except DatasetError as err:
        with torch.no_grad():
            model.load_flat(predict_weights(hypernet.model, [validate(G)])[0])
        model.batch_stats = True
        warn(f"the export normalises each batch by itself (BatchNorm on batch statistics): {err}")
        return
    predicted_start(hypernet.model, G, scoring_samples(data, attrs.get("score_split", "val"))[0])(model)


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def _meta_digest(meta: dict) -> str:
    """The digest of meta.json's content, its own digest aside (a file cannot hold its own)."""
    return _digest(json.dumps({k: v for k, v in meta.items() if k != "meta_sha256"}, sort_keys=True).encode())


def load(path: str) -> GraphModule:
    """A ready `nn.Module` (eval mode) from a folder written by `export_trial`.

    It takes inputs standardised as the study's data were: `(x - mean) / std` per channel,
    with `input_mean` and `input_std` from `meta.json`; its classes 0..K-1 are the labels
    listed in `meta.json`'s `classes` where the data's labels were not 0..K-1.
    `repr(model)` lists its layers in the order they run. To deploy it, trace it
    (`torch.jit.trace(model, x)`) or export it (`torch.export.export(model, (x,))`, as
    `model.pt2` is; `model.onnx` comes from that): those are the supported paths.
    `torch.jit.script` is not, since the module runs its graph in a Python loop.

    Every file of the export is checked against the digest `meta.json` records of it, and
    meta.json against its own; an export without them is refused. The digests catch damage (a
    truncated copy, a flipped bit, a file from another export), not deliberate edits: anyone
    can recompute them, so they are not signatures. Load only exports from people you trust;
    the weights are read without running code (`weights_only`) whoever made them.

    Usage: `model = hypernas.load("exported/"); logits = model((x - mean) / std)`
    """
    try:
        with open(os.path.join(path, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        files = {}
        for name in [n for n in FILES if n in ("arch", "weights") or (isinstance(meta, dict) and meta.get(n))]:
            with open(os.path.join(path, FILES[name]), "rb") as f:
                files[name] = f.read()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path!r} is not an exported hypernas model: {err}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path!r}: meta.json is malformed (not an object)")
    for name, content in {"meta": None, **files}.items():  # meta.json first: it holds the others' digests
        recorded = meta.get(f"{name}_sha256")
        if not isinstance(recorded, str):
            raise CheckpointError(f"{path!r}: meta.json has no digest of {FILES.get(name, 'itself')} ({name}_sha256 "
                                  "missing): the export is damaged, or older than digests of every file; export the "
                                  "trial again")
        if recorded != (_meta_digest(meta) if content is None else _digest(content)):
            raise CheckpointError(f"{path!r}: {FILES.get(name, 'meta.json')} is not the file that was exported (its "
                                  "digest differs); export the trial again")
    check_kinds(meta, META, f"{path!r}: meta.json is malformed", "", ("weights", "batch_stats", "ndim"), CheckpointError)
    try:
        G = from_json(files["arch"].decode("utf-8"))
        state = torch.load(io.BytesIO(files["weights"]), map_location="cpu", weights_only=True)
    except HypernasError:
        raise
    except Exception as err:
        raise CheckpointError(f"cannot read the weights in {path!r}: {type(err).__name__}") from None
    model = compile_graph(G, meta["ndim"])
    _load_state(model, state, f"the weights in {path!r} (weights.pt)")
    model.batch_stats = meta["batch_stats"]
    return model.eval()
