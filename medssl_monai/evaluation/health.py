"""Representation health of a set of embeddings: collapse measures and a label-aware kNN check.

* ``std_ratio``: ``sqrt(D)`` times the mean over dimensions of the per-dimension std of the L2-normalised embeddings.
  SimSiam (Chen & He, CVPR 2021, Sec. 4.1, Fig. 2) shows this std stays near ``1/sqrt(D)`` for a healthy
  representation and drops to 0 on collapse, so the ratio is about 1 healthy and about 0 collapsed.
* ``effective_rank``: ``exp(H(sigma / sum sigma))`` of the centred embeddings' singular values (Roy & Vetterli,
  EUSIPCO 2007): 1 for a rank-one (collapsed) set, up to ``min(N, D)``. RankMe (Garrido et al., ICML 2023) uses it to
  judge SSL representations without labels.
* ``knn_accuracy`` / ``knn_balanced_accuracy`` (with labels): stratified ``folds``-fold cross-validated kNN on the set
  itself (cosine distance, ``k`` neighbours, scikit-learn), the online kNN monitor of SSL papers (Wu et al., CVPR
  2018) without a separate memory bank.

Non-finite embeddings never raise here: the figures come back as NaN with ``finite=False``, so a watching handler can
report them instead of crashing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier

__all__ = ["effective_rank", "representation_health", "std_ratio"]


def effective_rank(embeddings: torch.Tensor) -> float:
    """Effective rank ``exp(H(sigma / sum sigma))`` of centred embeddings (Roy & Vetterli, EUSIPCO 2007).

    1 for a collapsed (rank-one) set, up to ``min(N, D)`` for a set that fills every direction equally; NaN when the
    embeddings hold a non-finite value.
    """
    x = torch.as_tensor(embeddings).double()
    if not bool(torch.isfinite(x).all()):
        return math.nan
    x = x - x.mean(0, keepdim=True)
    s = torch.linalg.svdvals(x)
    if float(s.sum()) <= 0:
        return 1.0
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def std_ratio(embeddings: torch.Tensor) -> tuple[float, float]:
    """``(std, std * sqrt(D))`` of the L2-normalised embeddings (see the module docstring); 0 for a single row."""
    z = torch.nn.functional.normalize(torch.as_tensor(embeddings).float(), dim=1)
    std = float(z.std(0).mean()) if len(z) > 1 else 0.0
    return std, std * math.sqrt(z.shape[1])


def representation_health(
    embeddings: Any, labels: Any | None = None, k: int = 20, folds: int = 5, seed: int = 0
) -> dict[str, float]:
    """Health figures of ``embeddings`` (N, D): ``std``, ``std_ratio``, ``effective_rank``, ``finite`` (1.0 or 0.0)
    and, with ``labels`` (N,) of at least two classes, ``knn_accuracy`` and ``knn_balanced_accuracy`` (cross-validated
    on the set; folds are capped by the smallest class, ``k`` by the training part)."""
    e = embeddings if isinstance(embeddings, torch.Tensor) else torch.as_tensor(np.asarray(embeddings))
    e = e.detach().float().cpu()
    if e.ndim != 2 or len(e) < 2:
        raise ValueError(f"representation_health needs (N >= 2, D) embeddings, got shape {tuple(e.shape)}.")
    finite = bool(torch.isfinite(e).all())
    out: dict[str, float] = {"finite": float(finite)}
    if not finite:
        out.update(std=math.nan, std_ratio=math.nan, effective_rank=math.nan)
    else:
        out["std"], out["std_ratio"] = std_ratio(e)
        out["effective_rank"] = effective_rank(e)
    if labels is None:
        return out
    y = np.asarray(torch.as_tensor(labels).cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if len(y) != len(e):
        raise ValueError(f"{len(y)} labels for {len(e)} embeddings.")
    _, counts = np.unique(y, return_counts=True)
    n_folds = min(folds, int(counts.min())) if len(counts) > 1 else 0
    if not finite or n_folds < 2:
        out.update(knn_accuracy=math.nan, knn_balanced_accuracy=math.nan)
        return out
    cv = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    neighbours = max(1, min(k, len(y) - math.ceil(len(y) / n_folds)))
    knn = KNeighborsClassifier(n_neighbors=neighbours, metric="cosine")
    pred = cross_val_predict(knn, e.numpy(), y, cv=cv)
    out["knn_accuracy"] = float(accuracy_score(y, pred))
    out["knn_balanced_accuracy"] = float(balanced_accuracy_score(y, pred))
    return out
