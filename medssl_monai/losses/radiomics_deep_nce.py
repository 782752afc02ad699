"""Radiomics-deep feature correspondence loss: two-way memory-bank InfoNCE (Zhao & Yang, MICCAI 2021, Eq. 1-2).

With ``d`` the L2-normalised deep (image-view) embedding of sample ``n`` and ``r`` the radiomics-view one, Eq. 1
selects the corresponding radiomics embedding among ``k`` incongruent ones (the paper's Eq. 1 omits the temperature;
Sec. 3.2 sets ``tau = 0.07``, CMC's value, and CMC divides the scores by it)::

    L^{d,r} = -log( exp(d . r_n / tau) / sum_{j in {n} + negatives} exp(d . r_j / tau) )
    L^{r,d} = the same with the views swapped (radiomics anchor, deep candidates)
    L(r, d) = L^{d,r} + L^{r,d}                                                          (Eq. 2)

Candidates come from the *other* view's memory bank, as in CMC (Tian et al., ECCV 2020, ``NCE/NCEAverage.py``): the
deep anchor ``d`` (current batch, carries the gradient) is scored against radiomics-bank entries, the positive being
the bank entry of the same sample index and the negatives the bank entries of other indices; the radiomics anchor
against the deep bank symmetrically. Both directions share one draw of negative indices (as CMC does). Bank entries
are constants (detached): the gradient reaches only the anchors. The banks are updated *after* the loss with the
current embeddings (:class:`medssl_monai.networks.MemoryBank`), so the positive is the sample's embedding from earlier
steps, never the anchor's own pair in this batch.

Reduction: each direction is the mean over the batch (CMC's ``NCESoftmaxLoss``, cross-entropy with label 0), and the
two directions are *summed*, as Eq. 2 writes and CMC's training script does (``loss = l_loss + ab_loss``).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ._checks import check_pair
from .base import SSLLoss, check_positive

__all__ = ["RadiomicsDeepNCELoss", "info_nce"]


def info_nce(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    temperature: float = 0.07,
    eps: float = 1e-8,
    reduction: str = "mean",
) -> torch.Tensor:
    """InfoNCE with one positive and ``K`` negatives per anchor, mean over the batch -> scalar (``reduction="none"``:
    per anchor, (B,)).

    ``-log( exp(a . p / tau) / (exp(a . p / tau) + sum_k exp(a . n_k / tau)) )`` on L2-normalised rows.

    Args:
        anchor: (B, D).
        positive: (B, D), row ``b`` the positive of anchor ``b``.
        negatives: (B, K, D), ``K >= 1`` negatives of anchor ``b``; or (K, D), the same negatives for every anchor
            (MoCo's queue), scored as one matrix product without a (B, K, D) copy.
        temperature: ``tau`` (> 0).
        eps: norm floor of the L2 normalisation.
    """
    check_positive("temperature", temperature)
    if anchor.ndim != 2 or positive.shape != anchor.shape:
        raise ValueError(
            f"anchor and positive must be (B, D) of one shape, got {tuple(anchor.shape)}, {tuple(positive.shape)}."
        )
    shared = negatives.ndim == 2
    per_anchor = negatives.ndim == 3 and negatives.shape[0] == anchor.shape[0]
    if not (shared or per_anchor) or negatives.shape[-1] != anchor.shape[1]:
        raise ValueError(
            f"negatives must be (B, K, D) = ({anchor.shape[0]}, K, {anchor.shape[1]}) or (K, {anchor.shape[1]}), got "
            f"{tuple(negatives.shape)}."
        )
    if negatives.shape[-2] < 1:
        raise ValueError("info_nce needs at least one negative per anchor.")
    a = F.normalize(anchor, dim=1, eps=eps)
    pos = (a * F.normalize(positive, dim=1, eps=eps)).sum(1, keepdim=True)
    n = F.normalize(negatives, dim=-1, eps=eps)
    neg = a @ n.T if shared else torch.einsum("bd,bkd->bk", a, n)
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(a.shape[0], dtype=torch.long, device=a.device), reduction=reduction)


class RadiomicsDeepNCELoss(SSLLoss):
    """Eq. 2 of Zhao & Yang: ``L^{d,r} + L^{r,d}`` with candidates from the two memory banks -> scalar.

    ``loss(z_deep, z_rad, bank_deep, bank_rad, indices, negative_indices)``:

    Args (of ``forward``):
        z_deep: (B, D) deep embeddings of the batch (anchors of ``L^{d,r}``).
        z_rad: (B, D) radiomics embeddings of the batch (anchors of ``L^{r,d}``).
        bank_deep: (N, D) deep memory bank (``MemoryBank.memory``); candidates of ``L^{r,d}``.
        bank_rad: (N, D) radiomics memory bank; candidates of ``L^{d,r}``.
        indices: (B,) sample indices of the batch: the positives' rows in the banks.
        negative_indices: (B, K) bank rows of the negatives (``MemoryBank.sample_negatives``); must not contain the
            row's positive.

    Args:
        temperature: ``tau`` (> 0); 0.07 (Zhao & Yang, Sec. 3.2).
        eps: norm floor of the L2 normalisation.

    Sample ``i``'s loss (for per-sample weights) is ``L^{d,r}_i + L^{r,d}_i``. The banks are per-process state, so
    ``gather_distributed`` is not offered.
    """

    def __init__(self, temperature: float = 0.07, eps: float = 1e-8) -> None:
        super().__init__()
        self.temperature = check_positive("temperature", temperature)
        self.eps = eps

    def _directions(
        self,
        z_deep: torch.Tensor,
        z_rad: torch.Tensor,
        bank_deep: torch.Tensor,
        bank_rad: torch.Tensor,
        indices: torch.Tensor,
        negative_indices: torch.Tensor,
        reduction: str,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_pair(type(self).__name__, z_deep, z_rad)
        if bank_deep.ndim != 2 or bank_deep.shape != bank_rad.shape or bank_deep.shape[1] != z_deep.shape[1]:
            raise ValueError(
                f"banks must be (N, {z_deep.shape[1]}) of one shape, got {tuple(bank_deep.shape)}, {tuple(bank_rad.shape)}."
            )
        index = torch.as_tensor(indices, device=bank_deep.device).long().reshape(-1)
        negative = torch.as_tensor(negative_indices, device=bank_deep.device).long()
        if index.numel() != z_deep.shape[0] or negative.ndim != 2 or negative.shape[0] != index.numel():
            raise ValueError(
                f"indices must be (B,) and negative_indices (B, K), got {tuple(index.shape)}, {tuple(negative.shape)}."
            )
        if bool((negative == index[:, None]).any()):
            raise ValueError("negative_indices contain the positive's own index: a sample cannot be its own negative.")
        bank_d, bank_r = bank_deep.detach(), bank_rad.detach()  # bank entries are constants
        deep_anchor = info_nce(z_deep, bank_r[index], bank_r[negative], self.temperature, self.eps, reduction)
        rad_anchor = info_nce(z_rad, bank_d[index], bank_d[negative], self.temperature, self.eps, reduction)
        return deep_anchor, rad_anchor

    def directions(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L^{d,r}, L^{r,d})``, each the mean over the batch (for logging the two terms apart); the arguments of
        ``forward``."""
        return self._directions(*inputs, reduction="mean")

    def per_sample(self, *inputs: torch.Tensor) -> torch.Tensor:
        deep_anchor, rad_anchor = self._directions(*inputs, reduction="none")
        return deep_anchor + rad_anchor
