"""VICReg: variance-invariance-covariance regularisation (Bardes et al., ICLR 2022, Sec. 3.1-3.2, Eq. 1-6).

For two batches of expander outputs ``Z, Z'`` of shape (N, D)::

    s(Z, Z')  = 1 / (N D) sum_i ||z_i - z'_i||^2                                     invariance (MSE)      (Eq. 5)
    v(Z)      = 1 / D sum_j max(0, 1 - sqrt(Var(z^j) + eps))                        variance (hinge, 1)   (Eq. 1-2)
    C(Z)      = 1 / (N - 1) sum_i (z_i - zbar)(z_i - zbar)^T
    c(Z)      = 1 / D sum_{i != j} C(Z)_{ij}^2                                      covariance            (Eq. 3-4)
    L = lambda s(Z, Z') + mu [v(Z) + v(Z')] / 2 + nu [c(Z) + c(Z')]                                        (Eq. 6)

``Var`` is the unbiased variance (divided by ``N - 1``). The variance term is averaged over the two branches (the
authors' code, ``std_loss = mean(relu(1 - std_x)) / 2 + mean(relu(1 - std_y)) / 2``); the public code of Chattopadhyay
et al. (ICIP 2023) sums it instead, doubling its weight, which is not copied here. The covariance term is summed over
the two branches, as in the paper and the authors' code.

Defaults (the paper's, also Chattopadhyay et al.'s): ``lambda = 25`` (inv_weight), ``mu = 25`` (var_weight),
``nu = 1`` (cov_weight), ``eps = 1e-4``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ._checks import check_pair
from .base import SSLLoss

__all__ = ["VICRegLoss", "covariance_loss", "invariance_loss", "variance_loss"]


def invariance_loss(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """``s(Z, Z')``: mean squared error over all ``N D`` entries."""
    return F.mse_loss(z_a, z_b)


def variance_loss(z: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """``v(Z)`` of one branch: mean over dimensions of ``relu(1 - sqrt(Var + eps))``, unbiased variance over the
    batch."""
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(1.0 - std).mean()


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """``c(Z)`` of one branch: sum of squared off-diagonal entries of the covariance (divided by ``N - 1``), over
    ``D``."""
    n, d = z.shape
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / (n - 1)
    off_diagonal = cov - torch.diag_embed(cov.diagonal())
    return off_diagonal.square().sum() / d


class VICRegLoss(SSLLoss):
    """VICReg loss: ``loss(z_a, z_b)`` on two (N, D) branches -> scalar; :meth:`terms` gives the three unweighted terms.

    Args:
        inv_weight: ``lambda``, weight of the invariance term (25).
        var_weight: ``mu``, weight of the variance term, which is averaged over the two branches (25).
        cov_weight: ``nu``, weight of the covariance term, which is summed over the two branches (1).
        eps: added to the variance before the square root (1e-4).
        gather_distributed: variance and covariance over every rank's batch under DDP, as VICReg trains
            (:class:`~medssl_monai.losses.SSLLoss`).

    The batch statistics need ``N >= 2``. With per-sample weights (RE), sample ``i``'s invariance term
    ``lambda * mean_d (z_a - z_b)^2`` is weighted; the variance and covariance terms are statistics of the whole batch
    (:meth:`batch_term`) and are not.
    """

    def __init__(
        self,
        inv_weight: float = 25.0,
        var_weight: float = 25.0,
        cov_weight: float = 1.0,
        eps: float = 1e-4,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__(gather_distributed)
        self.inv_weight = float(inv_weight)
        self.var_weight = float(var_weight)
        self.cov_weight = float(cov_weight)
        self.eps = float(eps)

    def terms(self, z_a: torch.Tensor, z_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """The unweighted terms ``{"invariance": s, "variance": (v_a + v_b) / 2, "covariance": c_a + c_b}``."""
        check_pair("VICRegLoss", z_a, z_b, min_batch=2)
        return {
            "invariance": invariance_loss(z_a, z_b),
            "variance": 0.5 * (variance_loss(z_a, self.eps) + variance_loss(z_b, self.eps)),
            "covariance": covariance_loss(z_a) + covariance_loss(z_b),
        }

    def per_sample(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        """``lambda * mean_d (z_a - z_b)^2`` per sample; its batch mean is ``lambda * s(Z, Z')``."""
        check_pair("VICRegLoss", z_a, z_b, min_batch=2)
        return self.inv_weight * (z_a - z_b).square().mean(dim=1)

    def batch_term(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        """``mu (v_a + v_b) / 2 + nu (c_a + c_b)``."""
        variance = 0.5 * (variance_loss(z_a, self.eps) + variance_loss(z_b, self.eps))
        return self.var_weight * variance + self.cov_weight * (covariance_loss(z_a) + covariance_loss(z_b))
