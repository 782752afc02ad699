"""SwAV's swapped-prediction loss with Sinkhorn-Knopp codes (Caron et al., "Unsupervised Learning of Visual Features
by Contrasting Cluster Assignments", NeurIPS 2020, Sec. 3.1 and Alg. 1), the main method of Wolf et al. (2024, App. A).

Each crop ``v`` of an image gives prototype scores ``s_v = z_v^T C`` (L2-normalised projection ``z_v``, L2-normalised
prototypes ``C``, (B, K)). For each assignment crop ``i`` (the two global crops) the codes ``q_i`` solve the
equipartitioned optimal transport of Eq. 3 with the Sinkhorn-Knopp iterations of Cuturi (2013)::

    Q = exp(S_i / eps)^T  (K x B), then ``iterations`` times: rows -> 1/K each, columns -> 1/B each;  q_i = B Q^T

(``eps = 0.05``, 3 iterations: Caron et al. Sec. 4 / App. A.1; Wolf et al. Table 8). The codes are targets: no
gradient flows through them. The loss of crop ``v`` predicting ``q_i`` is the cross-entropy with the temperature
softmax of its own scores, ``l(v, i) = - sum_k q_ik log softmax(s_v / tau)_k`` (``tau = 0.1``), and

    L = 1 / |A| sum_{i in A} 1 / (V - 1) sum_{v != i} l(v, i)

(Caron et al.'s ``main_swav.py``: mean over the other crops, then over the assignment crops). With a queue the
Sinkhorn input is ``[queue scores of crop i; S_i]`` and only the batch's rows of the codes are kept (Sec. 3.1,
"working with small batches"); the queue holds past projections scored with the current prototypes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from .base import SSLLoss, _distributed, check_positive

__all__ = ["SwAVLoss", "sinkhorn_knopp"]


def _all_reduce(x: torch.Tensor, op=None) -> torch.Tensor:
    if _distributed():
        torch.distributed.all_reduce(x, op=op or torch.distributed.ReduceOp.SUM)
    return x


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Codes (B, K) of scores (B, K): ``iterations`` rounds of Sinkhorn-Knopp on ``exp(scores / epsilon)``, rows
    summing to one (each sample's soft assignment), prototypes used equally often over the batch (column sums ``B/K``
    after the last round's prototype normalisation, up to the final sample normalisation).

    Computed in float64 with the maximum subtracted before ``exp`` (a constant factor that the normalisations remove),
    so ``epsilon = 0.05`` does not overflow for cosine scores. Under DDP (an initialised process group of more than one
    rank) the prototype sums, the total mass, the maximum and ``B`` are over every rank's batch, as Caron et al.'s
    ``distributed_sinkhorn``: each rank gets its rows of the codes of the global batch (every rank the same ``B``).
    """
    check_positive("epsilon", epsilon)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (B, K), got {tuple(scores.shape)}.")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}.")
    logits = scores.double() / epsilon
    top = _all_reduce(logits.max().clone(), torch.distributed.ReduceOp.MAX if _distributed() else None)
    q = torch.exp(logits - top).T  # (K, B)
    q /= _all_reduce(q.sum())
    k = q.shape[0]
    b = q.shape[1] * (torch.distributed.get_world_size() if _distributed() else 1)
    for _ in range(iterations):
        q /= _all_reduce(q.sum(dim=1, keepdim=True))  # every prototype gets total mass 1/K
        q /= k
        q /= q.sum(dim=0, keepdim=True)  # every sample gets total mass 1/B
        q /= b
    return (q * b).T.to(scores.dtype)


class SwAVLoss(SSLLoss):
    """Swapped prediction over ``V`` crops: ``loss(s_1, ..., s_V, queue_scores=None)`` -> scalar.

    ``s_v`` (B, K) are the prototype scores of crop ``v`` (cosines); the first ``num_assign_crops`` crops are the
    global ones whose codes are the targets.

    Args:
        temperature: ``tau`` of the prediction softmax (> 0); 0.1 (Caron et al., App. A.1).
        epsilon: entropy weight of the Sinkhorn-Knopp codes (> 0); 0.05 (Caron et al.; Wolf et al., Table 8).
        sinkhorn_iterations: 3 (Caron et al.; Wolf et al., Table 8).
        num_assign_crops: how many of the first crops get codes (``crops_for_assign``, 2: the two global crops).

    ``queue_scores`` (optional, ``(num_assign_crops, Q, K)``): the queued projections of each assignment crop scored
    with the current prototypes; they join the Sinkhorn input so that a small batch still spreads over ``K``
    prototypes. Sample ``b``'s loss (for RE weights) is its own term of the mean above.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        num_assign_crops: int = 2,
    ) -> None:
        super().__init__()
        self.temperature = check_positive("temperature", temperature)
        self.epsilon = check_positive("epsilon", epsilon)
        if sinkhorn_iterations < 1 or num_assign_crops < 1:
            raise ValueError("sinkhorn_iterations and num_assign_crops must be at least 1.")
        self.sinkhorn_iterations = int(sinkhorn_iterations)
        self.num_assign_crops = int(num_assign_crops)

    def codes(self, scores: Sequence[torch.Tensor], queue_scores: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The Sinkhorn-Knopp codes (B, K) of each assignment crop (no gradient)."""
        batch = scores[0].shape[0]
        out = []
        for i in range(self.num_assign_crops):
            s = scores[i].detach()
            if queue_scores is not None and queue_scores.shape[1] > 0:
                s = torch.cat([queue_scores[i].detach().to(s), s])
            out.append(sinkhorn_knopp(s, self.epsilon, self.sinkhorn_iterations)[-batch:])
        return out

    def per_sample(self, *scores: torch.Tensor, queue_scores: torch.Tensor | None = None) -> torch.Tensor:
        if len(scores) <= self.num_assign_crops - 1 or len(scores) < 2:
            raise ValueError(
                f"SwAVLoss needs at least 2 crops and {self.num_assign_crops} assignment crops, got {len(scores)} crops."
            )
        first = scores[0]
        if first.ndim != 2 or any(s.shape != first.shape for s in scores):
            raise ValueError(f"SwAVLoss expects (B, K) scores of one shape, got {[tuple(s.shape) for s in scores]}.")
        if queue_scores is not None and (
            queue_scores.ndim != 3
            or queue_scores.shape[0] < self.num_assign_crops
            or queue_scores.shape[2] != first.shape[1]
        ):
            raise ValueError(
                f"queue_scores must be ({self.num_assign_crops}, Q, {first.shape[1]}), got {tuple(queue_scores.shape)}."
            )
        log_p = [F.log_softmax(s / self.temperature, dim=1) for s in scores]
        total = torch.zeros(first.shape[0], dtype=first.dtype, device=first.device)
        for i, q in enumerate(self.codes(scores, queue_scores)):
            others = [v for v in range(len(scores)) if v != i]
            total = total + sum(-(q * log_p[v]).sum(dim=1) for v in others) / len(others)
        return total / self.num_assign_crops
