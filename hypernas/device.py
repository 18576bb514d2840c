"""Where torch runs: a device that exists on this machine, and how many CPU threads.

Usage:
    check_device("cuda:0")   # a clear error on a machine without CUDA, before any work
    set_threads(1)
"""

from __future__ import annotations

from hypernas.errors import OptionError


def check_device(device: str | None) -> None:
    """A clear error for a device this machine does not have, before any work starts."""
    if not device:
        return
    import torch

    try:
        torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise OptionError(f"--device {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError(f"--device {device}: no CUDA device is available here; use --device cpu")


def set_threads(threads: int | None) -> None:
    """Torch's CPU threads; None leaves torch's default. Results are reproducible per thread count."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise OptionError(f"--threads must be an integer >= 1, got {threads!r}")
    import torch

    torch.set_num_threads(threads)
