"""Zero-cost proxies: score an architecture at initialisation, without training it.

Each proxy builds the network with weights drawn from `seed` (the compiled module's own
Kaiming initialisation), looks at it once, and returns a float where higher means
"predicted better". Definitions follow the papers and the reference code of Abdelfattah
et al. 2021 ("Zero-Cost Proxies for Lightweight NAS"):

- `synflow` (Tanaka et al. 2020): data-free. Weights replaced by their absolute values,
  float64, one all-ones input of the data's shape; R = sum of the logits; score =
  sum of w * dR/dw. BatchNorm is made the exact identity (see `synflow`), as the reference
  code evaluates synflow on the network built without BatchNorm.
- `jacob_cov` (Mellor et al. 2021, v1): the gradient of the summed logits with respect to
  each input of a minibatch, the correlation matrix of those per-sample Jacobians, and
  score = -sum(log(l + k) + 1 / (l + k)) over its eigenvalues l, k = 1e-5.
- `naswot` (Mellor et al. 2021, v2): binary activation codes c (unit active or not) over a
  minibatch; K = sum over activations of c c^T + (1 - c)(1 - c)^T; score = log|det K|.
- `snip` (Lee et al. 2019): sum of |w * dL/dw|, L the cross-entropy on a minibatch.
- `grad_norm`: sum over weight tensors of ||dL/dw||_2.
- `one_epoch`: not zero-cost; one epoch of the normal training protocol on the train split
  without the validation slice, scored by accuracy on that slice (never the test set).

"Weights" are those of conv and linear layers, the prunable parameters the reference code
sums over; biases and BatchNorm's affine parameters are left out. The data proxies run
BatchNorm on batch statistics, as a freshly built torch network in training mode does in
the reference code (running statistics are not updated).

A degenerate architecture (output cut off from the input, `validate(G).degenerate`) never
raises: synflow, snip and grad_norm give their natural value 0; jacob_cov and naswot,
undefined there, give their floor (`jacob_cov_floor`, and 0 for naswot, see each).

Usage:
    x, y = data.x_val[:64], data.y_val[:64]
    synflow(G, x, seed=0); jacob_cov(G, x); naswot(G, x); snip(G, x, y); grad_norm(G, x, y)
    one_epoch(G, data, seed=0)
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F

from hypernas.compile import GraphModule
from hypernas.data import Dataset
from hypernas.errors import OptionError
from hypernas.ops import RunContext
from hypernas.train import TrainConfig, train

Arch = nx.DiGraph | GraphModule
WEIGHTED_OPS = ("conv", "linear")  # whose `weight` the proxies sum over
ACTIVATIONS = ("relu", "relu6", "gelu", "silu")  # naswot's units: active iff output > 0 iff input > 0
JACOB_K = 1e-5  # Mellor's k
BN_EPS = 1e-5  # F.batch_norm's default eps, which the BatchNorm op uses


def init_model(arch: Arch, ndim: int, seed: int | None = 0) -> GraphModule:
    """A fresh module for `arch`, weights initialised from `seed`, leaving the global RNG alone.

    A `GraphModule` is copied; its weights are re-initialised from `seed` (BatchNorm
    statistics reset too), or, with `seed=None`, kept as they are.
    Usage: `model = init_model(G, ndim=1, seed=0)`
    """
    if isinstance(arch, GraphModule):
        model = copy.deepcopy(arch)
        if seed is None:
            return model
    elif seed is None:
        raise OptionError("a graph has no weights of its own: give a seed")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(arch, GraphModule):
            model.reset_parameters()
            for name, buf in model.named_buffers():
                buf.fill_(1.0 if name.endswith("running_var") else 0.0)
        else:
            model = GraphModule(arch, ndim)
    return model


def _tensors(model: GraphModule) -> dict[str, torch.Tensor]:
    """The module's parameters and buffers under the flat names `Program.run` takes."""
    return {name.removeprefix("nodes."): t for name, t in itertools.chain(model.named_parameters(), model.named_buffers())}


