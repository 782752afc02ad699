"""Collapse monitor on the training batches' embeddings (train mode)."""

from __future__ import annotations

import logging

import torch
from ignite.engine import Engine, Events

from ...evaluation.health import representation_health

__all__ = ["EmbeddingHealth"]

logger = logging.getLogger(__name__)


class EmbeddingHealth:
    """Watch for representation collapse in the training batches: embedding statistics over each epoch, into
    ``engine.state.metrics``. These are train-mode embeddings of augmented views, where batch norm spreads even a
    collapsed representation: :class:`~medssl_monai.engines.HeldOutHealth` measures what users get (eval mode).

    * ``embedding_std``: mean over dimensions of the per-dimension std of L2-normalised embeddings. SimSiam
      (Chen & He, CVPR 2021, Sec. 4.1) shows it stays near ``1/sqrt(D)`` when healthy and drops to 0 on collapse;
    * ``embedding_std_ratio``: ``embedding_std * sqrt(D)`` (about 1 healthy, about 0 collapsed);
    * ``embedding_effective_rank``: :func:`effective_rank` of the epoch's embeddings.

    Attach it before ``StatsHandler`` / ``TensorBoardStatsHandler`` so they print and plot these every epoch.
    A ratio under ``warn_below`` logs a warning. At most ``max_samples`` recent embeddings are kept.
    """

    def __init__(self, output_key: str = "embedding", max_samples: int = 4096, warn_below: float = 0.1) -> None:
        self.output_key = output_key
        self.max_samples = max_samples
        self.warn_below = warn_below
        self._buffer: list[torch.Tensor] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._compute)

    def _reset(self, engine: Engine) -> None:
        self._buffer = []

    def _collect(self, engine: Engine) -> None:
        self._buffer.append(engine.state.output[self.output_key].detach().float().cpu())
        if sum(len(b) for b in self._buffer) > 2 * self.max_samples:
            self._buffer = [torch.cat(self._buffer)[-self.max_samples :]]

    def _compute(self, engine: Engine) -> None:
        if not self._buffer:
            return
        stats = self.statistics(torch.cat(self._buffer)[-self.max_samples :])
        engine.state.metrics.update(stats)
        if not stats["embedding_std_ratio"] >= self.warn_below:  # NaN included
            logger.warning(
                "Epoch %d: embedding std ratio %.3f < %.2f: the representation may be collapsing.",
                engine.state.epoch,
                stats["embedding_std_ratio"],
                self.warn_below,
            )

    @staticmethod
    def statistics(embeddings: torch.Tensor) -> dict[str, float]:
        """``embedding_std``, ``embedding_std_ratio``, ``embedding_effective_rank`` (NaN for non-finite embeddings)."""
        if len(embeddings) < 2:
            return {"embedding_std": 0.0, "embedding_std_ratio": 0.0, "embedding_effective_rank": 1.0}
        stats = representation_health(embeddings)
        return {f"embedding_{k}": stats[k] for k in ("std", "std_ratio", "effective_rank")}
