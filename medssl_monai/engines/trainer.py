"""A MONAI trainer for joint-embedding SSL: several views in, one loss over the network's named outputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.engines.utils import IterationEvents

from .fit import FitTrainer

__all__ = ["SSLTrainer"]


class SSLTrainer(FitTrainer):
    """:class:`~medssl_monai.engines.FitTrainer` whose loss hook runs an SSL method instead of image -> label.

    The hook moves the views ``view_keys`` of the batch to the device, runs the network on each view (an
    :class:`~medssl_monai.networks.SSLNetwork` returning ``{"embedding", "projection", "prediction"}``) and calls::

        loss_function(*[out[k] for k in loss_input_keys for out in view_outputs],
                      **{k: batch[k] for k in target_keys}, weight=batch[weight_key])

    so SimSiam (``loss_input_keys=("prediction", "projection")`` -> ``loss(p1, p2, z1, z2)``), SimCLR-style
    losses (``("projection",)`` -> ``loss(z1, z2)``) and pretext tasks with targets (one view, ``target_keys``) share
    this engine. ``weight`` is passed only when the batch carries per-sample weights (RE re-weighting).
    ``engine.state.output`` holds ``loss`` and the first view's ``embedding`` (detached) for handlers. Autocast,
    the non-finite guard, clipping and AMP are :class:`~medssl_monai.engines.FitTrainer`'s; the loss is computed in
    float32.

    Args:
        view_keys: batch keys of the views.
        loss_input_keys: network output names passed to the loss, each for every view in order.
        weight_key: batch key of optional per-sample loss weights.
        target_keys: batch keys passed to the loss as keyword arguments of the same name (on the device), for
            pretext tasks with targets (the Rubik's cube's ``permutation`` and ``rotation``); none for
            joint-embedding methods.
        kwargs: :class:`~medssl_monai.engines.FitTrainer` arguments (``memory_format``, ``autocast_dtype``,
            ``nonfinite``, ``max_nonfinite``, ``clip_grad_norm``) and MONAI's ``SupervisedTrainer`` ones.
    """

    def __init__(
        self,
        *args,
        view_keys: Sequence[str] = ("view1", "view2"),
        loss_input_keys: Sequence[str] = ("prediction", "projection"),
        weight_key: str = "weight",
        target_keys: Sequence[str] = (),
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.view_keys = tuple(view_keys)
        self.loss_input_keys = tuple(loss_input_keys)
        self.weight_key = weight_key
        self.target_keys = tuple(target_keys)

    def _batch(self, batchdata: dict) -> tuple[list[torch.Tensor], dict]:
        missing = [k for k in (*self.view_keys, *self.target_keys) if k not in batchdata]
        if missing:
            raise KeyError(f"SSLTrainer: batch has no {missing} (keys: {list(batchdata)}); check the view generator.")
        views = [self.to_device(batchdata[k]) for k in self.view_keys]
        kwargs = {k: self.to_device(batchdata[k], memory_format=False) for k in self.target_keys}
        if self.weight_key in batchdata:
            kwargs["weight"] = self.to_device(batchdata[self.weight_key], memory_format=False)
        return views, kwargs

    def compute_loss(self, engine: SSLTrainer, batchdata: dict) -> tuple[torch.Tensor, dict]:
        views, kwargs = self._batch(batchdata)
        with self.autocast():
            outputs = [engine.network(v) for v in views]
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        # the loss in float32 (batch statistics and normalisations are not safe in half precision)
        inputs = [out[k].float() for k in self.loss_input_keys for out in outputs]
        loss = engine.loss_function(*inputs, **kwargs)
        return loss, {"embedding": outputs[0]["embedding"].detach().float(), "_loss_inputs": inputs}

    def loss_terms(self, engine: SSLTrainer, outputs: dict):
        terms = getattr(engine.loss_function, "terms", None)
        return terms(*outputs["_loss_inputs"]) if terms else None