def _weights(model: GraphModule) -> list[torch.Tensor]:
    """Conv and linear weights, in execution order."""
    keys = [key for key, op, *_ in model.program.steps if op.name in WEIGHTED_OPS]
    return [model.nodes[k].weight for k in keys]


def _op_of(model: GraphModule) -> dict[str, str]:
    return {key: op.name for key, op, *_ in model.program.steps}


def _grads(out: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """d out / d params; zeros for parameters the output does not depend on (a dead branch)."""
    if not out.requires_grad:
        return [torch.zeros_like(p) for p in params]
    grads = torch.autograd.grad(out, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _batch_stats_run(model: GraphModule, x: torch.Tensor, observe: Callable | None = None) -> torch.Tensor:
    """Logits with BatchNorm on batch statistics, running statistics untouched."""
    ctx = RunContext(model.ndim, training=False, batch_stats=True, observe=observe)
    return model.program.run(x, _tensors(model), ctx)


def synflow(arch: Arch, x: torch.Tensor, seed: int | None = 0) -> float:
    """SynFlow: sum of w * dR/dw over |weights|, R = sum of the logits for an all-ones input.

    Only the shape of `x` is used (one sample of shape x.shape[1:]). BatchNorm: the
    reference code runs synflow on the network built without BatchNorm; here every
    BatchNorm runs in eval mode with mean 0, variance 1 - eps, weight 1 and bias 0, which
    is exactly the identity, so the result equals that of the BN-free network.
    Usage: `synflow(G, data.x_val[:1], seed=0)`
    """
    model = init_model(arch, x.dim() - 2, seed).double()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    tensors = _tensors(model)
    for key, op in _op_of(model).items():
        if op == "bn":
            c = tensors[f"{key}.weight"].shape[0]
            one = torch.ones(c, dtype=torch.float64, device=x.device)
            tensors.update({f"{key}.weight": one, f"{key}.bias": 0 * one,
                            f"{key}.running_mean": 0 * one, f"{key}.running_var": (1 - BN_EPS) * one})
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    out = model.program.run(ones, tensors, RunContext(model.ndim, training=False, batch_stats=False))
    weights = _weights(model)
    grads = _grads(out.sum(), weights)
    with torch.no_grad():
        return float(sum((w * g).sum() for w, g in zip(weights, grads)))


def jacob_cov_floor(n: int, k: float = JACOB_K) -> float:
    """The lowest `jacob_cov` of `n` samples: all Jacobians perfectly correlated (eigenvalues n, 0, ..., 0)."""
    return -((n - 1) * (math.log(k) + 1 / k) + math.log(n + k) + 1 / (n + k))


def jacob_cov(arch: Arch, x: torch.Tensor, seed: int | None = 0) -> float:
    """Mellor et al. v1: -sum(log(l + k) + 1/(l + k)) over the eigenvalues of the Jacobians' correlation.

    The per-sample Jacobian is d(sum of logits)/d(input), flattened. Undefined correlations
    (a sample whose Jacobian is constant, e.g. all zero in a degenerate network) give
    `jacob_cov_floor(len(x))`. With more samples than input values the matrix is rank
    deficient for every network; that adds the same constant to every score.
    Usage: `jacob_cov(G, data.x_val[:64], seed=0)`
    """
    model = init_model(arch, x.dim() - 2, seed)
    x = x.detach().clone().requires_grad_(True)
    out = _batch_stats_run(model, x)
    (jac,) = _grads(out.sum(), [x])
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant row gives NaN, handled below
        corr = np.corrcoef(jac.reshape(len(x), -1).double().cpu().numpy())
    if not np.isfinite(corr).all():
        return jacob_cov_floor(len(x))
    # eigvalsh: the matrix is symmetric; clip round-off below 0 (PSD by construction).
    lam = np.clip(np.linalg.eigvalsh(corr), 0.0, None)
    return float(-np.sum(np.log(lam + JACOB_K) + 1.0 / (lam + JACOB_K)))


def naswot(arch: Arch, x: torch.Tensor, seed: int | None = 0) -> float:
    """Mellor et al. v2 (NASWOT): log|det K| of the binary activation codes' kernel.

    c is 1 where an activation's output is positive (relu, relu6, gelu, silu: exactly
    where its input is). As in Mellor's code, which counts a ReLU only after a backward
    pass has reached it, activations that cannot affect the output (feeding only `zero`
    ops) are left out. K has integer entries, so a non-singular K has |det K| >= 1 and
    log|det K| >= 0: a singular K (e.g. a degenerate network, whose codes are constant)
    gets the floor 0.
    Usage: `naswot(G, data.x_val[:64], seed=0)`
    """
    model = init_model(arch, x.dim() - 2, seed)
    codes: list[torch.Tensor] = []
    reached: list[bool] = []

    def observe(op: str, out: torch.Tensor) -> None:
        if op not in ACTIVATIONS:
            return
        i = len(codes)
        codes.append((out.detach() > 0).flatten(1).double())
        reached.append(False)
        if out.requires_grad:
            out.register_hook(lambda g: reached.__setitem__(i, True))

    x = x.detach().clone().requires_grad_(True)  # so that an activation right after the input is reached too
    out = _batch_stats_run(model, x, observe)
    if out.requires_grad:
        out.sum().backward()
    live = [c for c, r in zip(codes, reached) if r]
    if not live:
        return 0.0
    c = torch.cat(live, dim=1)
    K = c @ c.T + (1 - c) @ (1 - c).T
    sign, logdet = torch.linalg.slogdet(K)
    if sign <= 0 or not torch.isfinite(logdet) or logdet < 0:  # singular up to round-off
        return 0.0
    return float(logdet)


def _loss_grads(arch: Arch, x: torch.Tensor, y: torch.Tensor, seed: int | None) -> tuple[list, list]:
    model = init_model(arch, x.dim() - 2, seed)
    weights = _weights(model)
    loss = F.cross_entropy(_batch_stats_run(model, x), y)
    return weights, _grads(loss, weights)


def snip(arch: Arch, x: torch.Tensor, y: torch.Tensor, seed: int | None = 0) -> float:
    """SNIP: sum of |w * dL/dw| over conv and linear weights, L the cross-entropy on (x, y).

    Usage: `snip(G, data.x_val[:64], data.y_val[:64], seed=0)`
    """
    weights, grads = _loss_grads(arch, x, y, seed)
    with torch.no_grad():
        return float(sum((w * g).abs().sum() for w, g in zip(weights, grads)))


def grad_norm(arch: Arch, x: torch.Tensor, y: torch.Tensor, seed: int | None = 0) -> float:
    """Sum over conv and linear weight tensors of the L2 norm of dL/dw, L the cross-entropy on (x, y).

    Usage: `grad_norm(G, data.x_val[:64], data.y_val[:64], seed=0)`
    """
    _, grads = _loss_grads(arch, x, y, seed)
    return float(sum(g.norm() for g in grads))


def one_epoch(G: nx.DiGraph, data: Dataset, seed: int = 0, config: TrainConfig = TrainConfig(epochs=1)) -> float:
    """Validation accuracy after one epoch of the normal protocol, trained without the validation slice.

    Takes a graph (training builds its own module). A degenerate network trains to a
    constant prediction: its natural value is the share of the most frequent class.
    Usage: `one_epoch(G, load_dataset("mnist1d"), seed=0)`
    """
    return train(G, data, config, seed=seed, progress=False, holdout_val=True).test_accuracy


# Uniform signatures (arch, x, y, seed) for running the proxies side by side.
PROXIES: dict[str, Callable[[Arch, torch.Tensor, torch.Tensor, int], float]] = {
    "synflow": lambda arch, x, y, seed: synflow(arch, x, seed),
    "jacob_cov": lambda arch, x, y, seed: jacob_cov(arch, x, seed),
    "naswot": lambda arch, x, y, seed: naswot(arch, x, seed),
    "snip": snip,
    "grad_norm": grad_norm,
}
