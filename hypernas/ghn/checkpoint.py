"""Hypernetwork checkpoints: written atomically, read safely, checked against the data.

A checkpoint is a plain dict saved with `torch.save` and read with `weights_only=True`
(no code runs on load). It records the space, its options, the data signature and both
configurations, so it can refuse to score data it was not trained for.

Usage:
    hypernet = load_hypernet("runs/a/hypernet.pt", data=load_dataset("mnist1d"))
    hypernet.model, hypernet.checkpoint["space"], hypernet.sha256
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from dataclasses import dataclass
from typing import Any

import torch

from hypernas.errors import CheckpointError, HypernasError, first_line, warn
from hypernas.files import save_file

FORMAT = "hypernas-hypernet"
# What every reader relies on: key -> type. `fit` and `optimizer` matter only to resume.
REQUIRED = {"space": str, "space_options": dict, "data": dict, "hyper": dict, "model": dict}
# What readers take where it is there (older checkpoints lack some), checked as strictly.
OPTIONAL = {"fit": dict, "step": int, "skipped": int, "loss_ema": (int, float, type(None)), "world_size": int,
            "best": dict}
DATA_KEYS = ("dataset", "val_fraction", "split_seed")  # enough to load the data again


def save_checkpoint(state: dict, path: str) -> None:
    """Write a checkpoint whole or not at all (`hypernas.files.save_file`): a crash never
    leaves half a file, and the checkpoint at `path` is then the previous one, whole."""
    save_file(lambda f: torch.save(state, f), path, CheckpointError, "checkpoint")


def file_digest(path: str) -> str:
    """The first 16 hex digits of a file's sha256: which checkpoint a study or cache was made with."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def load_checkpoint(path: str) -> dict:
    """Read a checkpoint dict; missing, corrupt or foreign files raise `CheckpointError`."""
    return _read(path)[0]


def _read(path: str) -> tuple[dict, str]:
    """(checkpoint dict, digest of its bytes), from one read of the file."""
    if not os.path.isfile(path):
        raise CheckpointError(f"no hypernetwork checkpoint at {path!r}")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path!r}: {err.strerror}") from None
    try:
        ckpt = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "allowed global" in str(err) or "Unsupported global" in str(err):  # torch would advise running its code
            raise CheckpointError(f"checkpoint {path!r} holds code-bearing objects (pickled classes or functions), "
                                  "so it will not be loaded: hypernas reads only plain tensors and containers") from None
        raise CheckpointError(f"cannot read checkpoint {path!r}: it is corrupt or truncated, or not a checkpoint "
                              "(not a file of plain tensors)") from None
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"cannot read checkpoint {path!r} (corrupt or truncated?): {first_line(err)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a hypernas hypernetwork checkpoint")
    wrong = [key for key, kind in REQUIRED.items() if not isinstance(ckpt.get(key), kind)]
    wrong += [key for key, kind in OPTIONAL.items() if key in ckpt and (
        not isinstance(ckpt[key], kind) or isinstance(ckpt[key], bool) or (kind is int and ckpt[key] < 0))]
    wrong += [f"data.{key}" for key in DATA_KEYS if isinstance(ckpt.get("data"), dict) and key not in ckpt["data"]]
    steps = ckpt["fit"].get("steps", 0) if isinstance(ckpt.get("fit"), dict) else 0
    wrong += ["fit.steps"] if isinstance(steps, bool) or not isinstance(steps, int) else []
    if wrong:
        raise CheckpointError(f"checkpoint {path!r} is damaged or from another version of hypernas: "
                              f"missing or malformed {', '.join(wrong)}")
    return ckpt, hashlib.sha256(raw).hexdigest()[:16]


def non_finite(state: dict) -> list[str]:
    """The names of a state dict's floating-point tensors that hold NaN or inf.

    Usage: bad = non_finite(model.state_dict())"""
    return [k for k, v in state.items() if torch.is_floating_point(v) and not torch.isfinite(v).all()]


def check_data(ckpt: dict, data, path: str) -> None:
    """Refuse to use a checkpoint on data (or a split) other than the one it was trained on.
    The data is known by its content: the same arrays under another path or name are the same data."""
    differs = data.mismatch(ckpt["data"])
    if differs:
        raise CheckpointError(f"checkpoint {path!r} was trained for other data than {data.name!r} ({differs}); "
                              "train a hypernetwork for this data with `hypernas train-hypernet`, or leave out "
                              "--hypernet and pick a new --study to train one")


def check_space(ckpt: dict, space: str, options: dict, path: str) -> None:
    """Refuse to score a space, or space options, other than those the hypernetwork learned.

    `options` are the space's resolved options (`Space.resolve_options`), as recorded."""
    if (ckpt["space"], ckpt["space_options"]) != (space, options):
        raise CheckpointError(f"checkpoint {path!r} was trained on space {ckpt['space']!r} with options "
                              f"{ckpt['space_options']}, not on {space!r} with {options}; use a hypernetwork "
                              "trained for this space, or leave out --hypernet to train one")


@dataclass
class Hypernet:
    """A loaded hypernetwork: the model (eval mode, early-stopping best weights), the
    checkpoint dict it came from, its path and the digest of the file's bytes."""

    model: Any  # GraphHyperNetwork
    checkpoint: dict
    path: str
    sha256: str


def load_hypernet(path: str, data=None, device: str = "cpu") -> Hypernet:
    """Read a checkpoint once and build its hypernetwork. With `data`, refuse a mismatch.

    The weights are the early-stopping best (lowest validation loss) where recorded."""
    from hypernas.config import HyperConfig
    from hypernas.ghn.model import GraphHyperNetwork

    ckpt, digest = _read(path)
    if data is not None:
        check_data(ckpt, data, path)
    try:
        hyper = dict(ckpt["hyper"])
        ops, ndim = tuple(hyper.pop("ops")), hyper.pop("ndim")
        ghn = GraphHyperNetwork(HyperConfig(**hyper), ops, ndim)
        weights = ckpt["best"]["model"] if "best" in ckpt else ckpt["model"]
        ghn.load_state_dict(weights)
    except (TypeError, ValueError, RuntimeError, KeyError, HypernasError) as err:
        detail = " ".join(line.strip() for line in str(err).splitlines() if line.strip())  # torch's are multi-line
        raise CheckpointError(f"checkpoint {path!r} does not match this version of hypernas: {detail[:300]}") from None
    ghn.learned = {"space": ckpt["space"], "space_options": ckpt["space_options"]}  # what its scorer checks graphs by
    bad = non_finite(weights)
    if bad:  # every score would be NaN
        raise CheckpointError(f"checkpoint {path!r} holds NaN or inf weights ({', '.join(bad[:3])}); it will not be used")
    return Hypernet(ghn.to(device).eval(), ckpt, path, digest)


def warn_unfinished(hypernet: Hypernet) -> None:
    """Say so when a checkpoint stopped before the steps it was planned for."""
    done, planned = hypernet.checkpoint.get("step", 0), hypernet.checkpoint.get("fit", {}).get("steps", 0)
    if done < planned:
        warn(f"the hypernetwork {hypernet.path} stopped after {done} of its {planned} planned training steps; "
             f"continue it with `hypernas train-hypernet --resume --out {hypernet.path} ...`")
