"""Where torch runs: a device that exists on this machine, and how many CPU threads.

Usage:
    check_device("cuda:0")   # a clear error on a machine without CUDA, before any work
    set_threads(1)
"""

from __future__ import annotations

from hypernas.errors import OptionError


def check_device(device: str | None) -> None:
    """A clear error for a device this machine does not have, before any work starts. The one
    check of every device: the flags', a study config's and the Python API's (`SearchConfig`).
    Only the CPU and CUDA compute here: torch also names devices such as `meta`, which hold
    no data, and a run on one would fail deep inside."""
    if device is None:
        return
    import torch

    try:
        kind = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise OptionError(f"--device {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if kind.type not in ("cpu", "cuda"):
        raise OptionError(f"--device {device!r} is a {kind.type} device, which hypernas does not run on; use cpu, "
                          "cuda or cuda:N")
    if kind.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"--device {device}: no CUDA device is available here; use --device cpu")
    if kind.type == "cuda" and (kind.index or 0) >= torch.cuda.device_count():
        raise OptionError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                          f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")


def available_bytes(device: str = "cpu") -> int | None:
    """Memory free for new tensors on `device`, or None where this cannot be read. On the CPU
    the lesser of what the machine has available and what this process's address-space limit
    (`ulimit -v`) leaves it."""
    import resource

    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.mem_get_info(torch.device(device))[0]
    free = [_proc_kib("/proc/meminfo", "MemAvailable:")]
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit != resource.RLIM_INFINITY and (used := _proc_kib("/proc/self/status", "VmSize:")) is not None:
        free.append(max(0, limit - used))
    known = [f for f in free if f is not None]
    return min(known) if known else None


def _proc_kib(path: str, key: str) -> int | None:
    """Bytes of a `key: N kB` line of a /proc file, or None where there is none."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(needed: int, what: str, device: str = "cpu") -> None:
    """Refuse work whose tensors would not fit, with the estimate, before it starts."""
    free = available_bytes(device)
    if free is not None and needed > free:
        raise OptionError(f"{what} needs about {needed / 2**30:.1f} GiB for its tensors, more than the "
                          f"{free / 2**30:.1f} GiB free on {device}; use a smaller batch or a smaller network")


def set_threads(threads: int | None) -> None:
    """Torch's CPU threads; None leaves torch's default. Results are reproducible per thread count."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise OptionError(f"--threads must be an integer >= 1, got {threads!r}")
    import torch

    torch.set_num_threads(threads)
