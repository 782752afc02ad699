"""Decoupled contrastive loss DCL and its weighted form DCLW (Yeh et al., "Decoupled Contrastive Learning", ECCV 2022).

On L2-normalised embeddings ``z_i^(k)`` (image ``i``, view ``k``, ``u`` the other view), Eq. 6 of the paper removes
the positive pair from the denominator of NT-Xent::

    L_i^(k) = - w_i <z_i^(k), z_i^(u)> / tau + log sum_{l in {1, 2}, j != i} exp(<z_i^(k), z_j^(l)> / tau)
    L = 1 / (2B) sum_{k in {1, 2}} sum_i L_i^(k)

One log-sum-exp over all ``2(B - 1)`` negatives of the anchor (same-view and cross-view), as in the paper's equation
and the authors' code. DCL: ``w_i = 1``. DCLW (Sec. 4, the von Mises-Fisher weighting)::

    w_i = 2 - exp(<z_i^(1), z_i^(2)> / sigma) / E_j[exp(<z_j^(1), z_j^(2)> / sigma)] = 2 - B softmax_i(<z^(1), z^(2)> / sigma)

so the weights average to 1 and hard positives (low similarity) weigh more. The weight is a constant of the
optimisation: it is computed on detached embeddings, so no gradient flows through it (the public code of
Chattopadhyay et al., ICIP 2023, forgets the detach; this implementation does not copy that).

Defaults (Yeh et al., and Chattopadhyay et al.'s setting): ``temperature=0.1``, ``sigma=0.5``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ._checks import check_pair
from .base import SSLLoss, check_positive

__all__ = ["DCLLoss", "dclw_weights"]


def dclw_weights(z_a: torch.Tensor, z_b: torch.Tensor, sigma: float = 0.5) -> torch.Tensor:
    """DCLW positive-pair weights ``w = 2 - B softmax_i(<z_a_i, z_b_i> / sigma)`` (B,), on L2-normalised, detached
    inputs: the result carries no gradient."""
    with torch.no_grad():
        a = F.normalize(z_a.detach(), dim=1)
        b = F.normalize(z_b.detach(), dim=1)
        return 2.0 - a.shape[0] * torch.softmax((a * b).sum(dim=1) / sigma, dim=0)


class DCLLoss(SSLLoss):
    """DCL / DCLW: ``loss(z_a, z_b)`` on two (B, D) views -> scalar, averaged over anchors ``i`` and both views.

    Args:
        temperature: ``tau`` (> 0), 0.1 by default.
        weighted: ``True`` for DCLW (von Mises-Fisher weight on the positive term, detached), ``False`` for DCL.
        sigma: DCLW's weighting temperature (> 0), 0.5 by default; unused by DCL.
        eps: norm floor of the L2 normalisation.
        gather_distributed: negatives from every rank's batch under DDP (:class:`~medssl_monai.losses.SSLLoss`).

    Sample ``i``'s loss (for RE weights) is the mean of its two anchors' terms. A batch of one has no negatives (the log-sum-exp is empty), so ``B >= 2`` is required.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        weighted: bool = False,
        sigma: float = 0.5,
        eps: float = 1e-8,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(gather_distributed)
        self.temperature = check_positive("temperature", temperature)
        self.weighted = bool(weighted)
        self.sigma = check_positive("sigma", sigma)
        self.eps = eps

    def _one_view(self, anchor: torch.Tensor, other: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        """``L_i`` (B,) with anchors from ``anchor`` and positives from ``other`` (both normalised)."""
        cross = anchor @ other.T / self.temperature  # (B, B): diagonal = positives, off-diagonal = cross-view negatives
        same = anchor @ anchor.T / self.temperature  # (B, B): diagonal = the anchor itself, never a candidate
        positive = cross.diagonal()
        if weight is not None:
            positive = positive * weight
        diag = torch.eye(anchor.shape[0], dtype=torch.bool, device=anchor.device)
        negatives = torch.cat([same.masked_fill(diag, float("-inf")), cross.masked_fill(diag, float("-inf"))], dim=1)
        return torch.logsumexp(negatives, dim=1) - positive

    def per_sample(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        check_pair("DCLLoss", z_a, z_b, min_batch=2)
        weight = dclw_weights(z_a, z_b, self.sigma) if self.weighted else None
        a = F.normalize(z_a, dim=1, eps=self.eps)
        b = F.normalize(z_b, dim=1, eps=self.eps)
        return 0.5 * (self._one_view(a, b, weight) + self._one_view(b, a, weight))
