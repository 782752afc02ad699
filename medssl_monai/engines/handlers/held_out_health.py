"""Representation health where users consume it: a fixed held-out set embedded in eval mode, without augmentation."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from ignite.engine import Engine, Events
from torch import nn

from ...evaluation.health import representation_health

__all__ = ["CollapseError", "HeldOutHealth"]

logger = logging.getLogger(__name__)


class CollapseError(RuntimeError):
    """Raised by :class:`HeldOutHealth` with ``on_collapse="stop"`` when the representation has collapsed."""


class HeldOutHealth:
    """Every ``interval`` epochs (or ``iteration_interval`` iterations), embed a fixed held-out set with ``network`` in
    eval mode and put its health into ``engine.state.metrics`` as ``health_std_ratio``, ``health_effective_rank`` and,
    when the batches carry labels, ``health_knn_accuracy`` / ``health_knn_balanced_accuracy``
    (:func:`~medssl_monai.evaluation.health.representation_health`).

    The training-batch monitor (:class:`~medssl_monai.engines.EmbeddingHealth`) sees augmented views in train mode,
    where batch norm normalises each batch with its own statistics and so spreads even a collapsed representation
    (the 3DSiam encoder of release 0.2.0 had a train-mode std ratio of 0.57 and an eval-mode one of 0.07 with the same
    weights). This handler measures what a user gets: the network in eval mode (running statistics) on unaugmented
    data. The network's train/eval state is restored afterwards, and no gradient is computed.

    Attach it before ``StatsHandler`` / ``TensorBoardStatsHandler`` so the figures are printed and plotted each epoch.

    Args:
        network: the module that maps a batch of images to ``(B, D)`` embeddings (the encoder, not the SSL wrapper).
        data: an iterable of batches (a ``DataLoader``) whose items hold ``image_key`` and optionally ``label_key``;
            iterated once per check, so keep it small (a few hundred cases) and deterministic (no shuffling).
        interval: check every this many epochs (0: never at epoch level).
        iteration_interval: check every this many iterations instead (0: off).
        collapse_std_ratio: a std ratio under this counts as collapse (SimSiam's collapsed std is ~0).
        collapse_rank: an effective rank under this counts as collapse.
        on_collapse: ``"warn"`` (log a warning), ``"stop"`` (raise :class:`CollapseError` with the figures) or
            ``"ignore"``.
        knn_k: neighbours of the kNN check.
    """

    def __init__(
        self,
        network: nn.Module,
        data: Iterable[dict],
        interval: int = 1,
        iteration_interval: int = 0,
        image_key: str = "image",
        label_key: str = "label",
        collapse_std_ratio: float = 0.1,
        collapse_rank: float = 2.0,
        on_collapse: str = "warn",
        knn_k: int = 20,
        device: str | torch.device | None = None,
    ) -> None:
        if on_collapse not in ("warn", "stop", "ignore"):
            raise ValueError(f"on_collapse must be 'warn', 'stop' or 'ignore', got {on_collapse!r}.")
        if interval < 0 or iteration_interval < 0 or (interval == 0 and iteration_interval == 0):
            raise ValueError(f"need interval > 0 or iteration_interval > 0, got {interval} and {iteration_interval}.")
        self.network = network
        self.data = data
        self.interval = int(interval)
        self.iteration_interval = int(iteration_interval)
        self.image_key = image_key
        self.label_key = label_key
        self.collapse_std_ratio = float(collapse_std_ratio)
        self.collapse_rank = float(collapse_rank)
        self.on_collapse = on_collapse
        self.knn_k = int(knn_k)
        self.device = device
        self.history: list[dict[str, float]] = []

    def attach(self, engine: Engine) -> None:
        if self.iteration_interval:
            engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.iteration_interval), self)
        if self.interval:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)

    @torch.no_grad()
    def embed(self, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Eval-mode embeddings ``(N, D)`` of the held-out set and its labels (None when it has none)."""
        was_training = self.network.training
        device = device or self.device or next(self.network.parameters()).device
        self.network.eval()
        feats, labels = [], []
        try:
            for batch in self.data:
                x = torch.as_tensor(batch[self.image_key]).float().to(device)
                feats.append(self.network(x).float().cpu())
                if self.label_key in batch:
                    labels.append(torch.as_tensor(batch[self.label_key]).reshape(-1).cpu())
        finally:
            self.network.train(was_training)
        if not feats:
            raise ValueError("HeldOutHealth: the held-out data yielded no batch.")
        y = torch.cat(labels) if labels and sum(len(v) for v in labels) == sum(len(f) for f in feats) else None
        return torch.cat(feats), y

    def __call__(self, engine: Engine) -> None:
        emb, labels = self.embed(getattr(engine.state, "device", None))
        stats = representation_health(emb, labels, k=self.knn_k)
        metrics = {f"health_{k}": v for k, v in stats.items() if k != "std"}
        engine.state.metrics.update(metrics)
        self.history.append({"epoch": engine.state.epoch, "iteration": engine.state.iteration, **metrics})
        text = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        logger.info("Held-out health (eval mode, %d cases) at epoch %d: %s", len(emb), engine.state.epoch, text)
        collapsed = (
            not stats["finite"]
            or stats["std_ratio"] < self.collapse_std_ratio
            or stats["effective_rank"] < self.collapse_rank
        )
        if not collapsed or self.on_collapse == "ignore":
            return
        message = (
            f"representation collapse on the held-out set at epoch {engine.state.epoch}, iteration "
            f"{engine.state.iteration}: {text} (thresholds: std ratio {self.collapse_std_ratio}, effective rank "
            f"{self.collapse_rank}). Lower the learning rate, check the predictor/projector batch norm, or stop "
            "earlier; the previous checkpoint holds the last healthy weights."
        )
        if self.on_collapse == "stop":
            raise CollapseError(message)
        logger.warning(message)
