"""The MoCo step as a compute-loss hook (He et al., CVPR 2020, Alg. 1; MoCo v2, Chen et al. 2020)."""

from __future__ import annotations

import torch
from monai.engines.utils import IterationEvents

from ..losses.base import gather
from .trainer import SSLTrainer

__all__ = ["MoCoTrainer"]


class MoCoTrainer(SSLTrainer):
    """:class:`SSLTrainer` for a :class:`~medssl_monai.networks.MoCoNetwork` and :class:`~medssl_monai.losses.MoCoLoss`.

    Each iteration (MoCo's Alg. 1): queries ``q`` = the online projection of the first view, keys ``k`` = the
    momentum encoder's unit projection of the second view (no gradient), ``loss(q, k, queue)``; after the optimiser
    step the momentum encoder moves towards the online one and ``k`` is enqueued (MoCo updates the momentum encoder
    at the start of the next iteration, the same parameters). MoCo's loss is not symmetrised (MoCo v2).

    MoCo's "shuffling BN" (keys computed on a batch shuffled across GPUs, so that BatchNorm cannot leak which key
    belongs to which query) needs several devices; here queries and keys are two separate forward passes on one
    device, each normalised over its own batch (deviation, see the bundle docs). Under DDP every rank enqueues the
    keys of all ranks (:func:`~medssl_monai.losses.gather`), as MoCo does, so the queues stay identical.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs["loss_input_keys"] = ("projection",)
        super().__init__(*args, **kwargs)
        if len(self.view_keys) != 2:
            raise ValueError(f"MoCo uses two views, got view_keys={self.view_keys}.")

    def compute_loss(self, engine: MoCoTrainer, batchdata: dict) -> tuple[torch.Tensor, dict]:
        (query_view, key_view), kwargs = self._batch(batchdata)
        network = getattr(engine.network, "module", engine.network)  # the MoCoNetwork inside a DDP wrapper
        with self.autocast():
            out = engine.network(query_view)
            keys = network.keys(key_view)
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        q = out["projection"].float()
        loss = engine.loss_function(q, keys, queue=network.queue.entries()[0], **kwargs)
        return loss, {"embedding": out["embedding"].detach().float(), "_loss_inputs": [q, keys], "_keys": keys}

    def after_step(self, engine: MoCoTrainer, batchdata: dict, outputs: dict) -> None:
        network = getattr(engine.network, "module", engine.network)
        network.momentum_update()
        network.queue.push(gather(outputs["_keys"]))
