"""Stratified cross-validation splits of Li et al., MICCAI 2021 ("Imbalance-Aware Self-Supervised Learning for 3D
Radiomic Representations", Sec. 3, "Evaluation protocol"): stratified five-fold CV, 80% of each class to train and 20%
to test per fold; 20% of the training data held out to choose hyper-parameters; Table 1 repeats everything with 50%
of the training labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

__all__ = ["Split", "check_labels", "stratified_splits"]


@dataclass(frozen=True, eq=False)
class Split:
    """One fold at one label fraction: index arrays (sorted, read-only) into the dataset.

    ``fit`` trains candidate models, ``val`` chooses their hyper-parameters, ``test`` is never seen in training;
    ``train`` (``fit`` and ``val`` together) is what the final model is refitted on.
    """

    fold: int
    label_fraction: float
    fit: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def train(self) -> np.ndarray:
        """``fit`` and ``val`` together, sorted."""
        return np.sort(np.concatenate([self.fit, self.val]))

    def __repr__(self) -> str:
        return (
            f"Split(fold={self.fold}, label_fraction={self.label_fraction:g}, fit={len(self.fit)}, "
            f"val={len(self.val)}, test={len(self.test)})"
        )


def check_labels(labels: Sequence | np.ndarray) -> np.ndarray:
    """``labels`` as a 1-D array; a clear error for an empty, multi-dimensional or missing-valued one."""
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {y.shape}.")
    if y.dtype == object and any(v is None for v in y):
        raise ValueError("labels contain None: every sample needs a class label.")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"labels contain {int((~np.isfinite(y)).sum())} NaN/inf value(s): every sample needs a class.")
    return y


def _round(x: float) -> int:
    """Round half up (``round`` would round 2.5 to 2)."""
    return int(np.floor(x + 0.5 + 1e-9))


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.sort(np.asarray(a, dtype=np.int64))
    a.setflags(write=False)
    return a


def _unit_classes(y: np.ndarray, unit: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The class of each unit (sample or group): its most frequent class, ties to the smallest class value."""
    counts = np.zeros((int(unit.max()) + 1, len(classes)), dtype=np.int64)
    np.add.at(counts, (unit, np.searchsorted(classes, y)), 1)
    return classes[counts.argmax(1)]


def stratified_splits(
    labels: Sequence | np.ndarray,
    n_splits: int = 5,
    label_fractions: Sequence[float] = (1.0, 0.5),
    inner_holdout: float = 0.2,
    seed: int = 0,
    groups: Sequence | np.ndarray | None = None,
) -> list[Split]:
    """The splits of the paper's protocol, one per (label fraction, fold), ordered by fraction then fold.

    * **test**: ``StratifiedKFold(n_splits, shuffle=True, random_state=seed)``: each class's test part holds
      ``1/n_splits`` of the class (20% for 5 folds, within one sample); the test parts of the folds partition the
      dataset.
    * **label fraction**: the training part (the other 80%) of each class is shuffled once per fold
      (``np.random.default_rng([seed, fold])``) and a fraction ``f`` keeps the first ``round(f * n_c)`` samples of
      each class ``c``. The subsets are nested: the 50% subset is part of the same fold's full training part (and of
      any larger fraction's subset).
    * **val**: the first ``round(inner_holdout * m_c)`` (at least one) of the ``m_c`` kept samples of each class, in
      the same shuffled order, are held out as ``val`` to choose hyper-parameters; the rest is ``fit``.

    * **groups** (e.g. a patient id per sample; Zhao & Yang, Sec. 3.1: "patient wise five-fold cross-validation"):
      the test folds come from ``StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)``, so a group's
      samples are all in one test fold; label fractions and the val hold-out then keep or hold out whole groups:
      each group is assigned to its most frequent class (ties: the smallest class value), and the rules above apply
      to the groups of each class instead of the samples. No group is ever split between fit, val and test.

    Deterministic under ``seed``. Raises ``ValueError`` naming the class when a class has fewer than ``n_splits``
    samples, or when a fold's fit or val part would miss a class (too few samples for the label fraction).
    """
    y = check_labels(labels)
    if not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}.")
    fractions = [float(f) for f in label_fractions]
    if not fractions or any(not 0.0 < f <= 1.0 for f in fractions):
        raise ValueError(f"label_fractions must be non-empty values in (0, 1], got {tuple(label_fractions)!r}.")
    if len(set(fractions)) != len(fractions):
        raise ValueError(f"label_fractions has duplicates: {tuple(label_fractions)!r}.")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if not 0.0 < inner_holdout < 1.0:
        raise ValueError(f"inner_holdout must be in (0, 1), got {inner_holdout!r}.")
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"labels hold a single class ({classes[0]!r}): classification needs at least two.")
    for c, n in zip(classes, counts):
        if n < n_splits:
            raise ValueError(
                f"class {c} has {n} samples; stratified {n_splits}-fold CV needs at least {n_splits}. "
                "Use fewer folds, merge the class or drop it."
            )

    if groups is None:
        kfold = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        folds = kfold.split(np.zeros(len(y)), y)
        unit = np.arange(len(y))  # every sample is its own unit
    else:
        g = np.asarray(groups)
        if g.shape != y.shape:
            raise ValueError(f"groups must give one group per sample: {g.shape} for labels {y.shape}.")
        unit = np.unique(g, return_inverse=True)[1].reshape(-1)
        n_groups = int(unit.max()) + 1
        if n_groups < n_splits:
            raise ValueError(f"{n_groups} groups cannot fill {n_splits} test folds: use fewer folds.")
        kfold = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        folds = kfold.split(np.zeros(len(y)), y, unit)
    unit_class = _unit_classes(y, unit, classes)
    per_fold: list[tuple[np.ndarray, dict]] = []
    for fold, (train_idx, test_idx) in enumerate(folds):
        rng = np.random.default_rng([int(seed), fold])
        train_units = np.unique(unit[train_idx])
        order = {c: rng.permutation(train_units[unit_class[train_units] == c]) for c in classes}
        per_fold.append((np.sort(test_idx), order))

    splits = []
    for f in fractions:
        for fold, (test_idx, order) in enumerate(per_fold):
            fit, val = [], []
            for c in classes:
                n_train = len(order[c])
                kept = order[c][: _round(f * n_train)]
                n_val = max(1, _round(inner_holdout * len(kept)))
                if len(kept) - n_val < 1:
                    raise ValueError(
                        f"fold {fold}, label fraction {f:g}: class {c} keeps {len(kept)} of its {n_train} training "
                        f"samples, so it would be missing from the {'val' if len(kept) == 0 else 'fit'} part (the "
                        "fit and val parts each need at least one sample of every class). Use a larger label "
                        "fraction or fewer folds."
                    )
                val.append(np.flatnonzero(np.isin(unit, kept[:n_val])))
                fit.append(np.flatnonzero(np.isin(unit, kept[n_val:])))
            splits.append(
                Split(fold, f, _readonly(np.concatenate(fit)), _readonly(np.concatenate(val)), _readonly(test_idx))
            )
    return splits
