"""Symmetric negative cosine similarity with stop-gradient: SimSiam (Chen & He, CVPR 2021) and 3DSiam.

3DSiam (Li et al., MICCAI 2021), Eq. 1-2::

    S(t, r) = - t / ||t||_2 . r / ||r||_2                                    (1)
    L = 1/2 S(t1, sg(r2)) + 1/2 S(t2, sg(r1)),   t_i = p(E(x_i)), r_i = E(x_i)  (2)

``sg`` is the stop-gradient: the target branch ``r`` of each term is detached, so the encoder receives gradient
only through the predictor branch ``t`` of each term.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .base import SSLLoss

__all__ = ["SimSiamLoss", "negative_cosine_similarity"]


def negative_cosine_similarity(p: torch.Tensor, z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-sample ``-cos(p, z)`` over the last axis (Eq. 1); no stop-gradient here."""
    return -F.cosine_similarity(p, z, dim=-1, eps=eps)


class SimSiamLoss(SSLLoss):
    """Symmetric negative cosine loss of Eq. 2 with stop-gradient on the targets and optional sample weights.

    ``loss(p1, p2, z1, z2, weight=None)`` with predictions ``p_i = p(E(x_i))`` and targets ``z_i = E(x_i)``,
    each (B, D). Returns a scalar in [-1, 1]: -1 when predictions and targets align.

    Weighted reduction (for RE re-weighting, Li et al. Sec. 2): with per-sample weights ``w`` (B,),
    ``L = sum_i w_i l_i / sum_i w_i`` where ``l_i`` is the symmetric per-sample loss. Normalising by the weight sum
    keeps the loss on the unweighted scale (uniform weights give exactly the unweighted mean), so the learning rate
    needs no retuning when RE is switched on; relative weights between samples are what RE changes.
    """

    def __init__(self, eps: float = 1e-8, gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        self.eps = eps

    def per_sample(self, p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        if not (p1.shape == p2.shape == z1.shape == z2.shape) or p1.ndim != 2:
            raise ValueError(
                "SimSiamLoss expects four (B, D) tensors of one shape, got "
                f"{[tuple(t.shape) for t in (p1, p2, z1, z2)]}."
            )
        return 0.5 * negative_cosine_similarity(p1, z2.detach(), self.eps) + 0.5 * negative_cosine_similarity(
            p2, z1.detach(), self.eps
        )
