"""The trained model's final weights, written atomically when the run completes."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import torch
from ignite.engine import Engine, Events

from ...utils import atomic_write_bytes

__all__ = ["FinalModelSaver"]

logger = logging.getLogger(__name__)


class FinalModelSaver:
    """Write ``save_dict``'s state at ``Events.COMPLETED`` to ``<save_dir>/<filename>`` (default ``model.pt``).

    The file format is that of MONAI's ``CheckpointSaver(save_final=True)`` (Ignite's ``Checkpoint``): one object is
    saved as its bare ``state_dict`` (what ``networks.load_weights`` and ``monai.bundle.load`` read), several as
    ``{name: state_dict}``; a ``DistributedDataParallel``/``DataParallel`` wrapper is unwrapped. Unlike MONAI's
    saver, which deletes the previous ``model.pt`` and then writes the new one in place, the file is written to a
    temporary name and renamed (:func:`~medssl_monai.utils.atomic_write_bytes`): a kill during the write leaves the
    previous model or the new one, never a truncated file. Under DDP only rank 0 writes.
    """

    def __init__(self, save_dir: str | os.PathLike, save_dict: dict, filename: str = "model.pt") -> None:
        if not save_dict:
            raise ValueError("FinalModelSaver: save_dict is empty; pass e.g. {'model': network}.")
        self.save_dir = Path(save_dir)
        self.save_dict = dict(save_dict)
        self.filename = filename

    @property
    def path(self) -> Path:
        return self.save_dir / self.filename

    def state(self) -> dict:
        """What is written: the bare ``state_dict`` of a single object, else ``{name: state_dict}``."""
        states = {}
        for name, obj in self.save_dict.items():
            if isinstance(obj, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
                obj = obj.module
            states[name] = obj.state_dict()
        return next(iter(states.values())) if len(states) == 1 else states

    def save(self, engine: Engine | None = None) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank():
            return
        buffer = io.BytesIO()
        torch.save(self.state(), buffer)
        atomic_write_bytes(self.path, buffer.getvalue())
        logger.info("Train completed, saved final model: %s", self.path)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self.save)
