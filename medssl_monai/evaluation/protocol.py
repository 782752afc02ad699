"""The evaluation protocol of Li et al., MICCAI 2021 (Sec. 3-4, Table 1): every feature set (traditional radiomics,
3DSiam, 3DSiam+SE/RE and their concatenations) and every other method (the supervised baseline) is evaluated on the
same stratified five-fold splits, with full and with 50% of the training labels."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .metrics import classification_metrics, minority_class, resolve_positive_class
from .splits import Split, check_labels, stratified_splits
from .svm import DEFAULT_C_GRID, LinearSVMClassifier, as_blocks

__all__ = ["Predictor", "run_protocol", "summarise_folds"]

#: A method evaluated on the same splits: takes a :class:`Split`, returns ``(y_pred, scores)`` for ``split.test``;
#: ``scores`` of shape ``(n_test,)`` (binary: the positive-class score), ``(n_test, n_classes)`` (columns in sorted
#: class order) or None (no AUC).
Predictor = Callable[[Split], tuple[np.ndarray, np.ndarray | None]]

STD_DDOF = 1  # sample standard deviation over folds


def summarise_folds(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "folds"}`` of per-fold values; ``std`` is the sample standard deviation (ddof=1), the
    estimate of fold-to-fold spread (population std would shrink it by ``sqrt((k-1)/k)``, 0.89 for 5 folds)."""
    v = np.asarray(values, dtype=float)
    std = float(np.std(v, ddof=STD_DDOF)) if len(v) > STD_DDOF else float("nan")
    return {"mean": float(np.mean(v)), "std": std, "folds": v.tolist()}


def _class_table(classes: np.ndarray, counts: np.ndarray, class_names: Mapping | Sequence | None) -> list[dict]:
    if class_names is None:
        names = [str(c) for c in classes.tolist()]
    elif isinstance(class_names, Mapping):
        missing = [c for c in classes.tolist() if c not in class_names]
        if missing:
            raise ValueError(f"class_names has no name for class(es) {missing}; it names {list(class_names)}.")
        names = [str(class_names[c]) for c in classes.tolist()]
    else:
        if len(class_names) != len(classes):
            raise ValueError(
                f"class_names lists {len(class_names)} names for {len(classes)} classes {classes.tolist()} "
                "(a sequence names the classes in sorted order; pass a dict to name them by value)."
            )
        names = [str(n) for n in class_names]
    return [{"value": c, "name": n, "count": int(k)} for c, n, k in zip(classes.tolist(), names, counts)]


def _predictor_output(name: str, out: Any, split: Split, classes: list, positive: Any) -> tuple[np.ndarray, Any]:
    """Check a predictor's ``(y_pred, scores)`` and bring scores to one column per class."""
    if not isinstance(out, tuple) or len(out) != 2:
        raise ValueError(f"predictor {name!r} must return a tuple (y_pred, scores), got {type(out).__name__}.")
    y_pred, scores = np.asarray(out[0]), out[1]
    n = len(split.test)
    if y_pred.shape != (n,):
        raise ValueError(f"predictor {name!r}, {split!r}: y_pred has shape {y_pred.shape}, expected ({n},).")
    if scores is None:
        return y_pred, None
    s = np.asarray(scores, dtype=float)
    if s.ndim == 1 and len(classes) == 2 and s.shape == (n,):
        return y_pred, (np.stack([s, -s], axis=1) if classes.index(positive) == 0 else np.stack([-s, s], axis=1))
    if s.shape != (n, len(classes)):
        expected = f"({n},) or ({n}, {len(classes)})" if len(classes) == 2 else f"({n}, {len(classes)})"
        raise ValueError(f"predictor {name!r}, {split!r}: scores have shape {s.shape}, expected {expected}.")
    return y_pred, s


