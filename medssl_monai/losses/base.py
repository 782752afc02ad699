"""The base of the package's losses: per-sample values, one weighted reduction, one temperature check, DDP gather.

Every loss is ``forward(*inputs, weight=None, **targets) -> scalar`` with

    L = sum_i w_i l_i / sum_i w_i  (+ a batch term)

where ``l_i = per_sample(*inputs, **targets)`` is sample ``i``'s loss and ``w`` optional per-sample weights: the RE
re-weighting of Li et al. (MICCAI 2021, Sec. 2) works with every method. Normalising by the weight sum keeps the loss
on the unweighted scale (uniform weights give exactly the plain mean), so the learning rate needs no retuning when RE
is switched on. Terms of batch statistics that do not split into samples (VICReg's variance and covariance) are
:meth:`SSLLoss.batch_term` and are not weighted.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SSLLoss", "check_positive", "gather", "gather_with_grad", "weighted_mean"]


def check_positive(name: str, value: float) -> float:
    """``float(value)``, or ``ValueError`` naming ``name`` unless it is a positive number (temperatures, sigmas)."""
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}.")
    return float(value)


def weighted_mean(per_sample: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """``mean(l)`` or, with per-sample weights ``w`` (B,), ``sum_i w_i l_i / sum_i w_i``."""
    if weight is None:
        return per_sample.mean()
    weight = torch.as_tensor(weight, dtype=per_sample.dtype, device=per_sample.device).reshape(-1)
    if weight.shape[0] != per_sample.shape[0]:
        raise ValueError(f"weight has {weight.shape[0]} entries for a batch of {per_sample.shape[0]}.")
    if bool((weight < 0).any()) or float(weight.sum()) <= 0:
        raise ValueError("sample weights must be non-negative with a positive sum.")
    return (weight * per_sample).sum() / weight.sum()


def _distributed() -> bool:
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums the gradients of every rank's copy and returns this rank's rows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather(parts, x.contiguous())
        ctx.rows, ctx.rank = x.shape[0], torch.distributed.get_rank()
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        torch.distributed.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


@torch.no_grad()
def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (B, ...) of every rank along the batch axis, in rank order, without gradient (MoCo's
    ``concat_all_gather``: keys for the queue, embeddings for a memory bank, so every rank keeps the same state).
    Identity outside a multi-process group."""
    if not _distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (B, ...) of every rank along the batch axis, in rank order (every rank the same ``B``);
    gradients flow back to each rank's own rows, summed over the ranks' losses. Identity outside a multi-process
    group."""
    if not _distributed():
        return x
    return _GatherWithGrad.apply(x)


class SSLLoss(nn.Module):
    """Base class: subclasses implement :meth:`per_sample` (and, for terms of batch statistics, :meth:`batch_term`).

    ``forward(*inputs, weight=None, **targets) = weighted_mean(per_sample(*inputs, **targets), weight)
    + batch_term(*inputs)``.

    Args:
        gather_distributed: under DDP (an initialised process group of more than one rank), all-gather every input,
            target and the weights along the batch axis first (with gradient), so that negatives and batch statistics
            come from the global batch, as SimCLR, DCL and VICReg train on many devices. Each rank then computes the
            same global loss; DDP's gradient averaging gives the gradient of that loss. Off by default (each rank
            contrasts within its own batch); ignored in a single process.
    """

    def __init__(self, gather_distributed: bool = False) -> None:
        super().__init__()
        self.gather_distributed = bool(gather_distributed)

    def per_sample(self, *inputs: torch.Tensor, **targets: torch.Tensor) -> torch.Tensor:
        """The loss of each sample, (B,)."""
        raise NotImplementedError

    def batch_term(self, *inputs: torch.Tensor) -> torch.Tensor | None:
        """A term of batch statistics added after the weighted mean (None: none)."""
        return None

    def forward(self, *inputs: torch.Tensor, weight: torch.Tensor | None = None, **targets: torch.Tensor):
        if self.gather_distributed and _distributed():
            inputs = tuple(gather_with_grad(x) for x in inputs)
            targets = {k: gather_with_grad(torch.as_tensor(v)) for k, v in targets.items()}
            weight = gather_with_grad(torch.as_tensor(weight, device=inputs[0].device)) if weight is not None else None
        loss = weighted_mean(self.per_sample(*inputs, **targets), weight)
        extra = self.batch_term(*inputs)
        return loss if extra is None else loss + extra
