"""The SwAV step as a compute-loss hook (Caron et al., NeurIPS 2020, Alg. 1 and ``main_swav.py``)."""

from __future__ import annotations

import torch
from monai.engines.utils import IterationEvents

from .trainer import SSLTrainer

__all__ = ["SwAVTrainer"]


class SwAVTrainer(SSLTrainer):
    """:class:`SSLTrainer` for a :class:`~medssl_monai.networks.SwAVNetwork` and
    :class:`~medssl_monai.losses.SwAVLoss` over ``view_keys`` (global crops first).

    Each iteration: the prototypes are L2-normalised; crops of one size go through the network together (SwAV's
    multi-resolution forward, one BatchNorm batch per resolution); the prototypes get no gradient during the first
    ``freeze_prototypes_iterations`` iterations (Wolf et al., Table 8: 313; Caron et al.: the first epoch); from epoch
    ``queue_start_epoch`` on the projections of the assignment crops are queued after each step, and once the queue
    is full its scores join the Sinkhorn input.

    Args:
        freeze_prototypes_iterations: iterations with frozen prototypes.
        queue_start_epoch: first epoch (1-based) that fills the queue (Caron et al.: 15, with a 3,840 queue).
        kwargs: :class:`SSLTrainer` arguments (``loss_input_keys`` is fixed to the prototype scores).
    """

    def __init__(self, *args, freeze_prototypes_iterations: int = 313, queue_start_epoch: int = 15, **kwargs) -> None:
        kwargs["loss_input_keys"] = ("prediction",)
        super().__init__(*args, **kwargs)
        self.freeze_prototypes_iterations = int(freeze_prototypes_iterations)
        self.queue_start_epoch = int(queue_start_epoch)

    def _forward_by_size(self, network, views: list[torch.Tensor]) -> list[dict]:
        outputs: list[dict] = []
        start = 0
        while start < len(views):
            end = start
            while end < len(views) and views[end].shape == views[start].shape:
                end += 1
            out = network(torch.cat(views[start:end]))
            chunks = {k: v.chunk(end - start) for k, v in out.items()}
            outputs.extend({k: chunks[k][i] for k in chunks} for i in range(end - start))
            start = end
        return outputs

    def compute_loss(self, engine: SwAVTrainer, batchdata: dict) -> tuple[torch.Tensor, dict]:
        views, kwargs = self._batch(batchdata)
        network = getattr(engine.network, "module", engine.network)  # the SwAVNetwork inside a DDP wrapper
        network.predictor.normalize_()
        network.predictor.frozen = engine.state.iteration <= self.freeze_prototypes_iterations
        with self.autocast():
            outputs = self._forward_by_size(engine.network, views)
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        scores = [out["prediction"].float() for out in outputs]
        assign = engine.loss_function.num_assign_crops
        queue = network.queue
        if queue is not None and engine.state.epoch >= self.queue_start_epoch and queue.full:
            with torch.no_grad():
                kwargs["queue_scores"] = queue.entries() @ network.predictor.weight.detach().T
        loss = engine.loss_function(*scores, **kwargs)
        projections = torch.stack([out["projection"].detach().float() for out in outputs[:assign]])
        return loss, {
            "embedding": outputs[0]["embedding"].detach().float(),
            "_loss_inputs": scores,
            "_queue": projections,
        }

    def after_step(self, engine: SwAVTrainer, batchdata: dict, outputs: dict) -> None:
        queue = getattr(engine.network, "module", engine.network).queue
        if queue is not None and engine.state.epoch >= self.queue_start_epoch:
            queue.push(outputs["_queue"])
