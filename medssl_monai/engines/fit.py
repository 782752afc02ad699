"""The one training loop of the package: a MONAI ``SupervisedTrainer`` whose iteration calls a compute-loss hook.

Everything that trains here runs this loop: SSL methods (:class:`~medssl_monai.engines.SSLTrainer`), the
radiomics-deep memory-bank step (:class:`~medssl_monai.apps.radiomics_deep_contrast.RadiomicsDeepTrainer`), pretext tasks, feature probes,
fine-tuning and supervised baselines (:func:`fit`). A method plugs in by overriding :meth:`FitTrainer.compute_loss`
(and, when it keeps state outside the network such as memory banks, :meth:`FitTrainer.after_step`); autocast, the
non-finite loss guard, gradient clipping, AMP scaling and MONAI's iteration events are written once, here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from torch import nn

from .nonfinite import NonFiniteLossGuard

__all__ = ["FitTrainer", "fit", "plain_tensor"]


def plain_tensor(x) -> torch.Tensor:
    """A plain tensor (MetaTensor metadata is not needed past the data pipeline and slows every op)."""
    return x.as_tensor() if isinstance(x, MetaTensor) else torch.as_tensor(x)


def _check_run(max_epochs, loader, epoch_length) -> None:
    """Refuse settings that would train nothing instead of letting the run end silently."""
    if max_epochs is not None and (not isinstance(max_epochs, int) or max_epochs < 1):
        raise ValueError(f"epochs must be a positive integer, got {max_epochs!r}.")
    if epoch_length is None and hasattr(loader, "__len__") and len(loader) == 0:
        size = len(loader.dataset) if hasattr(loader, "dataset") and hasattr(loader.dataset, "__len__") else "?"
        batch = getattr(loader, "batch_size", "?")
        raise ValueError(
            f"the training data yield no batch: {size} sample(s) for batches of {batch} with the last partial batch "
            "dropped (batch norm needs full batches). Lower --batch_size or give more cases (--limit, --split)."
        )


class FitTrainer(SupervisedTrainer):
    """:class:`monai.engines.SupervisedTrainer` with one iteration for every training in the package.

    Each iteration: ``zero_grad`` -> ``loss, outputs = compute_loss(engine, batch)`` under autocast -> non-finite check
    (:class:`~medssl_monai.engines.NonFiniteLossGuard`) -> backward (MONAI's CUDA AMP scaler when ``amp=True``) ->
    optional gradient clipping -> optimiser step -> :meth:`after_step`. ``engine.state.output`` holds ``loss``
    (detached) and what ``compute_loss`` returned in ``outputs``, except names starting with ``_`` (private to the
    hooks: :meth:`loss_terms` and :meth:`after_step` receive all of them); MONAI's ``FORWARD_COMPLETED``,
    ``LOSS_COMPLETED``, ``BACKWARD_COMPLETED`` and ``MODEL_COMPLETED`` events fire as in MONAI's own iteration.

    The default :meth:`compute_loss` is supervised learning: ``prepare_batch`` (MONAI's) gives
    ``inputs, targets[, args, kwargs]``, then ``loss_function(network(inputs, *args, **kwargs), targets)``.

    Args:
        memory_format: ``"channels_last_3d"`` (or ``"channels_last"`` in 2D) converts the network's weights to that
            layout (inputs are converted by :meth:`to_device`); None keeps PyTorch's default.
        autocast_dtype: ``"bfloat16"`` or ``"float16"`` to run ``compute_loss``'s forward passes under
            ``torch.autocast`` on the engine's device (a CPU with AVX512-BF16 runs bfloat16 2.5-4x faster, see
            ``BENCHMARKS.md``). Hooks compute their loss in float32 (cast the network outputs with ``.float()``).
        nonfinite: ``"raise"`` (default) or ``"skip"``, what a NaN or infinite loss does.
        max_nonfinite: with ``"skip"``, the number of skipped steps after which training stops anyway.
        clip_grad_norm: clip the global gradient norm to this value before each optimiser step; the norm before
            clipping goes to ``engine.state.output["grad_norm"]``. None: no clipping.
        description: what is trained (e.g. ``"linear probe"``), named in the error of a non-finite loss.
        kwargs: :class:`~monai.engines.SupervisedTrainer` arguments (``decollate`` defaults to False here).
    """

    def __init__(
        self,
        *args,
        memory_format: str | None = None,
        autocast_dtype: str | None = None,
        nonfinite: str = "raise",
        max_nonfinite: int | None = 100,
        clip_grad_norm: float | None = None,
        description: str | None = None,
        **kwargs,
    ) -> None:
        kwargs.setdefault("decollate", False)
        _check_run(kwargs.get("max_epochs"), kwargs.get("train_data_loader"), kwargs.get("epoch_length"))
        super().__init__(*args, **kwargs)
        self.memory_format = getattr(torch, memory_format) if memory_format else torch.contiguous_format
        if memory_format:
            self.network.to(memory_format=self.memory_format)
        if autocast_dtype not in (None, "bfloat16", "float16"):
            raise ValueError(f"autocast_dtype must be None, 'bfloat16' or 'float16', got {autocast_dtype!r}.")
        self.autocast_dtype = getattr(torch, autocast_dtype) if autocast_dtype else None
        self.nonfinite_guard = NonFiniteLossGuard(nonfinite, max_nonfinite, description)
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be positive or None, got {clip_grad_norm!r}.")
        self.clip_grad_norm = clip_grad_norm

    # -- helpers for hooks ------------------------------------------------------------------------------------------
    def to_device(self, x, memory_format: bool = True) -> torch.Tensor:
        """``x`` as a plain tensor on the engine's device (in the network's memory format for 4D/5D inputs)."""
        t = plain_tensor(x).to(self.state.device, non_blocking=self.non_blocking)
        layouts = {torch.channels_last: 4, torch.channels_last_3d: 5}
        if memory_format and layouts.get(self.memory_format) == t.ndim:
            t = t.contiguous(memory_format=self.memory_format)
        return t

    def autocast(self):
        """MONAI's CUDA AMP (``amp=True``), else ``autocast_dtype`` on the engine's device, else nothing."""
        device_type = torch.device(self.state.device).type
        if self.amp and self.scaler is not None:
            return torch.autocast("cuda", **self.amp_kwargs)
        if self.autocast_dtype is not None:
            return torch.autocast(device_type, dtype=self.autocast_dtype)
        return contextlib.nullcontext()

    # -- the hooks --------------------------------------------------------------------------------------------------
    def compute_loss(self, engine: FitTrainer, batchdata: dict) -> tuple[torch.Tensor, dict]:
        """Supervised default: ``loss_function(network(inputs, *args, **kwargs).float(), targets)``."""
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        inputs, targets = batch[0], batch[1]
        args, kwargs = (tuple(batch[2]), dict(batch[3])) if len(batch) == 4 else ((), {})
        inputs = self.to_device(inputs) if isinstance(inputs, torch.Tensor) else inputs
        with self.autocast():
            pred = engine.network(inputs, *args, **kwargs)
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        loss = engine.loss_function(pred.float(), targets)
        return loss, {"pred": pred.detach()}

    def loss_terms(self, engine: FitTrainer, outputs: dict) -> Mapping[str, torch.Tensor] | None:
        """The loss's parts, named in the error message of a non-finite loss (computed only then)."""
        return None

    def after_step(self, engine: FitTrainer, batchdata: dict, outputs: dict) -> None:
        """Called after a successful optimiser step (not after a skipped one): state outside the network."""

    # -- the one iteration ------------------------------------------------------------------------------------------
    def _clip(self, engine: FitTrainer) -> None:
        if self.clip_grad_norm is not None:
            if engine.amp and engine.scaler is not None:
                engine.scaler.unscale_(engine.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(engine.network.parameters(), self.clip_grad_norm)
            engine.state.output["grad_norm"] = norm.detach()

    def _iteration(self, engine: FitTrainer, batchdata: dict) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        engine.state.output = {}
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        buffers = self.nonfinite_guard.snapshot(engine.network)
        loss, outputs = self.compute_loss(engine, batchdata)
        engine.state.output.update({k: v for k, v in outputs.items() if not k.startswith("_")}, loss=loss)
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        if self.nonfinite_guard.check(engine, loss, lambda: self.loss_terms(engine, outputs) or {}, buffers):
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
            self.after_step(engine, batchdata, outputs)
        engine.state.output["loss"] = loss.detach()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output


def fit(
    network: nn.Module,
    loss_function: Callable,
    data: Iterable,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    prepare_batch: Callable | None = None,
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    on_epoch_completed: Callable[[Engine], None] | None = None,
    handlers: Sequence = (),
    device: str | torch.device = "cpu",
    **kwargs,
) -> FitTrainer:
    """Train ``network`` for ``epochs`` with :class:`FitTrainer` (supervised :meth:`~FitTrainer.compute_loss`) and
    return the finished engine; for probes, fine-tuning and baselines that are not bundle workflows.

    ``lr_scheduler`` steps once per epoch (after ``on_epoch_completed`` and ``handlers``, objects with
    ``attach(engine)`` such as :class:`~medssl_monai.engines.BestEpoch`). ``engine.state.metrics`` holds
    ``loss_history`` (mean training loss per epoch, sample-weighted) and ``lr_history`` (the first parameter
    group's lr in each epoch). ``kwargs`` go to :class:`FitTrainer` (``memory_format``, ``autocast_dtype``,
    ``nonfinite``, ``clip_grad_norm`` ...).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    if prepare_batch is not None:
        kwargs["prepare_batch"] = prepare_batch
    trainer = FitTrainer(
        device=torch.device(device),
        max_epochs=int(epochs),
        train_data_loader=data,
        network=network,
        optimizer=optimizer,
        loss_function=loss_function,
        **kwargs,
    )
    totals = {"loss": 0.0, "n": 0}
    for handler in handlers:
        handler.attach(trainer)

    @trainer.on(Events.EPOCH_STARTED)
    def _start(engine: Engine) -> None:
        totals.update(loss=0.0, n=0)
        engine.state.metrics.setdefault("lr_history", []).append(optimizer.param_groups[0]["lr"])

    @trainer.on(Events.ITERATION_COMPLETED)
    def _accumulate(engine: Engine) -> None:
        n = len(engine.state.output["pred"]) if "pred" in engine.state.output else 1
        totals["loss"] += float(engine.state.output["loss"]) * n
        totals["n"] += n

    @trainer.on(Events.EPOCH_COMPLETED)
    def _end(engine: Engine) -> None:
        engine.state.metrics.setdefault("loss_history", []).append(totals["loss"] / max(totals["n"], 1))
        if on_epoch_completed is not None:
            on_epoch_completed(engine)
        if lr_scheduler is not None:
            lr_scheduler.step()

    trainer.run()
    return trainer
