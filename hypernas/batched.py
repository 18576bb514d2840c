"""Many programs run together on one input: the nodes that share an op, attributes and input
shapes across the programs run as one batched call, level by level in topological order.

A scoring batch runs dozens of small networks on the same data. Run one by one, each node is
its own kernel launch and its own Python call; run together, a level of 64 NB201 cells is a
handful of calls. Which is faster depends on the machine (`together_is_faster`).

Values of a group travel channel-stacked: the members' tensors side by side along the channel
axis, (N, G*C, *spatial) or (N, G*C) for pooled vectors, so that per-channel ops (BatchNorm on
batch statistics, pooling, element-wise ops) need no change at all, a convolution becomes one
grouped convolution, and a linear layer one `einsum`. An op this module does not know runs
member by member, so a user's registered op still works.

Usage:
    logits = run_together([Program(info, 1) for info in infos], x, weights, RunContext(1, batch_stats=True))
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from hypernas.compile import Program
from hypernas.errors import OptionError
from hypernas.ops import RunContext, spatial_numel

EXECUTIONS = ("auto", "each", "together")
PER_CHANNEL = {"identity", "zero", "relu", "relu6", "gelu", "silu", "avg_pool", "max_pool", "output"}


def can_run_together(ctx: RunContext) -> bool:
    """Whether `ctx` allows it: BatchNorm must not update running statistics (it would update a
    concatenation, not each network's), and no observer may want each network's activations."""
    return ctx.observe is None and (ctx.batch_stats or not ctx.training)


def run_programs(programs: Sequence[Program], x: torch.Tensor, params: Sequence[Mapping[str, torch.Tensor]],
                 ctx: RunContext, execution: str = "auto") -> list[torch.Tensor]:
    """Each program's output on `x`: one by one (`each`), together (`together`), or (`auto`)
    together only where that was measured faster (`python -m benchmarks.speed --execution each,together`).

    Usage: logits = run_programs(programs, x, weights, ctx)"""
    if execution not in EXECUTIONS:
        raise OptionError(f"execution must be one of {', '.join(EXECUTIONS)}, not {execution!r}")
    if execution == "auto":
        execution = "together" if together_is_faster(x) else "each"
    if execution == "each" or len(programs) < 2:
        return [p.run(x, w, ctx) for p, w in zip(programs, params)]
    out: list[torch.Tensor] = []
    for chunk in _chunks(programs, x):  # together, but never more at once than memory allows
        out += run_together([programs[j] for j in chunk], x, [params[j] for j in chunk], ctx)
    return out


TOGETHER_BYTES = 2**30  # the widest values of the networks run at once, summed, at most this (fixed: chunks
# that followed free memory would make the scores depend on it, in their last bits)


def _chunks(programs: Sequence[Program], x: torch.Tensor) -> list[list[int]]:
    """Consecutive runs of programs whose widest values, side by side, fit TOGETHER_BYTES. One
    by one a network holds a few values at a time; together a level holds one per member."""
    chunks: list[list[int]] = [[]]
    used = 0
    for j, program in enumerate(programs):
        widest = max(s.channels * spatial_numel(tuple(x.shape[2:]), s.stride) for s in program.out_shapes)
        need = 3 * widest * x.shape[0] * x.element_size()  # a level's inputs, outputs and the stacked copy
        if chunks[-1] and used + need > TOGETHER_BYTES:
            chunks.append([])
            used = 0
        chunks[-1].append(j)
        used += need
    return chunks


def together_is_faster(x: torch.Tensor) -> bool:
    """Nowhere yet. On a CPU, one by one was faster on every workload measured (NB201 and macro
    networks on MNIST-1D, and on 32x32x3 images: BENCHMARKS.md); the grouped convolutions cost
    more than the calls they save. On a GPU, where the calls set the pace, it is unmeasured:
    `scripts/gpu_check.sh` times both ways, and this rule should follow what it finds."""
    return False


def run_together(programs: Sequence[Program], x: torch.Tensor, params: Sequence[Mapping[str, torch.Tensor]],
                 ctx: RunContext) -> list[torch.Tensor]:
    """Each program's output on `x` with its own parameters, as `Program.run` gives it (equal
    within float tolerance: a grouped convolution sums in another order)."""
    if not can_run_together(ctx):
        return [p.run(x, w, ctx) for p, w in zip(programs, params)]
    levels: list[list[tuple[int, int]]] = []  # per level: (program, step) pairs
    done_after: list[list[tuple[int, int]]] = []  # per level: the values no later level reads
    for j, program in enumerate(programs):
        depth: list[int] = []
        last_read: dict[int, int] = {}
        for i, (_key, _op, _attrs, inputs, _names) in enumerate(program.steps):
            depth.append(1 + max((depth[k] for k in inputs), default=-1))
            if depth[i] == len(levels):
                levels.append([])
                done_after.append([])
            levels[depth[i]].append((j, i))
            for k in inputs:
                last_read[k] = max(last_read.get(k, 0), depth[i])
        for k, level in last_read.items():
            done_after[level].append((j, k))
    values: dict[tuple[int, int], torch.Tensor] = {}
    for level, done in zip(levels, done_after):
        groups: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
        for j, i in level:
            _key, op, attrs, inputs, _names = programs[j].steps[i]
            shapes = tuple(tuple(values[j, k].shape[1:]) for k in inputs)
            groups[op.name, tuple(sorted(attrs.items())), shapes].append((j, i))
        for members in groups.values():
            _run_group(programs, members, values, x, params, ctx)
        for m in done:  # let go, as Program.run does: a deep network holds a few activations at a time
            del values[m]
    return [values[j, len(p.steps) - 1] for j, p in enumerate(programs)]


def _stacked(members: list[tuple[int, int]], slot: int, programs, values) -> torch.Tensor:
    """Input `slot` of every member, channel-stacked: (N, G*C, *spatial)."""
    parts = [values[j, programs[j].steps[i][3][slot]] for j, i in members]
    return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


def _weights(members, programs, params, name: str) -> torch.Tensor | None:
    keys = [f"{programs[j].steps[i][0]}.{name}" for j, i in members]
    if keys[0] not in params[members[0][0]]:
        return None
    return torch.cat([params[j][k] for (j, _), k in zip(members, keys)])


def _run_group(programs, members, values, x, params, ctx: RunContext) -> None:
    j0, i0 = members[0]
    _key, op, attrs, inputs, _names = programs[j0].steps[i0]
    g = len(members)
    if not inputs:  # the input node
        for m in members:
            values[m] = x
        return
    if g == 1 or op.name not in BATCHED and op.name not in PER_CHANNEL:
        for j, i in members:  # one by one, as Program.run would
            key, op_, a, ins, names = programs[j].steps[i]
            p = {n: params[j][f"{key}.{n}"] for n in names if f"{key}.{n}" in params[j]}
            values[j, i] = op_.forward(a, [values[j, k] for k in ins], p, ctx)
        return
    xs = [_stacked(members, s, programs, values) for s in range(len(inputs))]
    if op.name in PER_CHANNEL:
        out = op.forward(attrs, xs, {}, ctx)
    else:
        out = BATCHED[op.name](attrs, xs, lambda name: _weights(members, programs, params, name), g, ctx)
    for m, part in zip(members, out.chunk(g, dim=1)):
        values[m] = part


# ---- the ops whose batched form differs from their own forward --------------------------------
# Each takes (attrs, channel-stacked inputs, weight(name) -> the members' tensors concatenated
# along the first axis, members, ctx) and returns the channel-stacked output.


def _conv(a, xs, weight, g, ctx):
    conv = F.conv1d if ctx.ndim == 1 else F.conv2d
    pad = a["dilation"] * (a["kernel"] - 1) // 2
    return conv(xs[0], weight("weight"), weight("bias"), a["stride"], pad, a["dilation"], a["groups"] * g)


def _bn(a, xs, weight, g, ctx):
    # can_run_together admits batch statistics, or running ones without an update
    running = weight("running_mean")
    use_batch = ctx.training or ctx.batch_stats or running is None
    return F.batch_norm(xs[0], None if use_batch else running, None if use_batch else weight("running_var"),
                        weight("weight"), weight("bias"), training=use_batch, momentum=ctx.momentum)


def _linear(a, xs, weight, g, ctx):
    n = xs[0].shape[0]
    w = weight("weight")  # (G*out, in)
    out = torch.einsum("ngi,goi->ngo", xs[0].view(n, g, -1), w.view(g, -1, w.shape[1]))
    bias = weight("bias")
    return (out if bias is None else out + bias.view(g, -1)).reshape(n, -1)


def _sum(a, xs, weight, g, ctx):
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def _concat(a, xs, weight, g, ctx):
    # member-major: each member's inputs side by side, then the next member's
    n = xs[0].shape[0]
    parts = [x.view(n, g, -1, *x.shape[2:]) for x in xs]
    return torch.cat(parts, dim=2).reshape(n, -1, *xs[0].shape[2:])


def _global_pool(a, xs, weight, g, ctx):
    return xs[0].flatten(2).mean(dim=2)


BATCHED = {"conv": _conv, "bn": _bn, "linear": _linear, "sum": _sum, "concat": _concat, "global_pool": _global_pool}