def run_protocol(
    feature_sets: dict[str, list[np.ndarray]],
    labels: np.ndarray,
    *,
    extra_predictors: dict[str, Predictor] | None = None,
    positive_class: Any = "majority",
    class_names: Mapping | Sequence[str] | None = None,
    minor_class: Any = None,
    n_splits: int = 5,
    label_fractions: Sequence[float] = (1.0, 0.5),
    inner_holdout: float = 0.2,
    seed: int = 0,
    C_grid: Sequence[float] = DEFAULT_C_GRID,
    class_weight: dict | str | None = None,
    ids: Sequence[str] | None = None,
    output_dir: str | os.PathLike | None = None,
    progress: bool = True,
    groups: Sequence | np.ndarray | None = None,
    title: str = "linear SVM on fixed features, stratified k-fold cross-validation",
) -> list[dict]:
    """Evaluate each feature set with :class:`~.svm.LinearSVMClassifier` (and each extra predictor) on the splits of
    :func:`~.splits.stratified_splits`, one record per (feature set or predictor) x label fraction.

    ``feature_sets`` maps a row name (``"Trad. radiomics"``, ``"3DSiam+SE"``, ``"Trad.+3DSiam+SE"`` ...) to its feature
    blocks (arrays ``(n, d_b)``, rows aligned with ``labels``), each standardised on its own and then concatenated.
    ``extra_predictors`` (e.g. ``{"Supervised": fn}``) are called with each :class:`Split`; see :data:`Predictor`.

    ``positive_class`` (binary tasks): a class value or ``"majority"`` / ``"minority"`` (Li et al.'s positive class
    H-grade is BraTS's majority class, so their specificity is the minor class's recall). ``minor_class``
    (multi-class): default the class with the fewest samples in ``labels``. ``class_names``: a dict value -> name or
    a list in sorted class order, used in the reports.

    Each record: ``feature_set``, ``method``, ``label_fraction``, ``n_folds``, ``n_features`` (None for predictors),
    ``classes``, ``positive_class``, ``roc_class`` (the class whose score the ROC uses: the positive class, or the
    minor class of a multi-class task), ``metrics`` (per metric ``mean``, ``std`` (sample std over folds, ddof=1),
    ``folds`` and ``pooled``: the metric over the union of the test folds, each sample counted once; pooled AUC ranks
    scores of different fold models together), ``chosen_C`` per fold (None for predictors) and ``predictions`` per
    fold (``fold``, ``test_index``, ``y_true``, ``y_pred``, ``scores`` with one column per class) for ROC curves.

    ``groups`` (one patient/group id per sample): grouped folds, a group never split (see
    :func:`~.splits.stratified_splits`).

    With ``output_dir``, writes ``results.json`` (records without predictions, plus a header whose ``protocol`` is
    ``title``), ``results.md``, ``predictions.csv`` and ``roc.png`` (full-label fraction), each atomically.
    """
    y = check_labels(labels)
    classes_arr, counts = np.unique(y, return_counts=True)
    classes = classes_arr.tolist()
    binary = len(classes) == 2
    class_table = _class_table(classes_arr, counts, class_names)
    positive = resolve_positive_class(y, positive_class) if binary else None
    if binary:
        minor = classes[int(np.argmin(counts))] if counts[0] != counts[1] else None
    else:
        minor = minority_class(y) if minor_class is None else resolve_positive_class(y, minor_class)
    if ids is not None and len(ids) != len(y):
        raise ValueError(f"ids has {len(ids)} entries for {len(y)} labels.")

    sets = {name: as_blocks(blocks, len(y), name) for name, blocks in feature_sets.items()}
    predictors = dict(extra_predictors or {})
    clash = sorted(set(sets) & set(predictors))
    if clash:
        raise ValueError(f"names {clash} are both feature sets and extra predictors: give each row its own name.")
    if not sets and not predictors:
        raise ValueError("nothing to evaluate: pass at least one feature set or extra predictor.")

    splits = stratified_splits(y, n_splits, label_fractions, inner_holdout, seed, groups=groups)
    svm = LinearSVMClassifier(C_grid, class_weight=class_weight, random_state=seed)
    fractions = list(dict.fromkeys(s.label_fraction for s in splits))

    def predict(name: str, split: Split) -> tuple[np.ndarray, np.ndarray | None, float | None]:
        if name in sets:
            result = svm.fit_predict(sets[name], y, split)
            if result.classes.tolist() != classes:
                raise ValueError(f"{split!r}: the training part misses a class.")
            return result.y_pred, result.scores, result.C
        return (*_predictor_output(name, predictors[name](split), split, classes, positive), None)

    records = []
    names = [*sets, *predictors]
    with tqdm(total=len(names) * len(splits), disable=not progress, desc="linear evaluation", leave=False) as bar:
        for name in names:
            for fraction in fractions:
                per_fold, chosen, predictions = [], [], []
                for split in (s for s in splits if s.label_fraction == fraction):
                    bar.set_postfix_str(f"{name}, {fraction:.0%} labels, fold {split.fold}")
                    y_pred, scores, C = predict(name, split)
                    per_fold.append(classification_metrics(y[split.test], y_pred, scores, classes, positive, minor))
                    chosen.append(C)
                    predictions.append(_fold_predictions(split, y, y_pred, scores))
                    bar.update()
                method = "linear SVM" if name in sets else "predictor"
                records.append(
                    _record(
                        name, method, fraction, sets.get(name), per_fold, chosen, predictions, classes, positive, minor
                    )
                )

    if output_dir is not None:
        from .plots import plot_roc
        from .report import write_results

        header = {
            "protocol": title,
            "n_samples": len(y),
            "task": "binary" if binary else "multi-class",
            "classes": class_table,
            "positive_class": _named(positive, class_table),
            "minor_class": _named(minor, class_table),
            "n_splits": n_splits,
            "label_fractions": fractions,
            "inner_holdout": inner_holdout,
            "seed": seed,
            "C_grid": list(svm.C_grid),
            "selection_metric": "balanced_accuracy on the val part; ties go to the smallest C",
            "classifier": f"sklearn LinearSVC(dual='auto', class_weight={class_weight!r}), blocks standardised apart",
            "std": "sample standard deviation over folds (ddof=1)",
            "pooled": "metric over the union of the test folds (each sample once)",
            "feature_sets": {name: [b.shape[1] for b in blocks] for name, blocks in sets.items()},
            "extra_predictors": list(predictors),
        }
        out = Path(output_dir)
        write_results(records, header, out, ids=ids)
        plot_roc(records, out / "roc.png", class_table=class_table)
    return records


