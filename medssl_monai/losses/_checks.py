"""Input checks and the per-sample weighted reduction shared by the losses."""

from __future__ import annotations

import torch

__all__ = ["check_pair", "weighted_mean"]


def check_pair(name: str, z_a: torch.Tensor, z_b: torch.Tensor, min_batch: int = 1) -> None:
    """Raise ``ValueError`` unless ``z_a`` and ``z_b`` are (B, D) tensors of one shape with ``B >= min_batch``."""
    if z_a.ndim != 2 or z_a.shape != z_b.shape:
        raise ValueError(
            f"{name} expects two (B, D) tensors of one shape, got {tuple(z_a.shape)} and {tuple(z_b.shape)}."
        )
    if z_a.shape[0] < min_batch:
        raise ValueError(f"{name} needs a batch of at least {min_batch}, got {z_a.shape[0]}.")


def weighted_mean(per_sample: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """``mean(l)`` or, with per-sample weights ``w`` (B,), ``sum_i w_i l_i / sum_i w_i`` (RE re-weighting).

    Normalising by the weight sum keeps the loss on the unweighted scale: uniform weights give exactly the mean.
    """
    if weight is None:
        return per_sample.mean()
    weight = torch.as_tensor(weight, dtype=per_sample.dtype, device=per_sample.device).reshape(-1)
    if weight.shape[0] != per_sample.shape[0]:
        raise ValueError(f"weight has {weight.shape[0]} entries for a batch of {per_sample.shape[0]}.")
    if bool((weight < 0).any()) or float(weight.sum()) <= 0:
        raise ValueError("sample weights must be non-negative with a positive sum.")
    return (weight * per_sample).sum() / weight.sum()
