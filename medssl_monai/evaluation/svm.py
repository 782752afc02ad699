"""Linear SVM on fixed features, the classifier of Li et al., MICCAI 2021 (Sec. 3: "a supervised linear support vector
machine (SVM) classifier on the training set ... 20% of training data to optimize the hyper-parameters").

Choices the paper leaves open, made here:

* **SVM**: scikit-learn ``LinearSVC(dual="auto")``: liblinear's L2-regularised squared-hinge linear SVM, one-vs-rest
  for more than two classes; ``"auto"`` solves the primal (trust-region Newton) when there are more samples than
  features and the dual (coordinate descent) otherwise, the fast and well-converging side in each case. Both solve
  the same problem. Measured on synthetic sets (326 cases x 50-363 features, 800 x 32; every C, fold and fraction): 6 s
  in all for ``"auto"``, 20 s primal-only, 190 s and ConvergenceWarnings dual-only (the non-separable sets with more
  samples than features). ``max_iter=100_000`` is a guard; a ConvergenceWarning is left visible. The kernel SVM
  ``SVC(kernel="linear")`` (libsvm, plain hinge, unpenalised intercept) was measured and dropped: its SMO solver slows
  down with C on non-separable data (6 s for one fit on 208 x 50 random features at C=100, 146 s on 800 x 32).
  liblinear penalises the intercept like one more standardised feature (``intercept_scaling=1``). ``random_state``
  is fixed (used by the dual solver's coordinate order).
* **C grid**: :data:`DEFAULT_C_GRID`, ``10^-4 .. 10^2`` in decades (7 values): from weights shrunk to almost nothing to
  a (near) hard margin on standardised features.
* **Selection**: balanced accuracy (mean per-class recall) on ``val``, for binary and multi-class tasks alike. It is
  threshold-dependent like the sensitivity/specificity and accuracies the paper reports, and it weighs the minor
  class as much as the major one (AUC can be high while every val case falls in the majority class). Ties go to the
  smallest C (the most regularised model).
* **class_weight**: ``None`` by default (the paper does not mention class weights for the SVM; its supervised baseline
  uses a weighted cross-entropy); pass ``"balanced"`` to weigh classes.
* **Feature selection** (optional, ``select_k``; the "feature preprocessing, feature selecting, and classification"
  radiomics pipeline that Zhao & Yang, MICCAI 2021, Sec. 3.4, compare against): after scaling, constant features are
  dropped and the ``select_k`` features with the largest ANOVA F statistic on the fitting rows are kept; fitted on
  ``fit`` while C is chosen and again on ``train`` for the final model.
* **Standardisation**: one ``StandardScaler`` per feature block, fitted on ``fit`` while C is chosen and refitted on
  ``train`` (``fit`` and ``val``) for the final model. Scaling is per column, so this equals scaling the concatenated
  blocks; the blocks are kept apart so that each one can be checked and inspected.

No leakage: the scalers, C and the SVM see only the rows ``split.fit`` / ``split.val`` / ``split.train``; the test
rows are only transformed and predicted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import balanced_accuracy_score
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from .splits import Split

__all__ = ["DEFAULT_C_GRID", "LinearSVMClassifier", "SVMResult", "as_blocks"]

#: C values tried on the inner hold-out: 1e-4, 1e-3, ..., 1e2.
DEFAULT_C_GRID: tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 2, 7))


def as_blocks(blocks: Sequence[np.ndarray] | np.ndarray, n_samples: int, name: str = "features") -> list[np.ndarray]:
    """``blocks`` (one array or a list of arrays, rows aligned with the labels) as a list of finite 2-D float arrays
    of ``n_samples`` rows; a clear error naming ``name`` and the block otherwise."""
    if isinstance(blocks, np.ndarray):
        blocks = [blocks]
    if len(blocks) == 0:
        raise ValueError(f"feature set {name!r} has no feature blocks.")
    out = []
    for b, block in enumerate(blocks):
        x = np.asarray(block, dtype=float)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[0] != n_samples or x.shape[1] == 0:
            raise ValueError(
                f"feature set {name!r}, block {b}: expected shape ({n_samples}, d) with d >= 1 (one row per label), "
                f"got {np.shape(block)}."
            )
        bad = ~np.isfinite(x)
        if bad.any():
            rows = np.flatnonzero(bad.any(axis=1))
            raise ValueError(
                f"feature set {name!r}, block {b}: {int(bad.sum())} NaN/inf value(s) in {len(rows)} row(s) "
                f"(first rows {rows[:5].tolist()}). Impute or drop them before evaluation."
            )
        out.append(x)
    return out


@dataclass(frozen=True, eq=False)
class SVMResult:
    """Outcome of one split: the chosen ``C``, the selection score per C on ``val``, the final scalers and SVM
    (fitted on ``split.train``) and their predictions and decision scores on ``split.test`` (scores: one column per
    class of ``classes``)."""

    C: float
    val_scores: dict[float, float]
    classes: np.ndarray
    scalers: tuple[StandardScaler, ...]
    model: LinearSVC
    y_pred: np.ndarray
    scores: np.ndarray


class LinearSVMClassifier:
    """Standardise each feature block, choose C on ``split.val`` by balanced accuracy, refit on ``split.train`` and
    predict ``split.test`` (see the module docstring for the choices and why)."""

    def __init__(
        self,
        C_grid: Sequence[float] = DEFAULT_C_GRID,
        class_weight: dict | str | None = None,
        random_state: int = 0,
        max_iter: int = 100_000,
        select_k: int | None = None,
    ) -> None:
        grid = [float(c) for c in C_grid]
        if not grid or any(not np.isfinite(c) or c <= 0 for c in grid):
            raise ValueError(f"C_grid must hold positive finite values, got {list(C_grid)!r}.")
        self.C_grid = tuple(sorted(set(grid)))
        self.class_weight = class_weight
        self.random_state = random_state
        self.max_iter = max_iter
        if select_k is not None and int(select_k) < 1:
            raise ValueError(f"select_k must be a positive number of features or None, got {select_k!r}.")
        self.select_k = None if select_k is None else int(select_k)

    def _svm(self, C: float) -> LinearSVC:
        return LinearSVC(
            C=C,
            dual="auto",
            class_weight=self.class_weight,
            max_iter=self.max_iter,
            random_state=self.random_state,
        )

    @staticmethod
    def _scale(blocks: list[np.ndarray], rows: np.ndarray) -> tuple[StandardScaler, ...]:
        return tuple(StandardScaler().fit(x[rows]) for x in blocks)

    @staticmethod
    def _design(scalers: Sequence[StandardScaler], blocks: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
        return np.concatenate([s.transform(x[rows]) for s, x in zip(scalers, blocks)], axis=1)

    def _selector(self, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
        """Columns kept by the optional feature selection (``select_k``), fitted on ``(x, y)`` only: features that
        are constant there are dropped, then the ``select_k`` with the largest ANOVA F statistic
        (``sklearn.feature_selection.f_classif``; ties to the lower column) are kept, in column order."""
        if self.select_k is None:
            return None
        from sklearn.feature_selection import f_classif

        varying = np.flatnonzero(x.std(axis=0) > 0)
        if len(varying) <= self.select_k:
            return varying if len(varying) else np.arange(x.shape[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            f_stat = np.nan_to_num(f_classif(x[:, varying], y)[0], nan=0.0, posinf=np.finfo(float).max)
        best = np.argsort(-f_stat, kind="stable")[: self.select_k]
        return np.sort(varying[best])

    def fit_predict(self, blocks: Sequence[np.ndarray] | np.ndarray, labels: np.ndarray, split: Split) -> SVMResult:
        """Choose C on ``split.val`` (scalers and SVMs fitted on ``split.fit``), refit scalers and SVM on
        ``split.train`` with that C, predict ``split.test``."""
        y = np.asarray(labels)
        blocks = as_blocks(blocks, len(y))
        classes = np.unique(y[split.train])
        if len(classes) < 2:
            raise ValueError(f"{split!r}: the training part holds a single class ({classes.tolist()}).")
        for part in ("fit", "val"):
            absent = sorted(set(classes.tolist()) - set(y[getattr(split, part)].tolist()), key=str)
            if absent:
                raise ValueError(f"{split!r}: class(es) {absent} missing from the {part} part.")

        scalers = self._scale(blocks, split.fit)
        x_fit, x_val = self._design(scalers, blocks, split.fit), self._design(scalers, blocks, split.val)
        keep = self._selector(x_fit, y[split.fit])
        if keep is not None:
            x_fit, x_val = x_fit[:, keep], x_val[:, keep]
        val_scores: dict[float, float] = {}
        for C in self.C_grid:
            model = self._svm(C).fit(x_fit, y[split.fit])
            val_scores[C] = float(balanced_accuracy_score(y[split.val], model.predict(x_val)))
        best = max(val_scores.values())
        chosen = min(C for C, s in val_scores.items() if s >= best - 1e-12)

        scalers = self._scale(blocks, split.train)
        x_train = self._design(scalers, blocks, split.train)
        keep = self._selector(x_train, y[split.train])
        x_test = self._design(scalers, blocks, split.test)
        if keep is not None:
            x_train, x_test = x_train[:, keep], x_test[:, keep]
        model = self._svm(chosen).fit(x_train, y[split.train])
        return SVMResult(chosen, val_scores, classes, scalers, model, model.predict(x_test), _scores(model, x_test))


def _scores(model: Any, x: np.ndarray) -> np.ndarray:
    """Decision scores with one column per class of ``model.classes_`` (binary: ``[-s, s]``)."""
    s = model.decision_function(x)
    return np.stack([-s, s], axis=1) if s.ndim == 1 else s
