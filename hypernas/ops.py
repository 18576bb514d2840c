"""The op registry: what each node type of an architecture graph means.

An op knows four things, all from its attributes and input shapes: its output shape, the
shapes of its parameters, its cost in multiply-accumulates, and how to run it
functionally on tensors with parameters handed in. A new op is one `@register_op` class.

Shapes are dimension-free so that the same graph compiles for 1-D and 2-D data: a
`Shape` is (channels, stride), where stride is the cumulative downsampling of the input
and `None` marks a pooled feature vector. Every spatial op maps length L to ceil(L / s),
which makes sizes a function of the cumulative stride alone.

Usage:
    op = get_op("conv")
    op.out_shape(op.resolve({"channels": 16, "stride": 2}), [Shape(8, 1)])  # Shape(16, 2)
"""

from __future__ import annotations

import fnmatch
import math
import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F

from hypernas.errors import GraphError, unknown_name

REQUIRED = object()  # marks an attribute without a default
MAX_ATTR = 2**20  # no network has a million channels, or a kernel, stride or dilation that large


class Shape(NamedTuple):
    channels: int
    stride: int | None  # cumulative downsampling; None = pooled vector (N, C)


@dataclass(frozen=True)
class RunContext:
    """How a compiled graph runs: `ndim` spatial dims, BatchNorm in batch-stat mode or not.

    `observe`, when set, is called as `observe(op_name, output)` by every element-wise op
    (relu, gelu, ...). Graphs have no activation modules to hook, and zero-cost proxies
    such as NASWOT need each activation's output; this is the one place they all pass.
    """

    ndim: int
    training: bool = False
    batch_stats: bool = False
    observe: Callable[[str, torch.Tensor], None] | None = None
    momentum: float = 0.1  # of BatchNorm's running statistics; 1.0 sets them to one batch's (`GraphModule.calibrate`)


