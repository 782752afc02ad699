"""Memory bank: one L2-normalised embedding per training sample, updated with momentum (Wu et al., CVPR 2018;
Tian et al., CMC, ECCV 2020), as used by Zhao & Yang (MICCAI 2021, Sec. 2.2 and 3.2).

Zhao & Yang "maintain two memory banks to store two views' feature embeddings for each training sample following
[Wu et al.]" (Sec. 2.2); "the capacity of the memory bank is the size of the entire training data set, ... a momentum
for memory update is 0.5" (Sec. 3.2). The update of entry ``i`` with the current embedding ``e_i`` is CMC's
(``NCE/NCEAverage.py``)::

    v_i <- (m v_i + (1 - m) e_i) / || m v_i + (1 - m) e_i ||_2,    m = 0.5

Initialisation: CMC draws every entry uniformly from ``[-s, s]`` with ``s = 1 / sqrt(D / 3)``, which gives unit norm
in expectation (``E ||v||^2 = D s^2 / 3 = 1``) but not exactly. Here the same uniform draw (under ``seed``) is then
L2-normalised, so every entry is a unit vector from the start, like the embeddings it will hold.

Negatives: CMC draws ``K`` indices uniformly *with* replacement from all ``N`` samples and may draw the positive itself
as a negative. :meth:`MemoryBank.sample_negatives` excludes the positive and draws without replacement: ``K`` distinct
indices among the ``N - 1`` others, or exactly the ``N - 1`` others when ``N - 1 <= K`` (small data sets, where the
paper's bank "is the size of the entire training data set" and every other sample is a negative).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MemoryBank"]


class MemoryBank(nn.Module):
    """``num_samples`` unit vectors of size ``dim`` in the buffer ``memory`` (saved in the state dict, never trained).

    Args:
        num_samples: ``N``, the size of the training set (one entry per sample index).
        dim: ``D``, the embedding size (128 in Zhao & Yang, Sec. 2.3).
        momentum: ``m`` of the update, in ``[0, 1)``; 0.5 (Zhao & Yang, Sec. 3.2; CMC's default).
        seed: seed of the random initialisation.
        eps: norm floor of the L2 normalisation.
    """

    memory: torch.Tensor

    def __init__(self, num_samples: int, dim: int, momentum: float = 0.5, seed: int = 0, eps: float = 1e-12) -> None:
        super().__init__()
        if num_samples < 1 or dim < 1:
            raise ValueError(f"num_samples and dim must be positive, got {num_samples} and {dim}.")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}.")
        self.num_samples = int(num_samples)
        self.dim = int(dim)
        self.momentum = float(momentum)
        self.eps = eps
        generator = torch.Generator().manual_seed(int(seed))
        bound = 1.0 / math.sqrt(dim / 3.0)  # CMC's uniform range: unit norm in expectation
        memory = torch.rand(num_samples, dim, generator=generator).mul_(2 * bound).sub_(bound)
        self.register_buffer("memory", F.normalize(memory, dim=1, eps=eps))

    def _check_indices(self, indices: torch.Tensor) -> torch.Tensor:
        indices = torch.as_tensor(indices, device=self.memory.device).long().reshape(-1)
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.num_samples):
            raise ValueError(f"indices must lie in [0, {self.num_samples}), got {indices.tolist()}.")
        return indices

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        """The stored entries ``memory[indices]`` (detached copies; any index shape, trailing ``D`` added)."""
        index = torch.as_tensor(indices, device=self.memory.device).long()
        return self.memory[self._check_indices(index)].reshape(*index.shape, self.dim).detach()

    @torch.no_grad()
    def update(self, indices: torch.Tensor, embeddings: torch.Tensor) -> None:
        """``v_i <- normalise(m v_i + (1 - m) e_i)`` for each row ``e_i`` of ``embeddings`` (B, D) at ``indices`` (B,).

        The embeddings are detached (no gradient reaches the bank). An index given more than once (e.g. padded
        distributed batches) is updated once with the mean of its embeddings, so the result does not depend on order.
        """
        index = self._check_indices(indices)
        emb = embeddings.detach().to(self.memory)
        if emb.ndim != 2 or emb.shape != (index.numel(), self.dim):
            raise ValueError(f"embeddings must be ({index.numel()}, {self.dim}), got {tuple(embeddings.shape)}.")
        unique, inverse = torch.unique(index, return_inverse=True)
        total = torch.zeros(unique.numel(), self.dim, dtype=emb.dtype, device=emb.device).index_add_(0, inverse, emb)
        count = torch.bincount(inverse, minlength=unique.numel()).to(emb)
        mean = total / count[:, None]
        mixed = self.momentum * self.memory[unique] + (1.0 - self.momentum) * mean
        self.memory[unique] = F.normalize(mixed, dim=1, eps=self.eps)

    def sample_negatives(
        self, indices: torch.Tensor, num_negatives: int = 2048, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Negative indices (B, K') for positives ``indices`` (B,): row ``b`` never contains ``indices[b]``.

        ``K' = min(num_negatives, N - 1)``. When ``N - 1 <= num_negatives`` row ``b`` is exactly the ``N - 1`` other
        indices in increasing order (no randomness). Otherwise ``num_negatives`` distinct indices drawn uniformly
        without replacement from the ``N - 1`` others, using ``generator`` (on its device) or the global CPU RNG.
        """
        index = self._check_indices(indices)
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be positive, got {num_negatives}.")
        if self.num_samples < 2:
            raise ValueError("a memory bank of one sample has no negatives.")
        others = self.num_samples - 1
        batch = index.numel()
        if others <= num_negatives:
            draw = torch.arange(others).expand(batch, others)
        else:
            device = generator.device if generator is not None else torch.device("cpu")
            scores = torch.rand(batch, others, generator=generator, device=device)
            draw = scores.topk(num_negatives, dim=1).indices  # a uniform random K-subset of [0, N - 1)
        draw = draw.to(index.device)
        return draw + (draw >= index[:, None]).long()  # skip the positive: [0, N - 1) -> [0, N) \ {i}

    def extra_repr(self) -> str:
        return f"num_samples={self.num_samples}, dim={self.dim}, momentum={self.momentum}"