def _fold_predictions(split: Split, y: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None) -> dict:
    return {
        "fold": split.fold,
        "test_index": split.test.tolist(),
        "y_true": y[split.test].tolist(),
        "y_pred": y_pred.tolist(),
        "scores": None if scores is None else np.asarray(scores).tolist(),
    }


def _named(value: Any, class_table: list[dict]) -> dict | None:
    if value is None:
        return None
    return next({"value": c["value"], "name": c["name"]} for c in class_table if c["value"] == value)


def _record(
    name: str,
    method: str,
    fraction: float,
    blocks: list[np.ndarray] | None,
    per_fold: list[dict[str, float]],
    chosen: list,
    predictions: list[dict],
    classes: list,
    positive: Any,
    minor: Any,
) -> dict:
    metrics = {key: summarise_folds([m[key] for m in per_fold]) for key in per_fold[0]}
    has_scores = all(p["scores"] is not None for p in predictions)
    pooled = classification_metrics(
        np.concatenate([p["y_true"] for p in predictions]),
        np.concatenate([p["y_pred"] for p in predictions]),
        np.concatenate([p["scores"] for p in predictions]) if has_scores else None,
        classes,
        positive,
        minor,
    )
    for key, value in pooled.items():
        metrics[key]["pooled"] = value
    return {
        "feature_set": name,
        "method": method,
        "label_fraction": fraction,
        "n_folds": len(per_fold),
        "n_features": None if blocks is None else int(sum(b.shape[1] for b in blocks)),
        "classes": classes,
        "positive_class": positive,
        "roc_class": positive if len(classes) == 2 else minor,
        "metrics": metrics,
        "chosen_C": chosen,
        "predictions": predictions,
    }
