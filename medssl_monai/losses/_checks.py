"""Input checks shared by the two-view losses."""

from __future__ import annotations

import torch

__all__ = ["check_pair"]


def check_pair(name: str, z_a: torch.Tensor, z_b: torch.Tensor, min_batch: int = 1) -> None:
    """Raise ``ValueError`` unless ``z_a`` and ``z_b`` are (B, D) tensors of one shape with ``B >= min_batch``."""
    if z_a.ndim != 2 or z_a.shape != z_b.shape:
        raise ValueError(
            f"{name} expects two (B, D) tensors of one shape, got {tuple(z_a.shape)} and {tuple(z_b.shape)}."
        )
    if z_a.shape[0] < min_batch:
        raise ValueError(f"{name} needs a batch of at least {min_batch}, got {z_a.shape[0]}.")
