"""Export a trial of a study as a ready model, and load it back.

A trial that was trained in the final phase exports its trained weights; any other trial
exports the weights the hypernetwork predicts for it, with BatchNorm's running statistics
taken from the batch its score was computed on. The folder holds `arch.json` (the graph),
`weights.pt` (a state dict), `meta.json` (which weights, the data's shape, normalisation and
classes, and the digests of both files) and, where `torch.export` handles the model, `model.pt2`.

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
from hypernas.errors import CheckpointError, HypernasError, first_line, warn
from hypernas.files import save_file, save_text
from hypernas.graph import from_json, to_json, validate
from hypernas.spaces import Space
from hypernas.study import load_study
from hypernas.study.record import pick_trial, trial_graph


def export_trial(storage: str, study_name: str, which: str | int, out_dir: str, space: Space | None = None,
                 run_dir: str | None = None) -> dict:
    """Write a trial's graph and weights to `out_dir`; returns what `meta.json` records.

    A trained finalist's weights are found in `run_dir` (by default the one the study
    recorded), where the final training put them; if they are not there the export fails
    rather than fall back to predicted weights. `space` is needed only for a user's own space
    (`hypernas.study.record.study_space`). The study is read, never written."""
    study = load_study(storage, study_name, read_only=True)
    trial = pick_trial(study, which)
    G = trial_graph(study, trial, space)
    attrs = study.user_attrs
    model = compile_graph(G, attrs["ndim"])
    if "trained_accuracy" in trial.user_attrs:
        model.load_state_dict(_trained_weights(trial, run_dir or attrs.get("run_dir", ".")))
        kind = "trained"
    else:
        _predicted_weights(model, G, attrs)
        kind = "predicted"
    arch = to_json(G)
    weights = io.BytesIO()
    torch.save(model.state_dict(), weights)
    meta = {"weights": kind, "batch_stats": model.batch_stats, "ndim": attrs["ndim"], "input_size": attrs["input_size"],
            "in_channels": attrs["in_channels"], "num_classes": attrs["num_classes"], "classes": attrs.get("classes"),
            "input_mean": attrs.get("input_mean"), "input_std": attrs.get("input_std"),
            "study": study_name, "trial": trial.number, "score": trial.values[0],
            "trained_accuracy": trial.user_attrs.get("trained_accuracy"), "arch_sha256": _digest(arch.encode()),
            "weights_sha256": _digest(weights.getvalue()), "pt2": None}
    save_text(arch, os.path.join(out_dir, "arch.json"), CheckpointError)
    save_file(lambda f: f.write(weights.getvalue()), os.path.join(out_dir, "weights.pt"), CheckpointError)
    example = torch.randn(2, meta["in_channels"], *meta["input_size"])
    try:
        batch = torch.export.Dim("batch", min=2)  # any batch size, not just the example's
        program = torch.export.export(model.eval(), (example,), dynamic_shapes={"x": {0: batch}})
        save_file(lambda f: torch.export.save(program, f), os.path.join(out_dir, "model.pt2"), CheckpointError)
        meta["pt2"] = "model.pt2"
    except CheckpointError:
        raise
    except Exception as err:  # torch.export is best effort; the graph and weights always load
        meta["pt2_error"] = first_line(err)
    save_text(json.dumps(meta, indent=1), os.path.join(out_dir, "meta.json"), CheckpointError)
    return meta


def _trained_weights(trial, run_dir: str) -> dict:
    """The state dict the final training saved for `trial`, from the run directory."""
    recorded = trial.user_attrs.get("trained_weights", "")
    path = recorded if os.path.isabs(recorded) else os.path.join(run_dir, recorded)
    if not recorded or not os.path.isfile(path):
        raise CheckpointError(f"trial {trial.number} was trained, but its weights {recorded!r} are not in {run_dir!r}; "
                              "pass the run directory that holds them (--runs and --study), e.g. after a move")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"cannot read the trained weights {path!r}: {type(err).__name__}") from None


def _predicted_weights(model: GraphModule, G, attrs: dict) -> None:
    """The hypernetwork's central prediction, with BatchNorm's running statistics taken from
    the batch the score was computed on, so the model answers alike for any batch size."""
    from hypernas.data import load_dataset_like
    from hypernas.errors import DatasetError
    from hypernas.ghn.checkpoint import load_hypernet
    from hypernas.ghn.model import predict_weights
    from hypernas.ghn.start import predicted_start, score_batch

    hypernet = load_hypernet(attrs["hypernet"])
    if attrs.get("hypernet_sha256") and hypernet.sha256 != attrs["hypernet_sha256"]:
        raise CheckpointError(f"the hypernetwork {attrs['hypernet']!r} is not the one the study was scored with "
                              f"(digest {hypernet.sha256}, recorded {attrs['hypernet_sha256']})")
    try:
        data = load_dataset_like({k: attrs.get(k) for k in ("dataset", "sha256", "in_channels", "input_size",
                                                           "num_classes", "val_fraction", "split_seed", "classes")})
    except DatasetError as err:
        with torch.no_grad():
            model.load_flat(predict_weights(hypernet.model, [validate(G)])[0])
        model.batch_stats = True
        warn(f"the export normalises each batch by itself (BatchNorm on batch statistics): {err}")
        return
    predicted_start(hypernet.model, G, score_batch(data, attrs.get("score_split", "val")))(model)


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


META_TYPES = {"weights": str, "batch_stats": bool, "ndim": int}  # what `load` needs of meta.json


def load(path: str) -> GraphModule:
    """A ready `nn.Module` (eval mode) from a folder written by `export_trial`.

    It takes inputs standardised as the study's data were: `(x - mean) / std` per channel,
    with `input_mean` and `input_std` from `meta.json`; its classes 0..K-1 are the labels
    listed in `meta.json`'s `classes` where the data's labels were not 0..K-1. The graph and
    the weights are checked against the digests `meta.json` records, so an edited file is refused.

    Usage: `model = hypernas.load("exported/"); logits = model((x - mean) / std)`
    """
    try:
        with open(os.path.join(path, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        with open(os.path.join(path, "arch.json"), "rb") as f:
            arch = f.read()
        with open(os.path.join(path, "weights.pt"), "rb") as f:
            raw = f.read()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path!r} is not an exported hypernas model: {err}") from None
    wrong = [k for k, kind in META_TYPES.items() if not isinstance(meta, dict) or not isinstance(meta.get(k), kind)]
    if wrong:
        raise CheckpointError(f"{path!r}: meta.json is malformed (missing or wrong {', '.join(wrong)})")
    for name, content in (("arch", arch), ("weights", raw)):
        recorded = meta.get(f"{name}_sha256")
        if recorded is None:
            warn(f"{path!r} comes from an older hypernas: its {name} cannot be checked against a digest")
        elif _digest(content) != recorded:
            raise CheckpointError(f"{path!r}: {name}{'.json' if name == 'arch' else '.pt'} is not the file that "
                                  "was exported (its digest differs); export the trial again")
    try:
        G = from_json(arch.decode("utf-8"))
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except HypernasError:
        raise
    except Exception as err:
        raise CheckpointError(f"cannot read the weights in {path!r}: {type(err).__name__}") from None
    bad = [k for k, v in state.items() if torch.is_floating_point(v) and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"the weights in {path!r} hold NaN or inf ({', '.join(bad[:3])}); they will not be loaded")
    model = compile_graph(G, meta["ndim"])
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"the weights in {path!r} do not fit its architecture: {str(err).splitlines()[0]}") from None
    model.batch_stats = meta["batch_stats"]
    return model.eval()
