"""Export a trial of a study as a ready model, and load it back.

A trial that was trained in the final phase exports its trained weights; any other trial
exports the weights the hypernetwork predicts for it (BatchNorm then uses batch
statistics, since predicted weights come without running statistics). The folder holds
`arch.json` (the graph), `weights.pt` (a state dict), `meta.json` (which weights, data
shape) and, where `torch.export` handles the model, `model.pt2`.

Usage:
    info = export_trial("sqlite:///runs/demo/study.db", "demo", "best", "exported/")
    model = hypernas.load("exported/")
"""

from __future__ import annotations

import json
import os

import torch

from hypernas.compile import GraphModule, compile_graph
from hypernas.errors import CheckpointError
from hypernas.graph import from_json, to_json, validate
from hypernas.spaces import Space
from hypernas.study import load_study
from hypernas.study.record import pick_trial, trial_graph


def export_trial(storage: str, study_name: str, which: str | int, out_dir: str, space: Space | None = None) -> dict:
    """Write a trial's graph and weights to `out_dir`; returns what `meta.json` records.
    `space` is needed only for a user's own space (`hypernas.study.record.study_space`)."""
    from hypernas.ghn.checkpoint import load_hypernet
    from hypernas.ghn.model import predict_weights

    study = load_study(storage, study_name)
    trial = pick_trial(study, which)
    G = trial_graph(study, trial, space)
    ndim = study.user_attrs["ndim"]
    model = compile_graph(G, ndim)
    path = trial.user_attrs.get("trained_weights")
    if path and os.path.isfile(path):
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        kind = "trained"
    else:
        ghn = load_hypernet(study.user_attrs["hypernet"]).model
        with torch.no_grad():
            predicted = predict_weights(ghn, [validate(G)])[0]
        model.load_flat(predicted)
        model.batch_stats = True
        kind = "predicted"
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "arch.json"), "w") as f:
        f.write(to_json(G))
    torch.save(model.state_dict(), os.path.join(out_dir, "weights.pt"))
    meta = {"weights": kind, "batch_stats": model.batch_stats, "ndim": ndim, "input_size": study.user_attrs["input_size"],
            "in_channels": study.user_attrs["in_channels"], "study": study_name, "trial": trial.number,
            "score": trial.values[0], "trained_accuracy": trial.user_attrs.get("trained_accuracy"), "pt2": None}
    example = torch.randn(2, meta["in_channels"], *meta["input_size"])
    try:
        batch = torch.export.Dim("batch", min=2)  # any batch size, not just the example's
        program = torch.export.export(model.eval(), (example,), dynamic_shapes={"x": {0: batch}})
        torch.export.save(program, os.path.join(out_dir, "model.pt2"))
        meta["pt2"] = "model.pt2"
    except Exception as err:  # torch.export is best effort; the graph and weights always load
        meta["pt2_error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def load(path: str) -> GraphModule:
    """A ready `nn.Module` (eval mode) from a folder written by `export_trial`.

    Usage: `model = hypernas.load("exported/"); logits = model(x)`
    """
    try:
        with open(os.path.join(path, "meta.json")) as f:
            meta = json.load(f)
        with open(os.path.join(path, "arch.json")) as f:
            G = from_json(f.read())
        state = torch.load(os.path.join(path, "weights.pt"), map_location="cpu", weights_only=True)
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path!r} is not an exported hypernas model: {err}") from None
    except Exception as err:
        raise CheckpointError(f"cannot read the weights in {path!r}: {type(err).__name__}") from None
    model = compile_graph(G, meta["ndim"])
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"the weights in {path!r} do not fit its architecture: {str(err).splitlines()[0]}") from None
    model.batch_stats = meta["batch_stats"]
    return model.eval()
