"""Share of each epoch spent waiting for data."""

from __future__ import annotations

import time

from ignite.engine import Engine, Events

__all__ = ["DataWaitTimer"]


class DataWaitTimer:
    """Share of each epoch's wall time spent waiting for the data loader: ``engine.state.metrics["data_wait_share"]``.

    The wait is the time between Ignite's ``GET_BATCH_STARTED`` and ``GET_BATCH_COMPLETED``; the epoch time runs from
    ``EPOCH_STARTED`` to ``EPOCH_COMPLETED``. Near 0 means the model is the bottleneck, near 1 the data pipeline.
    """

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.GET_BATCH_STARTED, self._batch_started)
        engine.add_event_handler(Events.GET_BATCH_COMPLETED, self._batch_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)

    def _epoch_started(self, engine: Engine) -> None:
        self._epoch_t0, self._wait = time.perf_counter(), 0.0

    def _batch_started(self, engine: Engine) -> None:
        self._batch_t0 = time.perf_counter()

    def _batch_completed(self, engine: Engine) -> None:
        self._wait += time.perf_counter() - self._batch_t0

    def _epoch_completed(self, engine: Engine) -> None:
        total = time.perf_counter() - self._epoch_t0
        engine.state.metrics["data_wait_share"] = self._wait / total if total > 0 else 0.0
        engine.state.metrics["epoch_seconds"] = total
