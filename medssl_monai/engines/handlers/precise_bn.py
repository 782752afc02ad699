"""Batch-norm statistics re-estimated on clean data ("precise BN", Wu & Johnson, "Rethinking 'Batch' in BatchNorm",
2021, Sec. 3)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from ignite.engine import Engine, Events
from torch import nn

__all__ = ["PreciseBatchNorm", "recalibrate_batch_norm"]

logger = logging.getLogger(__name__)


@torch.no_grad()
def recalibrate_batch_norm(
    network: nn.Module, data: Iterable[dict], image_key: str = "image", max_batches: int | None = None
) -> int:
    """Replace the running mean and variance of every batch-norm layer of ``network`` by their plain averages over the
    batches of ``data`` (train-mode forward passes without gradient; the momentum is set to None, PyTorch's
    cumulative average, and restored afterwards). Returns the number of batches used; no other weight changes."""
    layers = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not layers:
        return 0
    was_training = network.training
    device = next(network.parameters()).device
    momenta = [m.momentum for m in layers]
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    network.train()
    count = 0
    try:
        for batch in data:
            if max_batches is not None and count >= max_batches:
                break
            x = torch.as_tensor(batch[image_key]).float().to(device)
            if len(x) < 2:  # batch norm needs two samples per batch
                continue
            network(x)
            count += 1
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        network.train(was_training)
    if count == 0:  # nothing seen: keep the old statistics
        for m, (mean, var, tracked) in zip(layers, saved):
            m.running_mean.copy_(mean), m.running_var.copy_(var), m.num_batches_tracked.copy_(tracked)
    return count


class PreciseBatchNorm:
    """Re-estimate the batch-norm statistics of ``network`` on clean (unaugmented) training batches at the end of each
    ``interval``-th epoch, so that eval mode (running statistics) sees what train mode saw.

    Why: during SSL pre-training batch norm accumulates its running statistics with momentum 0.1 over the last few
    augmented batches, while users embed unaugmented images in eval mode. On AdrenalMNIST3D the 3DSiam encoder's
    eval-mode output std ratio was 0.19 with the statistics of training and 0.86 with statistics re-estimated on clean
    training volumes (same weights; ``bundles/3dsiam/docs/README.md``, "Representation health").

    Attach it before the handlers that read the network at ``EPOCH_COMPLETED`` (held-out health, checkpoints, the final
    model save). The statistics do not enter training (train mode normalises with each batch's own statistics), so
    training itself is unchanged; ``data`` should batch like training (same batch size) and draw in a fixed order.
    """

    def __init__(
        self,
        network: nn.Module,
        data: Iterable[dict],
        image_key: str = "image",
        interval: int = 1,
        max_batches: int | None = 200,
    ) -> None:
        if interval < 1:
            raise ValueError(f"interval must be >= 1, got {interval}.")
        self.network, self.data, self.image_key = network, data, image_key
        self.interval, self.max_batches = int(interval), max_batches

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)

    def __call__(self, engine: Engine) -> None:
        n = recalibrate_batch_norm(self.network, self.data, self.image_key, self.max_batches)
        logger.info("Epoch %d: batch-norm statistics re-estimated on %d clean batches.", engine.state.epoch, n)
