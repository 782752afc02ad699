"""MoCo v2's network: an online encoder, its momentum copy and a queue of keys (He et al., CVPR 2020, Alg. 1; Chen et
al., "Improved Baselines with Momentum Contrastive Learning", arXiv:2003.04297: MLP head 2048 -> 128, tau 0.2)."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from .heads import SimCLRProjectionHead
from .queue import FeatureQueue
from .ssl import SSLNetwork

__all__ = ["MoCoNetwork"]


class MoCoNetwork(nn.Module):
    """``forward(x)`` is the online encoder (``{"embedding", "projection"}``); :meth:`keys` the momentum encoder's
    unit projections (no gradient); :meth:`momentum_update` ``theta_k <- m theta_k + (1 - m) theta_q`` (parameters only: the
    momentum encoder keeps its own BatchNorm statistics, as in MoCo's code); ``queue`` a :class:`FeatureQueue` of ``queue_length`` keys, initialised with random
    unit vectors as MoCo's code does.

    Args:
        backbone: ``(B, C, H, W) -> (B, feature_dim)``.
        feature_dim: the backbone's output size.
        hidden_features, out_features: the MLP head (MoCo v2: ``feature_dim`` -> 2048 -> 128; ``None`` hidden means
            ``feature_dim``).
        queue_length: ``K`` (65,536 in MoCo; keep it below the number of training images on small data, or the
            queue holds stale keys of the same images).
        momentum: ``m`` (0.999, MoCo Sec. 3.2).
        seed: seed of the queue's random initialisation.
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        hidden_features: int | None = None,
        out_features: int = 128,
        queue_length: int = 65536,
        momentum: float = 0.999,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}.")
        self.online = SSLNetwork(backbone, SimCLRProjectionHead(feature_dim, hidden_features, out_features))
        self.momentum_encoder = copy.deepcopy(self.online)
        self.momentum_encoder.requires_grad_(False)
        self.queue = FeatureQueue(queue_length, out_features, random_init=True, seed=seed)
        self.momentum = float(momentum)

    @property
    def backbone(self) -> nn.Module:
        return self.online.backbone

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.online(x)

    @torch.no_grad()
    def keys(self, x: torch.Tensor) -> torch.Tensor:
        """Unit projections of ``x`` by the momentum encoder (train-mode BatchNorm, as in MoCo)."""
        self.momentum_encoder.train(self.training)
        return F.normalize(self.momentum_encoder(x)["projection"].float(), dim=1)

    @torch.no_grad()
    def momentum_update(self) -> None:
        for q, k in zip(self.online.parameters(), self.momentum_encoder.parameters()):
            k.mul_(self.momentum).add_(q.detach(), alpha=1.0 - self.momentum)
