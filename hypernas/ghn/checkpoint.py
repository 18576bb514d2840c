"""Hypernetwork checkpoints: written atomically, read safely, checked against the data.

A checkpoint is a plain dict saved with `torch.save` and read with `weights_only=True`
(no code runs on load). It records the space, its options, the data signature and both
configurations, so it can refuse to score data it was not trained for.

Usage:
    ghn, ckpt = load_hypernet("runs/a/hypernet.pt", data=load_dataset("mnist1d"))
"""

from __future__ import annotations

import os
import tempfile

import torch

from hypernas.errors import CheckpointError

FORMAT = "hypernas-hypernet"


def save_checkpoint(state: dict, path: str) -> None:
    """Write to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".hypernet-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str) -> dict:
    """Read a checkpoint dict; missing, corrupt or foreign files raise `CheckpointError`."""
    if not os.path.isfile(path):
        raise CheckpointError(f"no hypernetwork checkpoint at {path!r}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"cannot read checkpoint {path!r} (corrupt or truncated?): {type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a hypernas hypernetwork checkpoint")
    return ckpt


def check_data(ckpt: dict, data, path: str) -> None:
    """Refuse to use a checkpoint on data (or a split) other than the one it was trained on."""
    if ckpt["data"] != data.signature():
        raise CheckpointError(f"checkpoint {path!r} was trained for {ckpt['data']}, not for {data.signature()}; "
                              "train a hypernetwork for this data with `hypernas train-hypernet`")


def load_hypernet(path: str, data=None, device: str = "cpu"):
    """(GraphHyperNetwork in eval mode, checkpoint dict). With `data`, refuse a mismatch.

    The weights are the early-stopping best (lowest validation loss) where recorded."""
    from hypernas.ghn.model import GraphHyperNetwork, HyperConfig

    ckpt = load_checkpoint(path)
    if data is not None:
        check_data(ckpt, data, path)
    hyper = dict(ckpt["hyper"])
    hyper["ops"] = tuple(hyper["ops"])
    try:
        ghn = GraphHyperNetwork(HyperConfig(**hyper))
        ghn.load_state_dict(ckpt["best"]["model"] if "best" in ckpt else ckpt["model"])
    except (TypeError, RuntimeError, KeyError) as err:
        raise CheckpointError(f"checkpoint {path!r} does not match this version of hypernas: {err}") from None
    return ghn.to(device).eval(), ckpt
