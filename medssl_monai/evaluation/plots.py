"""Figures: mean ROC curves over the folds of :func:`~.protocol.run_protocol`, and the feature-correlation density of
Li et al., MICCAI 2021, Fig. 2 ("Covariance analysis of the representations before and after the SE module").

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no change to the global backend), written atomically.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from ._io import atomic_write_bytes

__all__ = ["correlation_coefficients", "plot_correlation_density", "plot_roc", "save_figure"]


def save_figure(fig: Figure, path: str | os.PathLike) -> None:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def plot_roc(
    records: list[dict],
    path: str | os.PathLike,
    label_fraction: float | None = None,
    class_table: list[dict] | None = None,
    n_points: int = 201,
) -> dict[str, float]:
    """ROC curve of each record at ``label_fraction`` (default: the largest, i.e. full labels): the per-fold curves
    interpolated on a common false-positive-rate grid and averaged; the legend gives the mean ± std of the per-fold
    AUCs. Uses the score of each record's ``roc_class`` (the positive class; minor class vs rest for multi-class).
    Records without scores are skipped. Returns the mean AUC per record name."""
    if not records:
        raise ValueError("plot_roc got no records: run run_protocol first.")
    if label_fraction is None:
        label_fraction = max(r["label_fraction"] for r in records)
    names = {c["value"]: c["name"] for c in class_table or []}
    grid = np.linspace(0.0, 1.0, n_points)
    fig = Figure(figsize=(5.5, 5.0))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1, label="chance")
    aucs: dict[str, float] = {}
    roc_class = None
    for r in (r for r in records if r["label_fraction"] == label_fraction):
        if r["roc_class"] is None or any(p["scores"] is None for p in r["predictions"]):
            continue
        roc_class = r["roc_class"]
        column = r["classes"].index(roc_class)
        curves, fold_aucs = [], []
        for p in r["predictions"]:
            truth = np.asarray(p["y_true"]) == roc_class
            score = np.asarray(p["scores"], dtype=float)[:, column]
            if truth.all() or not truth.any():
                continue
            fpr, tpr, _ = roc_curve(truth, score)
            curve = np.interp(grid, fpr, tpr)
            curve[0] = 0.0
            curves.append(curve)
            fold_aucs.append(roc_auc_score(truth, score))
        if not curves:
            continue
        mean = np.mean(curves, axis=0)
        mean[-1] = 1.0
        aucs[r["feature_set"]] = float(np.mean(fold_aucs))
        spread = f" ± {np.std(fold_aucs, ddof=1):.3f}" if len(fold_aucs) > 1 else ""
        ax.plot(grid, mean, linewidth=1.5, label=f"{r['feature_set']} (AUC {np.mean(fold_aucs):.3f}{spread})")
    what = names.get(roc_class, roc_class)
    multi = len(records[0]["classes"]) > 2
    ax.set_xlabel("False positive rate (1 - specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    title = f"ROC, {what} vs rest" if multi else f"ROC, positive class {what}"
    ax.set_title(f"{title}, {'full' if label_fraction >= 1 else f'{label_fraction:.0%}'} labels, mean over folds")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=7)
    save_figure(fig, path)
    return aucs


def correlation_coefficients(features: np.ndarray) -> tuple[np.ndarray, int]:
    """Pearson correlation coefficients between all pairs of feature dimensions (columns) over the samples (rows):
    the upper triangle of ``np.corrcoef`` of the non-constant columns; and the number of constant columns left out
    (their correlation is undefined)."""
    x = np.asarray(features, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must have shape (n_samples >= 2, n_features), got {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError(f"features hold {int((~np.isfinite(x)).sum())} NaN/inf value(s).")
    keep = np.ptp(x, axis=0) > 0
    if keep.sum() < 2:
        return np.empty(0), int((~keep).sum())
    r = np.corrcoef(x[:, keep], rowvar=False)
    return np.clip(r[np.triu_indices_from(r, k=1)], -1.0, 1.0), int((~keep).sum())


def plot_correlation_density(
    features: dict[str, np.ndarray], path: str | os.PathLike, bins: int = 100
) -> dict[str, dict[str, Any]]:
    """The paper's Fig. 2: for each named representation (e.g. ``"3DSiam"`` and ``"3DSiam+SE"``, arrays
    ``(n_samples, n_features)``), the density (normalised histogram on [-1, 1]) of the Pearson correlation
    coefficients between its feature dimensions (:func:`correlation_coefficients`), overlaid in one figure. A
    redundant representation has mass far from 0; constant columns are left out and counted in the legend.

    Returns per name ``n_samples``, ``n_features``, ``n_constant``, ``n_pairs``, ``mean_abs_r``, ``median_abs_r``
    and ``mean_r`` (NaN with fewer than two non-constant columns).
    """
    if not features:
        raise ValueError("features is empty: pass at least one named representation.")
    edges = np.linspace(-1.0, 1.0, bins + 1)
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot()
    summary: dict[str, dict[str, Any]] = {}
    for name, x in features.items():
        try:
            r, n_constant = correlation_coefficients(x)
        except ValueError as err:
            raise ValueError(f"representation {name!r}: {err}") from None
        nan = float("nan")
        stats = {
            "n_samples": int(np.shape(x)[0]),
            "n_features": int(np.shape(x)[1]),
            "n_constant": n_constant,
            "n_pairs": int(r.size),
            "mean_abs_r": float(np.mean(np.abs(r))) if r.size else nan,
            "median_abs_r": float(np.median(np.abs(r))) if r.size else nan,
            "mean_r": float(np.mean(r)) if r.size else nan,
        }
        summary[name] = stats
        constant = f", {n_constant} constant left out" if n_constant else ""
        label = f"{name}: {stats['n_features']} dims{constant}; mean |r| {stats['mean_abs_r']:.2f}"
        if r.size:
            density, _ = np.histogram(r, bins=edges, density=True)
            ax.stairs(density, edges, linewidth=1.5, label=label)
        else:
            ax.plot([], [], label=f"{label} (fewer than 2 non-constant dims)")
    ax.set_xlabel("Pearson correlation coefficient between feature dimensions")
    ax.set_ylabel("Density")
    ax.set_xlim(-1, 1)
    ax.set_title("Feature correlation over samples")
    ax.legend(fontsize=7)
    save_figure(fig, path)
    return summary
