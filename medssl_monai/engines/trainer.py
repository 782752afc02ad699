"""A MONAI trainer for joint-embedding SSL: several views in, one loss over the network's named outputs."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from monai.data import MetaTensor
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents

from .nonfinite import NonFiniteLossGuard

__all__ = ["SSLTrainer"]


def _plain(x) -> torch.Tensor:
    """A plain tensor (MetaTensor metadata is not needed past the data pipeline and slows every op)."""
    return x.as_tensor() if isinstance(x, MetaTensor) else torch.as_tensor(x)


class SSLTrainer(SupervisedTrainer):
    """:class:`monai.engines.SupervisedTrainer` whose iteration runs an SSL method instead of image -> label.

    Each iteration moves the views ``view_keys`` of the batch to the device, runs the network on each view (an
    :class:`~medssl_monai.networks.SSLNetwork` returning ``{"embedding", "projection", "prediction"}``) and calls::

        loss_function(*[out[k] for k in loss_input_keys for out in view_outputs],
                      **{k: batch[k] for k in target_keys}, weight=batch[weight_key])

    so SimSiam (``loss_input_keys=("prediction", "projection")`` -> ``loss(p1, p2, z1, z2)``) and SimCLR-style
    losses (``("projection",)`` -> ``loss(z1, z2)``) share this engine. ``weight`` is passed only when the batch
    carries per-sample weights (RE re-weighting). Everything else (handlers, AMP, events, ``optim_set_to_none``)
    is MONAI's. ``engine.state.output`` holds ``loss`` and the first view's ``embedding`` (detached) for handlers.

    The network runs under autocast (MONAI's CUDA ``amp=True``, or ``autocast_dtype="bfloat16"`` on any device, e.g.
    a CPU with AVX512-BF16); the loss is always computed in float32. Before the backward pass the loss is checked
    (:class:`~medssl_monai.engines.NonFiniteLossGuard`): a NaN or infinite loss stops training with an error naming
    the iteration and the loss terms (``nonfinite="raise"``, default) or skips the step (``"skip"``).

    Args:
        view_keys: batch keys of the views.
        loss_input_keys: network output names passed to the loss, each for every view in order.
        weight_key: batch key of optional per-sample loss weights.
        target_keys: batch keys passed to the loss as keyword arguments of the same name (on the device), for
            pretext tasks with targets (the Rubik's cube's ``permutation`` and ``rotation``); none for
            joint-embedding methods.
        memory_format: ``"channels_last_3d"`` (or ``"channels_last"`` in 2D) converts the network's weights and
            every view to that layout; ``None`` keeps PyTorch's default (contiguous).
        autocast_dtype: ``"bfloat16"`` or ``"float16"`` to run the network's forward under ``torch.autocast`` on the
            engine's device (None: full precision, or MONAI's AMP when ``amp=True``).
        nonfinite: ``"raise"`` or ``"skip"``, what a non-finite loss does.
        max_nonfinite: with ``"skip"``, the number of skipped steps after which training stops anyway.
        clip_grad_norm: clip the global gradient norm to this value before each optimiser step
            (``torch.nn.utils.clip_grad_norm_``; the norm before clipping is ``engine.state.output["grad_norm"]``);
            None: no clipping.
        kwargs: :class:`~monai.engines.SupervisedTrainer` arguments (``decollate`` defaults to False here).
    """

    def __init__(
        self,
        *args,
        view_keys: Sequence[str] = ("view1", "view2"),
        loss_input_keys: Sequence[str] = ("prediction", "projection"),
        weight_key: str = "weight",
        target_keys: Sequence[str] = (),
        memory_format: str | None = None,
        autocast_dtype: str | None = None,
        nonfinite: str = "raise",
        max_nonfinite: int | None = 100,
        clip_grad_norm: float | None = None,
        **kwargs,
    ) -> None:
        kwargs.setdefault("decollate", False)
        super().__init__(*args, **kwargs)
        self.view_keys = tuple(view_keys)
        self.loss_input_keys = tuple(loss_input_keys)
        self.weight_key = weight_key
        self.target_keys = tuple(target_keys)
        self.memory_format = getattr(torch, memory_format) if memory_format else torch.contiguous_format
        if memory_format:
            self.network.to(memory_format=self.memory_format)
        if autocast_dtype not in (None, "bfloat16", "float16"):
            raise ValueError(f"autocast_dtype must be None, 'bfloat16' or 'float16', got {autocast_dtype!r}.")
        self.autocast_dtype = getattr(torch, autocast_dtype) if autocast_dtype else None
        self.nonfinite_guard = NonFiniteLossGuard(nonfinite, max_nonfinite)
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be positive or None, got {clip_grad_norm!r}.")
        self.clip_grad_norm = clip_grad_norm

    def _clip(self, engine: SSLTrainer) -> None:
        if self.clip_grad_norm is not None:
            if engine.amp and engine.scaler is not None:
                engine.scaler.unscale_(engine.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(engine.network.parameters(), self.clip_grad_norm)
            engine.state.output["grad_norm"] = norm.detach()

    def _views(self, engine: SSLTrainer, batchdata: dict) -> list[torch.Tensor]:
        missing = [k for k in self.view_keys if k not in batchdata]
        if missing:
            raise KeyError(f"SSLTrainer: batch has no {missing} (keys: {list(batchdata)}); check the view generator.")
        return [
            _plain(batchdata[k])
            .to(engine.state.device, non_blocking=engine.non_blocking)
            .contiguous(memory_format=self.memory_format)
            for k in self.view_keys
        ]

    def _autocast(self, engine: SSLTrainer):
        """MONAI's CUDA AMP (``amp=True``), else ``autocast_dtype`` on the engine's device, else nothing."""
        device_type = torch.device(engine.state.device).type
        if engine.amp and engine.scaler is not None:
            return torch.autocast("cuda", **engine.amp_kwargs)
        if self.autocast_dtype is not None:
            return torch.autocast(device_type, dtype=self.autocast_dtype)
        return contextlib.nullcontext()

    def _iteration(self, engine: SSLTrainer, batchdata: dict) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        views = self._views(engine, batchdata)
        missing = [k for k in self.target_keys if k not in batchdata]
        if missing:
            raise KeyError(f"SSLTrainer: batch has no target {missing} (keys: {list(batchdata)}).")
        kwargs = {k: _plain(batchdata[k]).to(engine.state.device) for k in self.target_keys}
        if self.weight_key in batchdata:
            kwargs["weight"] = _plain(batchdata[self.weight_key]).to(engine.state.device)
        engine.state.output = {}
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        buffers = self.nonfinite_guard.snapshot(engine.network)
        with self._autocast(engine):
            outputs = [engine.network(v) for v in views]
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        # the loss in float32 (batch statistics and normalisations are not safe in half precision)
        inputs = [out[k].float() for k in self.loss_input_keys for out in outputs]
        loss = engine.loss_function(*inputs, **kwargs)
        engine.state.output.update(loss=loss, embedding=outputs[0]["embedding"].detach().float())
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        terms = getattr(engine.loss_function, "terms", None)
        if self.nonfinite_guard.check(engine, loss, lambda: terms(*inputs) if terms else {}, buffers):
            if engine.amp and engine.scaler is not None:
                engine.scaler.scale(loss).backward()
                engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
                self._clip(engine)
                engine.scaler.step(engine.optimizer)
                engine.scaler.update()
            else:
                loss.backward()
                engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
                self._clip(engine)
                engine.optimizer.step()
        engine.state.output["loss"] = loss.detach()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
