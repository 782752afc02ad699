"""Metrics of Li et al., MICCAI 2021 (Sec. 3, Table 1): sensitivity and specificity for the binary task (BraTS
H-grade vs L-grade, H-grade positive), overall and minor-class accuracy for the multi-class one (NSCLC stage I/II/III,
stage II the minor class). AUC (their Fig. 4-5) and balanced accuracy are added."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

__all__ = [
    "METRIC_NAMES",
    "classification_metrics",
    "minority_class",
    "positive_scores",
    "resolve_positive_class",
]

#: Display names of the metric keys, in report order.
METRIC_NAMES = {
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "auc": "AUC",
    "accuracy": "Accuracy",
    "minor_class_accuracy": "Minor-class accuracy",
    "balanced_accuracy": "Balanced accuracy",
}


def _counts(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.unique(np.asarray(labels), return_counts=True)


def minority_class(labels: Sequence | np.ndarray) -> Any:
    """The class with the fewest samples in ``labels`` (the paper's "minor class"); a tie is an error."""
    classes, counts = _counts(labels)
    tied = classes[counts == counts.min()]
    if len(tied) > 1:
        raise ValueError(f"classes {tied.tolist()} tie for the fewest samples ({counts.min()}): name the minor class.")
    return tied[0].item()


def resolve_positive_class(labels: Sequence | np.ndarray, positive_class: Any) -> Any:
    """``positive_class`` as a class value: a value present in ``labels``, or ``"majority"`` / ``"minority"`` for the
    class with the most / fewest samples. The paper's positive class, H-grade, is BraTS's majority class (250 of 326),
    so its specificity is the recall of the minor class."""
    classes, counts = _counts(labels)
    if isinstance(positive_class, str) and positive_class in ("majority", "minority"):
        pick = counts.max() if positive_class == "majority" else counts.min()
        tied = classes[counts == pick]
        if len(tied) > 1:
            raise ValueError(
                f"positive_class={positive_class!r} is ambiguous: classes {tied.tolist()} have {pick} samples each. "
                "Pass the class value instead."
            )
        return tied[0].item()
    if positive_class not in classes.tolist():
        raise ValueError(
            f"positive_class {positive_class!r} is not a class of the labels {classes.tolist()}; pass one of them or "
            "'majority' / 'minority'."
        )
    return classes[classes.tolist().index(positive_class)].item()


def positive_scores(scores: np.ndarray, classes: Sequence, positive_class: Any) -> np.ndarray:
    """The positive-class score: ``scores`` itself when 1-D, else its column of ``positive_class`` (columns ordered as
    ``classes``)."""
    s = np.asarray(scores, dtype=float)
    if s.ndim == 1:
        return s
    if s.ndim != 2 or s.shape[1] != len(classes):
        raise ValueError(f"scores must have shape (n,) or (n, {len(classes)}) (one column per class), got {s.shape}.")
    return s[:, list(classes).index(positive_class)]


def _recall(y_true: np.ndarray, y_pred: np.ndarray, c: Any) -> float:
    mask = y_true == c
    return float(np.mean(y_pred[mask] == c)) if mask.any() else float("nan")


def classification_metrics(
    y_true: Sequence | np.ndarray,
    y_pred: Sequence | np.ndarray,
    scores: np.ndarray | None,
    classes: Sequence,
    positive_class: Any = None,
    minor_class: Any = None,
) -> dict[str, float]:
    """Metrics of one set of test predictions.

    ``classes`` are all class values of the task (two: binary). ``scores`` are decision scores: shape ``(n,)`` (the
    positive-class score, binary only) or ``(n, len(classes))`` (columns ordered as ``classes``), or None.

    * binary (``positive_class``, default ``classes[-1]``): ``sensitivity`` (recall of the positive class),
      ``specificity`` (recall of the other class), ``auc`` (ROC AUC of the positive-class score; NaN without scores or
      with one class in ``y_true``), ``balanced_accuracy`` and ``accuracy``;
    * multi-class: ``accuracy``, ``minor_class_accuracy`` (recall of ``minor_class``; pass the class with the fewest
      samples in the whole dataset, default: the fewest in ``y_true``) and ``balanced_accuracy``.

    Balanced accuracy is the mean recall over the classes present in ``y_true``. A recall of a class absent from
    ``y_true`` is NaN.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = list(np.asarray(classes).tolist())
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of one length, got {y_true.shape} and {y_pred.shape}.")
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"classes must hold at least two distinct values, got {classes}.")
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        unknown = sorted(set(np.unique(values).tolist()) - set(classes), key=str)
        if unknown:
            raise ValueError(f"{name} holds values {unknown[:5]} that are not in classes {classes}.")
    present = [c for c in classes if (y_true == c).any()]
    balanced = float(np.mean([_recall(y_true, y_pred, c) for c in present])) if present else float("nan")
    accuracy = float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")

    if len(classes) > 2:
        minor = minority_class(y_true) if minor_class is None else minor_class
        if minor not in classes:
            raise ValueError(f"minor_class {minor!r} is not in classes {classes}.")
        return {
            "accuracy": accuracy,
            "minor_class_accuracy": _recall(y_true, y_pred, minor),
            "balanced_accuracy": balanced,
        }

    positive = classes[-1] if positive_class is None else positive_class
    if positive not in classes:
        raise ValueError(f"positive_class {positive!r} is not in classes {classes}.")
    negative = classes[1 - classes.index(positive)]
    auc = float("nan")
    if scores is not None:
        s = positive_scores(scores, classes, positive)
        if s.shape != y_true.shape:
            raise ValueError(f"scores hold {len(s)} values for {len(y_true)} samples.")
        if len(present) == 2:
            auc = float(roc_auc_score(y_true == positive, s))
    return {
        "sensitivity": _recall(y_true, y_pred, positive),
        "specificity": _recall(y_true, y_pred, negative),
        "auc": auc,
        "balanced_accuracy": balanced,
        "accuracy": accuracy,
    }
