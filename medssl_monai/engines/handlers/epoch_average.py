"""Epoch mean of an output entry as an engine metric."""

from __future__ import annotations

import torch
from ignite.engine import Engine

__all__ = ["EpochAverage"]


class EpochAverage:
    """Mean of ``engine.state.output[output_key]`` over each epoch, as ``engine.state.metrics[name]`` (Ignite's
    ``Average``), so that ``StatsHandler`` and ``TensorBoardStatsHandler`` report the epoch loss."""

    def __init__(self, output_key: str = "loss", name: str = "train_loss_epoch") -> None:
        self.output_key = output_key
        self.name = name

    def _transform(self, output: dict) -> torch.Tensor:
        return torch.as_tensor(output[self.output_key]).detach().float()

    def attach(self, engine: Engine) -> None:
        from ignite.metrics import Average

        Average(output_transform=self._transform).attach(engine, self.name)
