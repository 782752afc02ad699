"""Ignite handlers for SSL training and embedding export, attachable from bundle configs (``attach(engine)``)."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader, CheckpointSaver

from ..evaluation.health import representation_health
from ..utils import atomic_write_csv, atomic_write_text

__all__ = [
    "DataWaitTimer",
    "EmbeddingHealth",
    "EmbeddingWriter",
    "EpochAverage",
    "ProgressBar",
    "ResumableCheckpoint",
]

logger = logging.getLogger(__name__)


class ProgressBar:
    """A tqdm progress bar per epoch showing ``output_key`` (the loss; None: no value), Ignite's ``ProgressBar``
    with a MONAI-style ``attach(engine)``."""

    def __init__(self, output_key: str | None = "loss", persist: bool = True) -> None:
        self.output_key = output_key
        self.persist = persist

    def _transform(self, output: dict) -> dict[str, float]:
        return {self.output_key: float(output[self.output_key])}

    def attach(self, engine: Engine) -> None:
        from ignite.handlers import ProgressBar as IgniteProgressBar

        transform = self._transform if self.output_key else None
        IgniteProgressBar(persist=self.persist).attach(engine, output_transform=transform)


class EmbeddingHealth:
    """Watch for representation collapse in the training batches: embedding statistics over each epoch, into
    ``engine.state.metrics``. These are train-mode embeddings of augmented views, where batch norm spreads even a
    collapsed representation: :class:`~medssl_monai.engines.HeldOutHealth` measures what users get (eval mode).

    * ``embedding_std``: mean over dimensions of the per-dimension std of L2-normalised embeddings. SimSiam
      (Chen & He, CVPR 2021, Sec. 4.1) shows it stays near ``1/sqrt(D)`` when healthy and drops to 0 on collapse;
    * ``embedding_std_ratio``: ``embedding_std * sqrt(D)`` (about 1 healthy, about 0 collapsed);
    * ``embedding_effective_rank``: :func:`effective_rank` of the epoch's embeddings.

    Attach it before ``StatsHandler`` / ``TensorBoardStatsHandler`` so they print and plot these every epoch.
    A ratio under ``warn_below`` logs a warning. At most ``max_samples`` recent embeddings are kept.
    """

    def __init__(self, output_key: str = "embedding", max_samples: int = 4096, warn_below: float = 0.1) -> None:
        self.output_key = output_key
        self.max_samples = max_samples
        self.warn_below = warn_below
        self._buffer: list[torch.Tensor] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._compute)

    def _reset(self, engine: Engine) -> None:
        self._buffer = []

    def _collect(self, engine: Engine) -> None:
        self._buffer.append(engine.state.output[self.output_key].detach().float().cpu())
        if sum(len(b) for b in self._buffer) > 2 * self.max_samples:
            self._buffer = [torch.cat(self._buffer)[-self.max_samples :]]

    def _compute(self, engine: Engine) -> None:
        if not self._buffer:
            return
        stats = self.statistics(torch.cat(self._buffer)[-self.max_samples :])
        engine.state.metrics.update(stats)
        if not stats["embedding_std_ratio"] >= self.warn_below:  # NaN included
            logger.warning(
                "Epoch %d: embedding std ratio %.3f < %.2f: the representation may be collapsing.",
                engine.state.epoch,
                stats["embedding_std_ratio"],
                self.warn_below,
            )

    @staticmethod
    def statistics(embeddings: torch.Tensor) -> dict[str, float]:
        """``embedding_std``, ``embedding_std_ratio``, ``embedding_effective_rank`` (NaN for non-finite embeddings)."""
        if len(embeddings) < 2:
            return {"embedding_std": 0.0, "embedding_std_ratio": 0.0, "embedding_effective_rank": 1.0}
        stats = representation_health(embeddings)
        return {f"embedding_{k}": stats[k] for k in ("std", "std_ratio", "effective_rank")}


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


_EPOCH = re.compile(r"epoch=(\d+)")


class ResumableCheckpoint:
    """Save a resumable checkpoint every ``save_interval`` epochs and resume from the newest one at start.

    The checkpoint holds ``objects`` (model, optimizer, LR scheduler ...) plus the trainer's own state (epoch and
    iteration counters), which is added at ``attach`` (a config cannot reference the trainer from its handlers).
    Restarting a killed run with the same command continues from its last completed epoch and gives the same LR
    schedule and optimizer state as an unbroken run; with no checkpoint in ``save_dir`` it starts from scratch. The
    random streams (shuffling, augmentation) are not saved, so a resumed run is not bit-identical to an unbroken one.
    Saving is MONAI's :class:`~monai.handlers.CheckpointSaver` (Ignite writes to a temporary file, then renames: never
    a half-written checkpoint); loading is MONAI's :class:`~monai.handlers.CheckpointLoader`
    (``torch.load(weights_only=True)``).
    Files are ``<save_dir>/checkpoint_epoch=<N>.pt``; the newest ``n_saved`` are kept.

    ``run_config`` (the settings that define a run: data, seed, epochs, batch size ...) is written to
    ``<save_dir>/run_config.json``; resuming with different settings is refused with a message naming them, instead of
    silently continuing another run's weights and schedule.

    Under DDP every rank loads the checkpoint and rank 0 alone writes (Ignite's ``DiskSaver``); save the unwrapped
    module (not the ``DistributedDataParallel`` wrapper), so that checkpoints load in single-process runs too.

    Attach it after the handlers that change saved objects at the end of an epoch (``LrScheduleHandler``): Ignite
    runs handlers of one event in attach order, and the checkpoint must hold the state after the LR step.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        objects: dict,
        save_interval: int = 1,
        n_saved: int = 2,
        map_location: str | None = "cpu",
        run_config: dict | None = None,
    ) -> None:
        self.save_dir = Path(save_dir)
        self.objects = dict(objects)
        self.save_interval = save_interval
        self.n_saved = n_saved
        self.map_location = map_location
        self.run_config = json.loads(json.dumps(run_config or {}, default=str))

    def _saved(self) -> list[tuple[int, Path]]:
        return sorted((int(m.group(1)), p) for p in self.save_dir.glob("*.pt") if (m := _EPOCH.search(p.name)))

    def _prune(self, engine: Engine) -> None:
        """Keep the newest ``n_saved`` across restarts (Ignite counts only the files of its own run)."""
        for _, path in self._saved()[: -self.n_saved]:
            path.unlink(missing_ok=True)

    def _check_run_config(self) -> None:
        stored_file = self.save_dir / "run_config.json"
        if not self.run_config or not stored_file.is_file():
            return
        stored = json.loads(stored_file.read_text())
        changed = {k for k in set(stored) | set(self.run_config) if stored.get(k) != self.run_config.get(k)}
        if changed:
            details = ", ".join(f"{k}: {stored.get(k)!r} -> {self.run_config.get(k)!r}" for k in sorted(changed))
            raise ValueError(
                f"{self.save_dir} holds checkpoints of a different run ({details}). Resume only with the same "
                "settings; to start a new run, pass another --output_dir or delete that checkpoints folder."
            )

    def attach(self, engine: Engine) -> None:
        objects = {**self.objects, "trainer": engine}
        saved = self._saved()
        writer = _is_rank_zero()
        if not saved:
            logger.info("No checkpoint in %s: starting from scratch.", self.save_dir)
            if self.run_config and writer:
                atomic_write_text(
                    self.save_dir / "run_config.json", json.dumps(self.run_config, indent=2, sort_keys=True)
                )
        else:
            epoch, path = saved[-1]
            self._check_run_config()
            logger.info("Resuming from %s.", path)
            max_epochs = getattr(engine.state, "max_epochs", None)
            if max_epochs is not None and epoch >= max_epochs:
                logger.warning(
                    "%s is the last epoch of this run: nothing left to train. Use another --output_dir for a new run.",
                    path.name,
                )
            CheckpointLoader(load_path=str(path), load_dict=objects, map_location=self.map_location).attach(engine)
        # every rank builds the saver (Ignite's Checkpoint runs a collective at construction); its DiskSaver writes on
        # rank 0 only
        CheckpointSaver(
            save_dir=str(self.save_dir),
            save_dict=objects,
            save_interval=self.save_interval,
            epoch_level=True,
            n_saved=self.n_saved,
        ).attach(engine)
        if writer:
            engine.add_event_handler(Events.EPOCH_COMPLETED, self._prune)


