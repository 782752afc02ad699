"""Embedding export: one CSV row per case, written atomically, failed cases reported."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from ignite.engine import Engine, Events

from ...utils import atomic_write_csv

__all__ = ["EmbeddingWriter"]

logger = logging.getLogger(__name__)


class EmbeddingWriter:
    """Write one embedding per case with its id: ``<output_dir>/<filename>`` (CSV: ``id, [label,] f0 .. f{D-1}``).

    Collects ``engine.state.output[output_key]`` and the batch's ``id`` (and ``label`` when present) over the run and
    writes at completion to a temporary file renamed into place, so an interrupted run leaves no half-written file.
    Cases the dataset could not load (see :class:`~medssl_monai.data.ReportingDataset`) are listed in
    ``<stem>_errors.csv`` with their error and left out of the embeddings; the good cases are all written.

    With ``head`` (a classifier on the embeddings returning class probabilities, e.g. a
    :class:`~medssl_monai.networks.LinearHead` with ``class_names``) each row also holds ``p_<class>`` per class and
    ``prediction`` (the most probable class name) after the embedding.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        filename: str = "embeddings.csv",
        output_key: str = "pred",
        head: torch.nn.Module | None = None,
    ) -> None:
        self.path = Path(output_dir) / filename
        self.output_key = output_key
        self.head = head.eval() if head is not None else None
        if head is not None and not getattr(head, "class_names", None):
            raise ValueError(
                "EmbeddingWriter: the head needs class_names (a medssl_monai.networks.LinearHead has them)."
            )
        self.class_names = [str(c) for c in head.class_names] if head is not None else []
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
        probs = None
        if self.head is not None:
            with torch.no_grad():
                probs = self.head(pred)
        for i, case in enumerate(batch["id"]):
            label = [int(torch.as_tensor(labels[i]))] if labels is not None else []
            extra = [*probs[i].tolist(), self.class_names[int(probs[i].argmax())]] if probs is not None else []
            self.rows.append([case, *label, *pred[i].tolist(), *extra])

    def _write(self, engine: Engine) -> None:
        extra = [*(f"p_{c}" for c in self.class_names), "prediction"] if self.head is not None else []
        dim = len(self.rows[0]) - 1 - int(self.has_label) - len(extra) if self.rows else 0
        header = ["id", *(["label"] if self.has_label else []), *[f"f{i}" for i in range(dim)], *extra]
        atomic_write_csv(self.path, header, self.rows)
        logger.info("Wrote %d embeddings of size %d to %s.", len(self.rows), dim, self.path)
        if self.errors:
            err_path = self.path.with_name(self.path.stem + "_errors.csv")
            atomic_write_csv(err_path, ["id", "error"], self.errors)
            logger.error("%d case(s) failed and were skipped (listed in %s):", len(self.errors), err_path)
            for case, message in self.errors:
                logger.error("  %s: %s", case, message)
