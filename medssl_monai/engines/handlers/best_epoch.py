"""Model selection: keep the weights of the epoch with the best validation score."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
from ignite.engine import Engine, Events
from torch import nn
from tqdm.auto import tqdm

__all__ = ["BestEpoch"]


class BestEpoch:
    """After every epoch, ``score()`` (e.g. balanced accuracy on a split's validation part; higher is better) is
    computed; the network's weights of the best epoch so far are kept, and :meth:`restore` loads them when training
    is over. A progress bar shows the score and the best epoch.

    Attributes: ``best_score``, ``best_epoch`` (0 before the first epoch).

    Args:
        network: the trained model.
        score: called with no argument after each epoch (the network is whatever the epoch left).
        name: the score's name on the progress bar.
        description: the progress bar's label.
        progress: show the bar.
    """

    def __init__(
        self,
        network: nn.Module,
        score: Callable[[], float],
        name: str = "val_score",
        description: str = "",
        progress: bool = True,
    ) -> None:
        self.network, self.score, self.name = network, score, name
        self.description, self.progress = description, progress
        self.best_score, self.best_epoch, self._state = -np.inf, 0, None

    def attach(self, engine: Engine) -> None:
        self._bar = tqdm(total=engine.state.max_epochs, desc=self.description, disable=not self.progress, leave=False)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        engine.add_event_handler(Events.COMPLETED, lambda _: self._bar.close())

    def _epoch_completed(self, engine: Engine) -> None:
        value = float(self.score())
        if value > self.best_score:
            self.best_score, self.best_epoch = value, engine.state.epoch
            self._state = copy.deepcopy(self.network.state_dict())
        self._bar.update(1)
        self._bar.set_postfix({self.name: f"{value:.3f}", "best_epoch": self.best_epoch})

    def restore(self) -> nn.Module:
        """Load the best epoch's weights into the network (and return it)."""
        if self._state is None:
            raise RuntimeError("BestEpoch.restore: no epoch has completed.")
        self.network.load_state_dict(self._state)
        return self.network
