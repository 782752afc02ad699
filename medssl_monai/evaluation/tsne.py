"""t-SNE of embeddings coloured by class (Chattopadhyay et al., ICIP 2023, Fig. 4), with scikit-learn and matplotlib."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.manifold import TSNE

from .plots import save_figure

__all__ = ["plot_tsne", "tsne_embedding"]


def tsne_embedding(features: Any, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """2-D t-SNE (scikit-learn, PCA initialisation) of ``features`` (N, D); perplexity clipped below ``(N - 1) / 3``."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"t-SNE needs (N, D) features with N >= 3, got shape {x.shape}.")
    perplexity = float(min(perplexity, max(1.0, (x.shape[0] - 1) / 3.0)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def plot_tsne(
    features: Any,
    labels: Any,
    path: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    title: str = "t-SNE of the embeddings",
    perplexity: float = 30.0,
    seed: int = 0,
) -> np.ndarray:
    """Scatter the t-SNE of ``features`` coloured by ``labels`` into the PNG ``path`` (written atomically).

    Returns the 2-D coordinates. ``class_names[c]`` labels class index ``c`` in the legend.
    """
    y = np.asarray(labels).reshape(-1)
    if y.shape[0] != np.asarray(features).shape[0]:
        raise ValueError(f"{y.shape[0]} labels for {np.asarray(features).shape[0]} feature rows.")
    xy = tsne_embedding(features, perplexity, seed)
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot(1, 1, 1)
    for c in np.unique(y):
        name = class_names[int(c)] if class_names is not None else f"class {c}"
        sel = y == c
        ax.scatter(xy[sel, 0], xy[sel, 1], s=8, alpha=0.8, label=f"{name} (n={int(sel.sum())})")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="best", fontsize=8)
    save_figure(fig, path)
    return xy
