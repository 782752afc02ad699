"""MoCo's InfoNCE against a queue of keys (He et al., "Momentum Contrast for Unsupervised Visual Representation
Learning", CVPR 2020, Eq. 1 and Alg. 1; MoCo v2: Chen et al., arXiv:2003.04297), as used by Wolf et al. (2024, App. B,
Eq. 9).

For a query ``q`` (the online encoder's projection of one crop), its key ``k+`` (the momentum encoder's projection of
the other crop) and the queue ``{k_j}`` of ``K`` earlier keys, all L2-normalised::

    l(q) = -log( exp(q . k+ / tau) / (exp(q . k+ / tau) + sum_j exp(q . k_j / tau)) )

``tau = 0.2`` (MoCo v2, Sec. 2; MoCo v1 used 0.07). Keys and queue are constants: the gradient reaches the query only.
The formula is :func:`~medssl_monai.losses.info_nce` with the same queue as negatives of every query.
"""

from __future__ import annotations

import torch

from ._checks import check_pair
from .base import SSLLoss, check_positive
from .radiomics_deep_nce import info_nce

__all__ = ["MoCoLoss"]


class MoCoLoss(SSLLoss):
    """``loss(q, k, queue=...)`` -> scalar: InfoNCE of queries ``q`` (B, D) with positives ``k`` (B, D) and the
    queue (K, D) as negatives shared by every query.

    Args:
        temperature: ``tau`` (> 0); 0.2 (MoCo v2).
        eps: norm floor of the L2 normalisation.

    Keys and queue are detached here, so the loss never trains the momentum encoder.
    """

    def __init__(self, temperature: float = 0.2, eps: float = 1e-8) -> None:
        super().__init__()
        self.temperature = check_positive("temperature", temperature)
        self.eps = eps

    def per_sample(self, q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor | None = None) -> torch.Tensor:
        check_pair("MoCoLoss", q, k)
        if queue is None or queue.ndim != 2 or queue.shape[0] < 1 or queue.shape[1] != q.shape[1]:
            shape = None if queue is None else tuple(queue.shape)
            raise ValueError(f"MoCoLoss needs a queue of (K >= 1, {q.shape[1]}) keys, got {shape}.")
        return info_nce(q, k.detach(), queue.detach().to(q), self.temperature, self.eps, reduction="none")
