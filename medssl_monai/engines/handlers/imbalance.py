"""Training-time RE / SE (Li et al., MICCAI 2021, Sec. 2-3) as an Ignite handler on ``GET_BATCH_COMPLETED``."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from ignite.engine import Engine, Events

from ...imbalance import reweight, select

__all__ = ["ImbalanceHandler", "subset_batch"]

MODES = ("none", "re", "se")


def subset_batch(batch: dict, index: torch.Tensor | np.ndarray) -> dict:
    """The rows ``index`` of a collated batch: tensors and lists of the batch's length are indexed, the rest kept."""
    index = torch.as_tensor(index, dtype=torch.long)
    size = next((len(v) for v in batch.values() if isinstance(v, torch.Tensor) and v.ndim > 0), None)
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.ndim > 0 and len(value) == size:
            out[key] = value[index.to(value.device)]
        elif isinstance(value, (list, tuple)) and len(value) == size:
            out[key] = [value[int(i)] for i in index]
        else:
            out[key] = value
    return out


class ImbalanceHandler:
    """Applies RE or SE to each training batch before the iteration runs.

    Schedule of the paper (Sec. 3): epochs before ``start_epoch`` (default 2, i.e. the first epoch) are plain SSL
    with batch m; from then on the features come from the network as it is at that iteration ("the encoder from the
    last iteration is employed for dynamic feature extraction").

    * ``"re"``: adds ``batch[weight_key]`` = :func:`~medssl_monai.imbalance.reweight` of the batch's features; the
      trainer passes it to the loss as ``weight`` (:class:`~medssl_monai.losses.SimSiamLoss` reduces
      ``sum w l / sum w``).
    * ``"se"``: the data loader yields candidate batches of N = k * q; the batch becomes the m samples
      :func:`~medssl_monai.imbalance.select` picks. Before ``start_epoch`` it becomes a uniformly random m-subset,
      i.e. a plain random batch of m. ``q`` (candidates per cluster, N = k * q), when given, is checked against
      the paper's rule m < N / k at construction rather than after the first epoch.

    Features are ``network(batch[feature_key])[output_key]`` of the un-augmented images, computed without gradient
    and with the network in eval mode (BatchNorm running statistics; a batch of 6 is too small for batch
    statistics), then the network's mode is restored. A DDP-wrapped network is unwrapped (no collectives). Any
    network returning ``{output_key: (B, D)}`` works, so RE/SE serve every SSL method of this package.

    With labels in the batch (``label_key``; used for logging only, never for the selection) the handler writes
    ``imbalance_minority_share`` to ``engine.state.metrics`` at each epoch end: the share of the dataset's minority
    class among trained samples (weighted by the RE weights), next to ``imbalance_candidate_minority_share``.
    """

    def __init__(
        self,
        mode: str = "none",
        k: int = 3,
        m: int = 6,
        q: int | None = None,
        start_epoch: int = 2,
        feature_key: str = "image",
        output_key: str = "embedding",
        weight_key: str = "weight",
        label_key: str = "label",
        seed: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"imbalance mode must be one of {MODES}, got {mode!r}.")
        if mode == "se" and q is not None and not 1 <= m < q:
            raise ValueError(f"SE needs 1 <= m < N/k = q (Li et al. Sec. 2); got m={m}, q={q}: raise q or lower m.")
        self.mode, self.k, self.m, self.start_epoch = mode, int(k), int(m), int(start_epoch)
        self.feature_key, self.output_key = feature_key, output_key
        self.weight_key, self.label_key, self.seed = weight_key, label_key, int(seed)
        self._reset()

    def attach(self, engine: Engine) -> None:
        if self.mode == "none":
            return
        engine.add_event_handler(Events.GET_BATCH_COMPLETED, self)
        engine.add_event_handler(Events.EPOCH_STARTED, lambda _: self._reset())
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._report)

    def _reset(self) -> None:
        self._candidates: Counter = Counter()
        self._trained: Counter = Counter()

    @torch.no_grad()
    def features(self, engine: Engine, images: torch.Tensor) -> torch.Tensor:
        network = getattr(engine.network, "module", engine.network)
        memory_format = getattr(engine, "memory_format", torch.contiguous_format)
        x = torch.as_tensor(images).to(engine.state.device).contiguous(memory_format=memory_format)
        was_training = network.training
        network.eval()
        try:
            return network(x)[self.output_key].float()
        finally:
            network.train(was_training)

    def __call__(self, engine: Engine) -> None:
        batch = engine.state.batch
        if self.feature_key not in batch:
            raise KeyError(f"ImbalanceHandler: batch has no '{self.feature_key}' (keys: {list(batch)}).")
        n = len(batch[self.feature_key])
        weights = None
        if self.mode == "se" and n <= self.m:
            raise ValueError(
                f"SE needs candidate batches larger than m={self.m}, got {n}: set the loader batch to k*q."
            )
        seed = self.seed + engine.state.iteration  # iterations completed so far: a new seed per batch (resume-exact)
        if engine.state.epoch < self.start_epoch:
            if self.mode == "se":
                pick = np.random.default_rng(seed).choice(n, size=self.m, replace=False)
                batch = subset_batch(batch, np.sort(pick))
        else:
            feats = self.features(engine, batch[self.feature_key])
            if self.mode == "re":
                weights = reweight(feats, k=self.k, seed=seed).cpu()
                batch = {**batch, self.weight_key: weights}
            else:
                batch = subset_batch(batch, select(feats, k=self.k, m=self.m, seed=seed).cpu())
        self._count(engine.state.batch, batch, weights)
        engine.state.batch = batch

    def _count(self, candidates: dict, trained: dict, weights: torch.Tensor | None) -> None:
        if self.label_key not in candidates:
            return
        self._candidates.update(torch.as_tensor(candidates[self.label_key]).reshape(-1).tolist())
        labels = torch.as_tensor(trained[self.label_key]).reshape(-1).tolist()
        w = [1.0] * len(labels) if weights is None else weights.reshape(-1).tolist()
        for label, weight in zip(labels, w):
            self._trained[label] += weight

    def _report(self, engine: Engine) -> None:
        if len(self._candidates) < 2:
            return
        minority = min(self._candidates, key=lambda c: (self._candidates[c], c))
        engine.state.metrics["imbalance_candidate_minority_share"] = self._candidates[minority] / sum(
            self._candidates.values()
        )
        engine.state.metrics["imbalance_minority_share"] = self._trained[minority] / max(
            sum(self._trained.values()), 1e-12
        )
