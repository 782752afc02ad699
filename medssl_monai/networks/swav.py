"""SwAV's network: backbone -> projection MLP -> L2 normalisation -> prototypes (Caron et al., NeurIPS 2020, Sec. 3.1 and
App. A.1; Wolf et al. 2024, App. A, Table 8: MLP 2048, output 128, 500 prototypes)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .heads import MLPHead
from .queue import FeatureQueue
from .ssl import SSLNetwork

__all__ = ["SwAVNetwork", "SwAVProjectionHead", "SwAVPrototypes"]


class SwAVProjectionHead(MLPHead):
    """``Linear-BN-ReLU-Linear`` then L2 normalisation (SwAV's ``projection_head`` and ``F.normalize``): 2048 -> 2048
    -> 128 on a ResNet-50 (Wolf et al., Table 8: "Size MLP 2048, Output Dimension 128")."""

    def __init__(self, in_features: int = 2048, hidden_features: int = 2048, out_features: int = 128) -> None:
        super().__init__([(in_features, hidden_features, True, True), (hidden_features, out_features, False, False)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(super().forward(x), dim=1)


class SwAVPrototypes(nn.Module):
    """``K`` prototype vectors (a bias-free linear layer): scores ``z C^T`` of unit projections ``z``.

    :meth:`normalize_` rescales the prototypes to unit norm (SwAV does this before every iteration, so scores are
    cosines). While :attr:`frozen` is true the scores use a detached copy of the weights, so the prototypes receive no
    gradient (SwAV freezes them during the first epoch; Wolf et al., Table 8: "Freeze Prototypes 313" iterations).
    """

    def __init__(self, in_features: int = 128, num_prototypes: int = 500) -> None:
        super().__init__()
        if num_prototypes < 2:
            raise ValueError(f"num_prototypes must be at least 2, got {num_prototypes}.")
        self.weight = nn.Parameter(torch.empty(num_prototypes, in_features))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Linear's initialisation
        self.frozen = False

    @torch.no_grad()
    def normalize_(self) -> None:
        self.weight.copy_(F.normalize(self.weight, dim=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        weight = self.weight.detach() if self.frozen else self.weight
        return z @ weight.T


class SwAVNetwork(SSLNetwork):
    """:class:`SSLNetwork` (``embedding``, ``projection`` = unit ``z``, ``prediction`` = prototype scores) with the
    queue of past projections of the assignment crops (:class:`FeatureQueue`, empty at the start; ``queue_length=0``:
    none).

    Args:
        backbone: ``(B, C, H, W) -> (B, feature_dim)``.
        feature_dim: the backbone's output size.
        hidden_features, out_features: the projection MLP (2048, 128).
        num_prototypes: ``K`` (500: Wolf et al., Table 8; Caron et al. use 3,000 on ImageNet).
        queue_length: entries per assignment crop (0: no queue; Caron et al. use 3,840 for batches of 256 or less).
        num_assign_crops: crops whose codes are targets (2).
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        hidden_features: int = 2048,
        out_features: int = 128,
        num_prototypes: int = 500,
        queue_length: int = 0,
        num_assign_crops: int = 2,
    ) -> None:
        super().__init__(
            backbone,
            SwAVProjectionHead(feature_dim, hidden_features, out_features),
            SwAVPrototypes(out_features, num_prototypes),
        )
        self.queue = FeatureQueue(queue_length, out_features, num_assign_crops) if queue_length > 0 else None
