"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al., ICML 2020, Sec. 2.1, Alg. 1).

With ``2B`` L2-normalised projections (two views of ``B`` images), ``s_ab = z_a . z_b`` the cosine similarity and
``(i, j)`` a positive pair (the two views of one image)::

    l(i, j) = -log( exp(s_ij / tau) / sum_{k = 1..2B, k != i} exp(s_ik / tau) )
    L = 1 / (2B) sum_{k = 1..B} [ l(2k - 1, 2k) + l(2k, 2k - 1) ]

Each anchor is classified among its ``2B - 1`` candidates (one positive, ``2(B - 1)`` negatives); the loss is the mean
over all ``2B`` anchors. Chattopadhyay et al. (ICIP 2023, Eq. 1) write the same loss as a sum; the mean differs only
by the constant ``2B`` and keeps the learning rate independent of the batch size. It equals
``monai.losses.ContrastiveLoss(temperature)`` (which also averages over ``2B`` anchors).

Temperature: Chattopadhyay et al. do not state it; their public code (``SimCLRLoss(tau=0.5)``) uses 0.5, which is
also SimCLR's setting for CIFAR-10 (Appendix B.9, small images and small batches, the regime of this project) and
MONAI's default. SimCLR's ImageNet runs use 0.1 (Table 5, large batches). Default here: ``temperature=0.5``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ._checks import check_pair
from .base import SSLLoss, check_positive

__all__ = ["NTXentLoss"]


class NTXentLoss(SSLLoss):
    """NT-Xent of SimCLR: ``loss(z_a, z_b)`` on two (B, D) views -> scalar, averaged over the ``2B`` anchors.

    Inputs are L2-normalised inside (any scale works). Row ``i`` of ``z_a`` and row ``i`` of ``z_b`` are the positive
    pair; every other row of either view is a negative.

    Args:
        temperature: ``tau`` (> 0); 0.5 by default (see the module docstring for the choice).
        eps: norm floor of the L2 normalisation.
        gather_distributed: negatives from every rank's batch under DDP (:class:`~medssl_monai.losses.SSLLoss`).

    Sample ``i``'s loss (for RE weights) is the mean of its two anchors' terms.
    """

    def __init__(self, temperature: float = 0.5, eps: float = 1e-8, gather_distributed: bool = False) -> None:
        super().__init__(gather_distributed)
        self.temperature = check_positive("temperature", temperature)
        self.eps = eps

    def per_sample(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        check_pair("NTXentLoss", z_a, z_b)
        batch = z_a.shape[0]
        z = F.normalize(torch.cat([z_a, z_b], dim=0), dim=1, eps=self.eps)
        logits = z @ z.T / self.temperature
        self_mask = torch.eye(2 * batch, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))  # an anchor is not its own candidate
        idx = torch.arange(batch, device=z.device)
        positives = torch.cat([idx + batch, idx])  # anchor i of view a <-> row i + B (view b), and back
        anchors = F.cross_entropy(logits, positives, reduction="none")
        return 0.5 * (anchors[:batch] + anchors[batch:])
