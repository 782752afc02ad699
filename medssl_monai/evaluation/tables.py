"""Feature tables for the evaluation: read the ``id,[label,]f0,f1,...`` CSV of
:class:`~medssl_monai.engines.EmbeddingWriter` and align several tables (embeddings, radiomics) to one case order, so
that fused features ``f = [f_trad, f_SSL]`` always come from the same subjects (Li et al., MICCAI 2021, Sec. 3)."""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["align_tables", "load_embedding_csv"]


def _first(items: Sequence, k: int = 5) -> str:
    shown = ", ".join(repr(i) for i in list(items)[:k])
    return f"{shown}, ... ({len(items)} in all)" if len(items) > k else shown


def align_tables(tables: dict[str, tuple[Sequence[str], np.ndarray]], ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Reorder the rows of each table ``name -> (row_ids, values)`` to ``ids``; rows of other cases are dropped.

    Raises ``ValueError`` naming the table and the first few ids when a table lacks some of ``ids`` or lists an id
    twice, when a table's ids and rows differ in number, or when ``ids`` repeats an id.
    """
    wanted = [str(i) for i in ids]
    repeated = [i for i, n in Counter(wanted).items() if n > 1]
    if repeated:
        raise ValueError(f"ids repeat {len(repeated)} id(s): {_first(repeated)}.")
    aligned = {}
    for name, (row_ids, values) in tables.items():
        row_ids = [str(i) for i in row_ids]
        values = np.asarray(values)
        if values.ndim == 0 or len(values) != len(row_ids):
            raise ValueError(f"table {name!r}: {len(row_ids)} ids for {values.shape[0] if values.ndim else 0} rows.")
        twice = [i for i, n in Counter(row_ids).items() if n > 1]
        if twice:
            raise ValueError(f"table {name!r} lists {len(twice)} id(s) more than once: {_first(twice)}.")
        position = {i: k for k, i in enumerate(row_ids)}
        missing = [i for i in wanted if i not in position]
        if missing:
            raise ValueError(
                f"table {name!r} lacks {len(missing)} of the {len(wanted)} requested ids: {_first(missing)}."
            )
        aligned[name] = values[[position[i] for i in wanted]]
    return aligned


def _parse_label(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def load_embedding_csv(path: str | os.PathLike) -> tuple[list[str], np.ndarray | None, np.ndarray]:
    """Read a CSV ``id,[label,]f0,f1,...`` (the layout of :class:`~medssl_monai.engines.EmbeddingWriter`).

    Returns ``(ids, labels, values)``: ``labels`` is None without a ``label`` column, else an array (ints when every
    label is an integer, floats when every one is a number, strings otherwise); ``values`` is float ``(n, d)``.
    Raises ``ValueError`` naming the file and line for a missing header, a row with the wrong number of fields, an
    empty label, a non-numeric value, NaN/inf, or a repeated id.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or not rows[0] or rows[0][0].strip() != "id":
        raise ValueError(f"{path}: the first line must be a header starting with 'id' (id,[label,]f0,f1,...).")
    header = [h.strip() for h in rows[0]]
    has_label = len(header) > 1 and header[1] == "label"
    start = 2 if has_label else 1
    if len(header) <= start:
        raise ValueError(f"{path}: the header names no feature columns after {', '.join(header)}.")
    ids, labels, values = [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not field.strip() for field in row):
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}.")
        ids.append(row[0].strip())
        if has_label:
            if not row[1].strip():
                raise ValueError(f"{path}, line {line} (id {ids[-1]!r}): empty label.")
            labels.append(_parse_label(row[1].strip()))
        try:
            numbers = [float(v) for v in row[start:]]
        except ValueError:
            bad = next(v for v in row[start:] if not _is_float(v))
            raise ValueError(f"{path}, line {line} (id {ids[-1]!r}): non-numeric value {bad!r}.") from None
        if not all(math.isfinite(v) for v in numbers):
            raise ValueError(f"{path}, line {line} (id {ids[-1]!r}): NaN or infinite value.")
        values.append(numbers)
    if not ids:
        raise ValueError(f"{path}: no data rows after the header.")
    twice = [i for i, n in Counter(ids).items() if n > 1]
    if twice:
        raise ValueError(f"{path}: {len(twice)} id(s) appear more than once: {_first(twice)}.")
    label_array = None
    if has_label:
        kinds = {type(v) for v in labels}
        label_array = np.asarray(labels if kinds <= {int, float} else [str(v) for v in labels])
    return ids, label_array, np.asarray(values, dtype=float)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
