"""Resumable training checkpoints: save every N epochs, resume from the newest, refuse a different run."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from ...utils import atomic_write_text
from ..rng import RandomStates

__all__ = ["ResumableCheckpoint", "read_run_config"]

logger = logging.getLogger(__name__)

_EPOCH = re.compile(r"epoch=(\d+)")


def read_run_config(ckpt: str | os.PathLike) -> dict:
    """The training run's settings for the model ``ckpt`` (``<run>/models/model.pt``): ``<run>/checkpoints/
    run_config.json`` written by :class:`ResumableCheckpoint`, else a ``run_config.json`` beside ``ckpt`` (how a
    bundle ships ``models/model.pt``), or ``{}`` when there is none. Inference and evaluation configs read the
    architecture and preprocessing of a model from it.

    Raises ``FileNotFoundError`` naming the path when ``ckpt`` does not exist."""
    path = Path(ckpt)
    if not path.is_file():
        raise FileNotFoundError(
            f"model checkpoint '{path}' not found: train one first (python -m monai.bundle run --config_file "
            "bundles/<bundle>/configs/train.json ...) and pass its models/model.pt with --ckpt PATH."
        )
    for config in (path.resolve().parent.parent / "checkpoints" / "run_config.json", path.parent / "run_config.json"):
        if config.is_file():
            return json.loads(config.read_text(encoding="utf-8"))
    return {}


class ResumableCheckpoint:
    """Save a resumable checkpoint every ``save_interval`` epochs and resume from the newest one at start.

    The checkpoint holds ``objects`` (model, optimizer, LR scheduler ...) plus the trainer's own state (epoch and
    iteration counters) and every random stream of the run (:class:`~medssl_monai.engines.RandomStates`: the global
    generators, the augmentation transforms and loader generators of the trainer and its handlers), both added at ``attach`` (a config
    cannot reference the trainer from its handlers). Restarting a killed run with the same command (SIGTERM, SIGINT,
    a crash, mid-epoch or not) continues from its last completed epoch with the same weights, optimizer, LR schedule
    and random streams: on CPU it ends with bit-identical weights to an unbroken run of the same seed (tested; a
    checkpoint written before 0.5.0 has no random states and resumes with fresh ones). With no checkpoint in
    ``save_dir`` it starts from scratch.
    Saving is Ignite's ``Checkpoint`` with an atomic ``DiskSaver`` (a temporary file, then a rename: a kill during the
    write never leaves a half-written checkpoint; MONAI's ``CheckpointSaver`` writes in place); loading is Ignite's
    ``Checkpoint.load_objects`` on the file read once with ``torch.load(weights_only=True)``, the newest checkpoint that
    can be read.
    Files are ``<save_dir>/checkpoint_epoch=<N>.pt``; the newest ``n_saved`` are kept.

    ``run_config`` (the settings that define a run: data, seed, epochs, batch size ...) is written to
    ``<save_dir>/run_config.json``; resuming with different settings is refused with a message naming them, instead of
    silently continuing another run's weights and schedule.

    Under DDP every rank loads the checkpoint and rank 0 alone writes (Ignite's ``DiskSaver``); save the unwrapped
    module (not the ``DistributedDataParallel`` wrapper), so that checkpoints load in single-process runs too.

    The checkpoint is written after every other handler of the epoch's end (the saver is registered when the run
    starts, so it runs last whatever the order of the handler list): it holds the state after the LR step and any
    batch-norm recalibration, and the random streams as the next epoch will find them.
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

    def _newest_readable(self, saved: list[tuple[int, Path]]) -> tuple[int, Path, dict]:
        """The newest checkpoint that loads; an unreadable newer one (a disk that filled up, a copy cut short) is
        reported and skipped, not deleted."""
        for epoch, path in reversed(saved):
            try:
                return epoch, path, torch.load(path, map_location=self.map_location, weights_only=True)
            except Exception as err:  # noqa: BLE001 - any unreadable file: fall back to the previous checkpoint
                logger.warning(
                    "Checkpoint %s cannot be read (%s: %s); trying an older one.", path, type(err).__name__, err
                )
        raise ValueError(
            f"no checkpoint in {self.save_dir} can be read ({len(saved)} found): delete the folder to start over."
        )

    def attach(self, engine: Engine) -> None:
        rng = RandomStates([engine])
        objects = {**self.objects, "trainer": engine, "rng": rng}
        saved = self._saved()
        writer = _is_rank_zero()
        if not saved:
            logger.info("No checkpoint in %s: starting from scratch.", self.save_dir)
            if self.run_config and writer:
                atomic_write_text(
                    self.save_dir / "run_config.json", json.dumps(self.run_config, indent=2, sort_keys=True)
                )
        else:
            self._check_run_config()
            epoch, path, stored = self._newest_readable(saved)
            logger.info("Resuming from %s.", path)
            max_epochs = getattr(engine.state, "max_epochs", None)
            if max_epochs is not None and epoch >= max_epochs:
                logger.warning(
                    "%s is the last epoch of this run: nothing left to train. Use another --output_dir for a new run.",
                    path.name,
                )
            load = {k: v for k, v in objects.items() if k != "rng" or "rng" in stored}

            def restore(engine: Engine) -> None:
                # the checkpoint read once above (as MONAI's CheckpointLoader would read it again); the run's own
                # max_epochs is kept, as CheckpointLoader keeps it
                max_epochs = engine.state.max_epochs
                Checkpoint.load_objects(to_load=load, checkpoint=stored)
                if max_epochs is not None and engine.state.epoch > max_epochs:
                    raise ValueError(
                        f"{path} is at epoch {engine.state.epoch}, beyond this run's {max_epochs} epochs: pass more "
                        "--epochs or another --output_dir."
                    )
                engine.state.max_epochs = max_epochs
                stored.clear()  # once: the weights now live in the objects
                engine.remove_event_handler(restore, Events.STARTED)
                logger.info("Restored all variables from %s.", path)

            engine.add_event_handler(Events.STARTED, restore)

        def register_saver(engine: Engine) -> None:
            if registered:
                return
            registered.append(True)
            # registered when the run starts, so it runs after every handler attached before (module docstring).
            # Every rank builds the saver (Ignite's Checkpoint runs a collective at construction); its DiskSaver
            # writes on rank 0 only.
            # Ignite's DiskSaver with atomic=True (temporary file, then rename); MONAI's CheckpointSaver writes in
            # place, which a kill during the write leaves truncated (found by tests/test_resume_exact.py)
            saver = Checkpoint(
                to_save=objects,
                save_handler=DiskSaver(str(self.save_dir), require_empty=False, atomic=True),
                filename_prefix="",  # Ignite names it "checkpoint_epoch=N.pt"
                score_function=lambda e: e.state.epoch,
                score_name="epoch",
                n_saved=self.n_saved,
            )
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.save_interval), saver)
            if writer:
                engine.add_event_handler(Events.EPOCH_COMPLETED, self._prune)

        registered: list[bool] = []
        engine.add_event_handler(Events.STARTED, register_saver)


def _is_rank_zero() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or (
        torch.distributed.get_rank() == 0
    )
