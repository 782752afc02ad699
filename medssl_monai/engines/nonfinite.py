"""What a training step does with a NaN or infinite loss: stop with a clear error (default) or skip the step."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import torch
from ignite.engine import Engine
from monai.engines.utils import IterationEvents
from torch import nn

__all__ = ["NONFINITE_POLICIES", "NonFiniteLossError", "NonFiniteLossGuard"]

logger = logging.getLogger(__name__)

NONFINITE_POLICIES = ("raise", "skip")

_REMEDY = (
    "Usual causes and remedies: a learning rate too high for the loss scale (lower --lr, or add warm-up), "
    "NaN or infinite voxels in the input (check the data), a batch too small for batch statistics (VICReg's "
    "variance/covariance, batch norm: raise --batch_size), exploding gradients (clip them: --clip_grad_norm), or fp16 "
    "overflow (turn AMP off). "
    "With nonfinite='skip' training skips such steps and counts them instead."
)


class NonFiniteLossError(FloatingPointError):
    """The loss of a training step was NaN or infinite (policy ``"raise"``)."""


class NonFiniteLossGuard:
    """Check each step's loss before the backward pass.

    A trainer calls :meth:`check` with the loss (and, when its loss can split itself, the terms) before ``backward``:

    * ``policy="raise"`` (default): raise :class:`NonFiniteLossError` naming the epoch, iteration, loss terms and
      remedies, before the optimiser step, with the batch-norm statistics of before the step put back (see
      :meth:`snapshot`), so the weights in memory and any checkpoint written on the way out stay finite;
    * ``policy="skip"``: log a warning, return False (the trainer then skips backward and the optimiser step) and
      count the step in ``engine.state.metrics["nonfinite_steps"]``; after ``max_skips`` skipped steps it raises.

    For engines whose iteration it cannot change (MONAI's :class:`~monai.engines.SupervisedTrainer`), :meth:`attach`
    checks at ``IterationEvents.LOSS_COMPLETED``, which MONAI fires before ``backward``: there only ``"raise"`` is
    possible.
    """

    def __init__(self, policy: str = "raise", max_skips: int | None = 100, description: str | None = None) -> None:
        if policy not in NONFINITE_POLICIES:
            raise ValueError(f"nonfinite policy must be one of {NONFINITE_POLICIES}, got {policy!r}.")
        self.policy = policy
        self.max_skips = max_skips
        self.description = description

    @staticmethod
    def snapshot(module: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Copies of ``module``'s buffers (batch-norm running statistics), taken before the forward pass, which
        updates them in train mode: :meth:`check` puts them back when the step fails, so a NaN batch leaves no NaN
        running statistic behind (eval mode and saved checkpoints would inherit it)."""
        return [(b, b.detach().clone()) for b in module.buffers()]

    def check(
        self,
        engine: Engine,
        loss: torch.Tensor,
        terms: Mapping[str, torch.Tensor] | Callable[[], Mapping[str, torch.Tensor]] | None = None,
        buffers: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> bool:
        """True when ``loss`` is finite; otherwise restore ``buffers`` (from :meth:`snapshot`), then raise or (policy
        ``"skip"``) count the step and return False.

        ``terms`` (the loss's parts, or a callable computing them only when needed) are named in the message.
        """
        if bool(torch.isfinite(loss.detach()).all()):
            return True
        with torch.no_grad():
            for live, saved in buffers or ():
                live.copy_(saved)
            terms = terms() if callable(terms) else terms
        parts = ", ".join(
            f"{k} {float(torch.as_tensor(v).detach().float().mean()):.6g}" for k, v in (terms or {}).items()
        )
        where = f"epoch {engine.state.epoch}, iteration {engine.state.iteration}"
        where = f"{self.description} at {where}" if self.description else where
        summary = f"non-finite loss {float(loss.detach().float().mean())} {'in' if self.description else 'at'} {where}"
        summary += f" (terms: {parts})" if parts else ""
        if self.policy == "raise":
            raise NonFiniteLossError(f"{summary}. Training stopped before the optimiser step. {_REMEDY}")
        skipped = int(engine.state.metrics.get("nonfinite_steps", 0)) + 1
        engine.state.metrics["nonfinite_steps"] = skipped
        logger.warning("%s: step skipped (%d so far).", summary, skipped)
        if self.max_skips is not None and skipped > self.max_skips:
            raise NonFiniteLossError(
                f"{skipped} non-finite steps (more than max_skips={self.max_skips}); last: {summary}. {_REMEDY}"
            )
        return False

    def attach(self, engine: Engine) -> None:
        """Check ``engine.state.output["loss"]`` at ``LOSS_COMPLETED`` (raise only; see the class docstring)."""
        if self.policy != "raise":
            raise ValueError("NonFiniteLossGuard.attach supports only policy='raise' (the engine owns its step).")
        engine.add_event_handler(IterationEvents.LOSS_COMPLETED, self._on_loss)

    def _on_loss(self, engine: Engine) -> None:
        output = engine.state.output
        loss = output.get("loss") if isinstance(output, Mapping) else None
        if loss is not None:
            self.check(engine, torch.as_tensor(loss))
