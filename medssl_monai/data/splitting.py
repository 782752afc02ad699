"""Stratified train/val/test split of a labelled set that ships without one (Chattopadhyay et al., ICIP 2023, Sec. 2.2:
"randomly split into train, validation and test sets in the ratios 70%, 10% and 20%")."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import train_test_split

__all__ = ["stratified_split"]


def stratified_split(labels: Sequence | np.ndarray, fractions: Sequence[float] = (0.7, 0.1, 0.2), seed: int = 0):
    """Index arrays (sorted) of one part per fraction, each class spread over the parts in ``fractions``.

    Peels the parts off from the last: with ``(0.7, 0.1, 0.2)``, a stratified
    ``sklearn.model_selection.train_test_split`` takes ``round(0.2 N)`` samples as test, a second one takes
    ``round(0.1 N)`` of the rest as val; train is what remains.
    Deterministic under ``seed``. Fractions must be positive and sum to 1.

    Raises ``ValueError`` naming the class when a class has fewer than ``ceil(1 / min(fractions))`` samples (10 for
    70/10/20: fewer cannot give every part one sample of the class), or when a part still misses a class.
    """
    y = np.asarray(labels)
    fr = [float(f) for f in fractions]
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {y.shape}.")
    if len(fr) < 2 or min(fr) <= 0 or not math.isclose(sum(fr), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must be at least two positive values summing to 1, got {tuple(fractions)}.")
    need = math.ceil(1.0 / min(fr) - 1e-9)
    classes, counts = np.unique(y, return_counts=True)
    small = [f"{c.item()!r} ({n})" for c, n in zip(classes, counts) if n < need]
    if small:
        raise ValueError(
            f"class(es) {', '.join(small)} have fewer than {need} samples, too few for a stratified split "
            f"{tuple(fr)} (every part needs each class). Merge or drop them, or change the fractions."
        )
    rest = np.arange(len(y))
    parts: list[np.ndarray] = []
    for f in fr[:0:-1]:
        size = max(round(f * len(y)), len(classes))  # a count, not a float: no rounding drift between the peels
        rest, part = train_test_split(rest, test_size=size, stratify=y[rest], random_state=seed)
        parts.append(np.sort(part))
    parts.append(np.sort(rest))
    parts = parts[::-1]
    for i, part in enumerate(parts):
        missing = sorted(set(classes.tolist()) - set(y[part].tolist()))
        if missing:
            raise ValueError(f"part {i} (fraction {fr[i]:g}) of the stratified split misses class(es) {missing}.")
    return parts
