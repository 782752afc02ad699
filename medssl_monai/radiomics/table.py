"""Feature tables as CSV: ``id, [label,] <feature columns>``, the layout of
:class:`~medssl_monai.engines.handlers.EmbeddingWriter` (whose feature columns are ``f0 .. f{D-1}``), so that one
reader, :func:`read_feature_csv`, serves radiomics features and SSL embeddings alike."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medssl_monai.utils import atomic_write_csv

__all__ = ["read_feature_csv", "write_feature_csv"]


def write_feature_csv(
    path: str | os.PathLike,
    ids: Sequence[str],
    names: Sequence[str],
    values,
    labels: Sequence[int] | None = None,
) -> Path:
    """Write ``values`` (``len(ids) x len(names)``) with ids (and integer class labels) to ``path``, atomically
    (temporary file, then rename). Floats are written in full precision (``repr``); NaN as ``nan``."""
    values = np.asarray(values, dtype=np.float64).reshape(len(ids), len(names))
    if labels is not None and len(labels) != len(ids):
        raise ValueError(f"{len(labels)} labels for {len(ids)} ids.")
    reserved = {"id", "label"} & set(names)
    if reserved:
        raise ValueError(f"feature names {sorted(reserved)} clash with the CSV's own columns.")
    header = ["id", *(["label"] if labels is not None else []), *names]
    rows = [
        [str(case), *([int(labels[i])] if labels is not None else []), *map(float, values[i])]
        for i, case in enumerate(ids)
    ]
    path = Path(path)
    atomic_write_csv(path, header, rows)
    return path


def read_feature_csv(path: str | os.PathLike) -> tuple[list[str], list[str], np.ndarray, np.ndarray | None]:
    """Read a feature or embedding CSV: ``(ids, feature names, values (N x F, float64), labels (N,) int or None)``.

    The first column must be ``id``; a second column named ``label`` holds integer class labels; every other column
    is a feature. Empty cells read as NaN.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or not rows[0] or rows[0][0] != "id":
        raise ValueError(f"'{path}' is not a feature CSV: the first column must be 'id'.")
    header = rows[0]
    has_label = len(header) > 1 and header[1] == "label"
    start = 2 if has_label else 1
    names = header[start:]
    ids: list[str] = []
    labels: list[int] = []
    values = np.empty((len(rows) - 1, len(names)), dtype=np.float64)
    for n, row in enumerate(rows[1:]):
        line = n + 2
        if len(row) != len(header):
            raise ValueError(f"'{path}', line {line}: {len(row)} fields, the header has {len(header)}.")
        ids.append(row[0])
        if has_label:
            try:
                labels.append(int(row[1]))
            except ValueError as err:
                raise ValueError(f"'{path}', line {line} (id {row[0]}): label {row[1]!r} is not an integer.") from err
        try:
            values[n] = [float(v) if v != "" else math.nan for v in row[start:]]
        except ValueError as err:
            raise ValueError(f"'{path}', line {line} (id {row[0]}): {err}.") from err
    return ids, names, values, (np.asarray(labels, dtype=np.int64) if has_label else None)
