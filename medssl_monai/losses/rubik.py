"""Rubik's cube pretext loss (Zhuang et al., MICCAI 2019): cube ordering + cube orientation.

    L = w_p * CE(permutation_logits, permutation) + w_r * BCE(rotation_logits, rotation)

``CE`` is the K-way cross-entropy of the permutation class, ``BCE`` the mean binary cross-entropy over the ``2M``
orientation flags (Zhuang et al., Sec. 2.1-2.2: the orientation target is a ``1 x 2M`` multi-label vector). The paper
sums the two task losses; the weights default to 1 each.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .base import SSLLoss

__all__ = ["RubikCubeLoss"]


class RubikCubeLoss(SSLLoss):
    """``loss(permutation_logits, rotation_logits, permutation=..., rotation=..., weight=None)``.

    Args:
        permutation_weight: w_p.
        rotation_weight: w_r.

    ``weight`` (B,): per-sample weights (RE re-weighting, :class:`~medssl_monai.losses.SSLLoss`).
    """

    def __init__(self, permutation_weight: float = 1.0, rotation_weight: float = 1.0) -> None:
        super().__init__()
        if permutation_weight < 0 or rotation_weight < 0 or permutation_weight + rotation_weight == 0:
            raise ValueError("permutation_weight and rotation_weight must be non-negative, not both zero.")
        self.permutation_weight = permutation_weight
        self.rotation_weight = rotation_weight

    def per_sample(
        self,
        permutation_logits: torch.Tensor,
        rotation_logits: torch.Tensor,
        permutation: torch.Tensor,
        rotation: torch.Tensor,
    ) -> torch.Tensor:
        b = permutation_logits.shape[0]
        if permutation.shape != (b,) or rotation.shape != rotation_logits.shape or rotation_logits.shape[0] != b:
            raise ValueError(
                "RubikCubeLoss: permutation_logits (B, K), rotation_logits (B, 2M), permutation (B,) and rotation "
                f"(B, 2M) expected, got {tuple(permutation_logits.shape)}, {tuple(rotation_logits.shape)}, "
                f"{tuple(permutation.shape)}, {tuple(rotation.shape)}."
            )
        return self.permutation_weight * F.cross_entropy(
            permutation_logits, permutation.long(), reduction="none"
        ) + self.rotation_weight * F.binary_cross_entropy_with_logits(
            rotation_logits, rotation.to(rotation_logits.dtype), reduction="none"
        ).mean(1)