def _is_rank_zero() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or (
        torch.distributed.get_rank() == 0
    )


class EmbeddingWriter:
    """Write one embedding per case with its id: ``<output_dir>/<filename>`` (CSV: ``id, [label,] f0 .. f{D-1}``).

    Collects ``engine.state.output[output_key]`` and the batch's ``id`` (and ``label`` when present) over the run and
    writes at completion to a temporary file renamed into place, so an interrupted run leaves no half-written file.
    Cases the dataset could not load (see :class:`~medssl_monai.data.ReportingDataset`) are listed in
    ``<stem>_errors.csv`` with their error and left out of the embeddings; the good cases are all written.
    """

    def __init__(
        self, output_dir: str | os.PathLike, filename: str = "embeddings.csv", output_key: str = "pred"
    ) -> None:
        self.path = Path(output_dir) / filename
        self.output_key = output_key
        self.rows: list[list] = []
        self.errors: list[tuple[str, str]] = []
        self.has_label = False

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self.rows, self.errors, self.has_label = [], [], False

    def _collect(self, engine: Engine) -> None:
        batch = engine.state.batch
        self.errors.extend(batch.get("errors", []))
        pred = engine.state.output.get(self.output_key) if engine.state.output else None
        if pred is None:
            return
        pred = torch.as_tensor(pred).detach().float().cpu().reshape(len(batch["id"]), -1)
        labels = batch.get("label")
        self.has_label = labels is not None
        for i, case in enumerate(batch["id"]):
            label = [int(torch.as_tensor(labels[i]))] if labels is not None else []
            self.rows.append([case, *label, *pred[i].tolist()])

    def _write(self, engine: Engine) -> None:
        dim = len(self.rows[0]) - 1 - int(self.has_label) if self.rows else 0
        header = ["id", *(["label"] if self.has_label else []), *[f"f{i}" for i in range(dim)]]
        atomic_write_csv(self.path, header, self.rows)
        logger.info("Wrote %d embeddings of size %d to %s.", len(self.rows), dim, self.path)
        if self.errors:
            err_path = self.path.with_name(self.path.stem + "_errors.csv")
            atomic_write_csv(err_path, ["id", "error"], self.errors)
            logger.error("%d case(s) failed and were skipped (listed in %s):", len(self.errors), err_path)
            for case, message in self.errors:
                logger.error("  %s: %s", case, message)