class Op:
    """Base of every op. Subclasses set `name`, `attrs` (name -> default or REQUIRED), `arity`.

    Rules: `out_shape` raises `GraphError(message)` (the validator adds the node name);
    `forward` is a pure function of its inputs and the parameter dict `p`.
    """

    name: ClassVar[str]
    attrs: ClassVar[dict[str, Any]] = {}
    arity: ClassVar[str] = "one"  # "none" (source), "one", or "many"
    commutative: ClassVar[bool] = True  # input order irrelevant (False for concat)

    def resolve(self, given: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults and reject unknown or missing attributes."""
        unknown = set(given) - set(self.attrs)
        if unknown:
            raise GraphError(f"op {self.name!r} has no attribute(s) {sorted(unknown, key=repr)}; allowed: {sorted(self.attrs)}")
        out = {}
        for key, default in self.attrs.items():
            if key in given:
                value = given[key]
                # Every attribute is an int, or a bool where the default is one (JSON keeps both).
                want_bool = isinstance(default, bool)
                if isinstance(value, bool) != want_bool or not isinstance(value, int):
                    kind = "true or false" if want_bool else "an integer"
                    raise GraphError(f"op {self.name!r} attribute {key!r} must be {kind}, got {reprlib.repr(value)}")
                if abs(value) > MAX_ATTR:  # a typo, and torch would overflow or exhaust memory on it
                    raise GraphError(f"op {self.name!r} attribute {key!r} is beyond +-{MAX_ATTR:,}")
                out[key] = value
            elif default is REQUIRED:
                raise GraphError(f"op {self.name!r} needs attribute {key!r}")
            else:
                out[key] = default
        return out

    def out_shape(self, a: dict, ins: list[Shape]) -> Shape:
        return ins[0]

    def param_shapes(self, a: dict, ins: list[Shape], ndim: int) -> dict[str, tuple[int, ...]]:
        return {}

    def buffer_shapes(self, a: dict, ins: list[Shape]) -> dict[str, tuple[int, ...]]:
        return {}

    def macs(self, a: dict, ins: list[Shape], out: Shape, out_numel: int, ndim: int) -> int:
        """Multiply-accumulates for one sample; `out_numel` is the output's spatial size."""
        return 0

    def forward(self, a: dict, xs: list[torch.Tensor], p: dict[str, torch.Tensor], ctx: RunContext) -> torch.Tensor:
        raise NotImplementedError


OPS: dict[str, Op] = {}


def register_op(cls: type[Op]) -> type[Op]:
    """Class decorator: add one op to the registry under `cls.name`."""
    if cls.name in OPS:
        raise ValueError(f"op {cls.name!r} is registered twice")
    OPS[cls.name] = cls()
    return cls


def get_op(name: str) -> Op:
    """The registered op called `name`; an unknown name raises with the nearest names."""
    try:
        return OPS[name]
    except (KeyError, TypeError):
        raise unknown_name("op", str(name), list(OPS)) from None


def list_ops(pattern: str = "*") -> list[str]:
    """Registered op names matching a shell-style pattern, e.g. `list_ops("*pool")`."""
    return sorted(n for n in OPS if fnmatch.fnmatch(n, pattern))


def _spatial(op: Op, ins: list[Shape]) -> Shape:
    if ins[0].stride is None:
        raise GraphError(f"op {op.name!r} needs a spatial input, got a pooled vector")
    return ins[0]


def _check_window(op: Op, a: dict) -> None:
    """Only windows that map L to ceil(L / stride) keep shapes a function of stride."""
    if a["kernel"] < 1 or a["stride"] < 1:
        raise GraphError(f"op {op.name!r} needs kernel >= 1 and stride >= 1, got {a}")
    if a["kernel"] % 2 == 0 and a["kernel"] != a["stride"]:
        raise GraphError(f"op {op.name!r}: an even kernel ({a['kernel']}) must equal its stride")


# ---- sources and sinks -------------------------------------------------------------------


@register_op
class Input(Op):
    name = "input"
    attrs = {"channels": REQUIRED}
    arity = "none"

    def out_shape(self, a, ins):
        if a["channels"] < 1:
            raise GraphError("input channels must be >= 1")
        return Shape(a["channels"], 1)


@register_op
class Output(Op):
    name = "output"

    def out_shape(self, a, ins):
        if ins[0].stride is not None:
            raise GraphError("output needs a pooled vector of class logits; add global_pool and linear before it")
        return ins[0]

    def forward(self, a, xs, p, ctx):
        return xs[0]


# ---- shape-preserving element-wise ops ----------------------------------------------------


class _Elementwise(Op):
    fn: ClassVar[Any]

    def forward(self, a, xs, p, ctx):
        out = type(self).fn(xs[0])
        if ctx.observe is not None:
            ctx.observe(self.name, out)
        return out


# One line each: the op's name and the function applied to its single input. `zero` is
# NB201's `none`: its output carries no information about the input (see graph.simplify).
ELEMENTWISE = {"identity": lambda x: x, "zero": torch.zeros_like, "relu": F.relu, "relu6": F.relu6,
               "gelu": F.gelu, "silu": F.silu}
for _name, _fn in ELEMENTWISE.items():
    register_op(type(_name.title(), (_Elementwise,), {"name": _name, "fn": staticmethod(_fn)}))


# ---- merges --------------------------------------------------------------------------------


@register_op
class Sum(Op):
    name = "sum"
    arity = "many"

    def out_shape(self, a, ins):
        if len(set(ins)) != 1:
            raise GraphError(f"sum inputs disagree in shape (channels, stride): {sorted(set(ins), key=str)}")
        return ins[0]

    def forward(self, a, xs, p, ctx):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


@register_op
class Concat(Op):
    """Concatenates channels in the order of the edges' `port` attribute."""

    name = "concat"
    arity = "many"
    commutative = False

    def out_shape(self, a, ins):
        if len({s.stride for s in ins}) != 1:
            raise GraphError(f"concat inputs disagree in stride: {[s.stride for s in ins]}")
        return Shape(sum(s.channels for s in ins), ins[0].stride)

    def forward(self, a, xs, p, ctx):
        return torch.cat(xs, dim=1)


# ---- parametric ops ------------------------------------------------------------------------


@register_op
class Conv(Op):
    """Convolution with 'same'-style padding; 1-D or 2-D by the data. No bias by default (BN follows)."""

    name = "conv"
    attrs = {"channels": REQUIRED, "kernel": 3, "stride": 1, "dilation": 1, "groups": 1, "bias": False}

    def out_shape(self, a, ins):
        s = _spatial(self, ins)
        if a["kernel"] % 2 == 0 or a["kernel"] < 1:
            raise GraphError(f"conv kernel must be odd and positive, got {a['kernel']}")
        if a["stride"] < 1 or a["dilation"] < 1 or a["channels"] < 1:
            raise GraphError(f"conv needs channels, stride and dilation >= 1, got {a}")
        g = a["groups"]
        if g < 1 or s.channels % g or a["channels"] % g:
            raise GraphError(f"conv groups={g} must divide input channels {s.channels} and output channels {a['channels']}")
        return Shape(a["channels"], s.stride * a["stride"])

    def param_shapes(self, a, ins, ndim):
        shapes = {"weight": (a["channels"], ins[0].channels // a["groups"]) + (a["kernel"],) * ndim}
        if a["bias"]:
            shapes["bias"] = (a["channels"],)
        return shapes

    def macs(self, a, ins, out, out_numel, ndim):
        return out.channels * (ins[0].channels // a["groups"]) * a["kernel"] ** ndim * out_numel

    def forward(self, a, xs, p, ctx):
        conv = F.conv1d if ctx.ndim == 1 else F.conv2d
        pad = a["dilation"] * (a["kernel"] - 1) // 2
        return conv(xs[0], p["weight"], p.get("bias"), a["stride"], pad, a["dilation"], a["groups"])


@register_op
class BatchNorm(Op):
    """BatchNorm over channels, for spatial maps and pooled vectors alike."""

    name = "bn"

    def param_shapes(self, a, ins, ndim):
        return {"weight": (ins[0].channels,), "bias": (ins[0].channels,)}

    def buffer_shapes(self, a, ins):
        return {"running_mean": (ins[0].channels,), "running_var": (ins[0].channels,)}

    def forward(self, a, xs, p, ctx):
        # Batch statistics whenever training, whenever asked (hypernetwork scoring), or when
        # the parameters came without running statistics (an external weight dict).
        use_batch = ctx.training or ctx.batch_stats or "running_mean" not in p
        keep_running = ctx.training and not ctx.batch_stats
        return F.batch_norm(
            xs[0],
            p.get("running_mean") if keep_running or not use_batch else None,
            p.get("running_var") if keep_running or not use_batch else None,
            p["weight"],
            p["bias"],
            training=use_batch,
            momentum=ctx.momentum,
        )


@register_op
class Linear(Op):
    name = "linear"
    attrs = {"channels": REQUIRED, "bias": True}

    def out_shape(self, a, ins):
        if ins[0].stride is not None:
            raise GraphError("linear needs a pooled vector; add global_pool before it")
        if a["channels"] < 1:
            raise GraphError("linear channels must be >= 1")
        return Shape(a["channels"], None)

    def param_shapes(self, a, ins, ndim):
        shapes = {"weight": (a["channels"], ins[0].channels)}
        if a["bias"]:
            shapes["bias"] = (a["channels"],)
        return shapes

    def macs(self, a, ins, out, out_numel, ndim):
        return out.channels * ins[0].channels

    def forward(self, a, xs, p, ctx):
        return F.linear(xs[0], p["weight"], p.get("bias"))


# ---- pooling -------------------------------------------------------------------------------


class _Pool(Op):
    attrs = {"kernel": 3, "stride": 1}
    fns: ClassVar[tuple[Any, Any]]

    def out_shape(self, a, ins):
        s = _spatial(self, ins)
        _check_window(self, a)
        return Shape(s.channels, s.stride * a["stride"])

    def forward(self, a, xs, p, ctx):
        k = a["kernel"]
        fn = type(self).fns[ctx.ndim - 1]
        # Odd kernels pad to 'same'; an even kernel equals its stride, takes no padding, and
        # ceil_mode keeps ceil(L/s) (padding (k-1)//2 would add a window, e.g. k=4, L=4 -> 2).
        return fn(xs[0], k, a["stride"], (k - 1) // 2 if k % 2 else 0, ceil_mode=(k % 2 == 0), **self.extra)


@register_op
class AvgPool(_Pool):
    name = "avg_pool"
    fns = (F.avg_pool1d, F.avg_pool2d)
    extra = {"count_include_pad": False}  # NB201's convention: padding does not dilute the mean


@register_op
class MaxPool(_Pool):
    name = "max_pool"
    fns = (F.max_pool1d, F.max_pool2d)
    extra: dict = {}


@register_op
class GlobalPool(Op):
    """Global average pool: a spatial map becomes a feature vector (N, C)."""

    name = "global_pool"

    def out_shape(self, a, ins):
        s = _spatial(self, ins)
        return Shape(s.channels, None)

    def forward(self, a, xs, p, ctx):
        return xs[0].flatten(2).mean(dim=2)


def spatial_numel(input_size: tuple[int, ...], stride: int | None) -> int:
    """Number of spatial positions at a cumulative stride (1 for a pooled vector)."""
    if stride is None:
        return 1
    return math.prod(math.ceil(n / stride) for n in input_size)
