"""A first-in-first-out queue of past embeddings, kept in buffers so that checkpoints save it and a resumed run
continues with the same negatives (MoCo, He et al. CVPR 2020, Sec. 3.2) or Sinkhorn context (SwAV, Caron et al.
NeurIPS 2020, Sec. 3.1)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["FeatureQueue"]


class FeatureQueue(nn.Module):
    """``num_sets`` queues of ``length`` vectors of size ``dim`` (buffer ``queue`` (S, L, D)); the oldest entries are
    overwritten first.

    Args:
        length: entries per set (MoCo: 65,536; SwAV: 3,840 with small batches).
        dim: vector size.
        num_sets: independent queues (SwAV keeps one per assignment crop; MoCo one).
        random_init: start full of random unit vectors (MoCo's initialisation, seeded by ``seed``); else start empty
            and report :attr:`full` once every slot has been written (SwAV uses its queue only then).
    """

    queue: torch.Tensor
    ptr: torch.Tensor
    count: torch.Tensor

    def __init__(self, length: int, dim: int, num_sets: int = 1, random_init: bool = False, seed: int = 0) -> None:
        super().__init__()
        if length < 1 or dim < 1 or num_sets < 1:
            raise ValueError(f"length, dim and num_sets must be positive, got {length}, {dim}, {num_sets}.")
        if random_init:
            generator = torch.Generator().manual_seed(int(seed))
            init = F.normalize(torch.randn(num_sets, length, dim, generator=generator), dim=2)
        else:
            init = torch.zeros(num_sets, length, dim)
        self.register_buffer("queue", init)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.tensor(length if random_init else 0, dtype=torch.long))

    @property
    def length(self) -> int:
        return self.queue.shape[1]

    @property
    def full(self) -> bool:
        """Every slot holds an embedding (always true with ``random_init``)."""
        return int(self.count) >= self.length

    def entries(self) -> torch.Tensor:
        """The filled entries (S, n, D), detached (order is not meaningful)."""
        return self.queue[:, : int(self.count)].detach()

    @torch.no_grad()
    def push(self, x: torch.Tensor) -> None:
        """Enqueue ``x`` (S, B, D), or (B, D) for one set, overwriting the oldest ``B`` entries (wrapping around)."""
        x = x.detach().to(self.queue)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[0] != self.queue.shape[0] or x.shape[2] != self.queue.shape[2]:
            raise ValueError(f"push expects ({self.queue.shape[0]}, B, {self.queue.shape[2]}), got {tuple(x.shape)}.")
        batch = x.shape[1]
        if batch > self.length:
            x, batch = x[:, -self.length :], self.length
        index = (int(self.ptr) + torch.arange(batch, device=self.queue.device)) % self.length
        self.queue[:, index] = x
        self.ptr.fill_((int(self.ptr) + batch) % self.length)
        self.count.fill_(min(int(self.count) + batch, self.length))

    def extra_repr(self) -> str:
        return f"num_sets={self.queue.shape[0]}, length={self.length}, dim={self.queue.shape[2]}"
