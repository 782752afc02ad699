"""KNN evaluation of frozen features, in the two settings SSL papers use.

* ``"euclidean"``: the setting of Chattopadhyay et al. (ICIP 2023, Sec. 3.2; their code uses scikit-learn's
  ``KNeighborsClassifier(n_neighbors=200)``): Euclidean distance on the raw features, uniform weights, majority
  vote.
* ``"cosine"``: the weighted KNN of Wu et al. (CVPR 2018, "Unsupervised Feature Learning via Non-Parametric Instance
  Discrimination", Sec. 3.4), used as the KNN monitor of most SSL papers (DCL included): L2-normalised features, the
  ``k`` most cosine-similar training samples ``N_k``, weights ``alpha_i = exp(s_i / T)``, class score
  ``w_c = sum_{i in N_k, y_i = c} alpha_i``, prediction ``argmax_c w_c``; ``T = 0.1`` (Wu et al.'s ``tau``).

``k = 200`` (Chattopadhyay et al., following Yeh et al.), clipped to the number of training samples. Metrics: accuracy
and weighted F1 (scikit-learn), the two metrics of Chattopadhyay et al. (Tables 2-3).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from sklearn.neighbors import KNeighborsClassifier
from torch.nn import functional as F

from ..losses.base import check_positive

__all__ = ["KNN_MODES", "knn_evaluate", "knn_predict"]

#: Report labels of the two KNN settings.
KNN_MODES: dict[str, str] = {
    "euclidean": "KNN (Euclidean, uniform vote; Chattopadhyay et al.)",
    "cosine": "KNN (cosine, exp(s/T)-weighted vote; Wu et al.)",
}


def _as_2d(x: Any, name: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be (N, D), got shape {a.shape}.")
    return a


def _as_labels(y: Any) -> np.ndarray:
    return (y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)).reshape(-1)


def _cosine_weighted_predict(
    train: np.ndarray, train_idx: np.ndarray, n_classes: int, test: np.ndarray, k: int, temperature: float, chunk: int
) -> np.ndarray:
    bank = F.normalize(torch.as_tensor(train, dtype=torch.float64), dim=1)
    labels = torch.as_tensor(train_idx, dtype=torch.long)
    out = []
    for start in range(0, test.shape[0], chunk):
        query = F.normalize(torch.as_tensor(test[start : start + chunk], dtype=torch.float64), dim=1)
        sim, nn_idx = (query @ bank.T).topk(k, dim=1)
        weights = (sim / temperature).exp()
        scores = torch.zeros(query.shape[0], n_classes, dtype=weights.dtype)
        scores.scatter_add_(1, labels[nn_idx], weights)
        out.append(scores.argmax(dim=1))
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def knn_predict(
    train_features: Any,
    train_labels: Any,
    test_features: Any,
    k: int = 200,
    mode: Literal["euclidean", "cosine"] = "euclidean",
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> np.ndarray:
    """Predicted labels of ``test_features`` (M, D) from ``train_features`` (N, D) with labels (N,).

    Arrays or tensors; labels of any type scikit-learn accepts. ``k`` is clipped to ``N``. ``mode`` picks the setting
    (module docstring); ``temperature`` is used by ``"cosine"`` only. ``chunk_size`` bounds the (chunk, N) similarity
    matrix of the cosine mode. Ties go to the class that sorts first.
    """
    if mode not in KNN_MODES:
        raise ValueError(f"mode must be one of {sorted(KNN_MODES)}, got {mode!r}.")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}.")
    check_positive("temperature", temperature)
    train, test = _as_2d(train_features, "train_features"), _as_2d(test_features, "test_features")
    labels = _as_labels(train_labels)
    if labels.shape[0] != train.shape[0] or train.shape[0] == 0:
        raise ValueError(f"{labels.shape[0]} train labels for {train.shape[0]} train features (need at least one).")
    if test.shape[1] != train.shape[1]:
        raise ValueError(f"test features have {test.shape[1]} dimensions, train features {train.shape[1]}.")
    k = min(int(k), train.shape[0])
    if mode == "euclidean":
        clf = KNeighborsClassifier(n_neighbors=k, weights="uniform", metric="euclidean")
        return clf.fit(train, labels).predict(test)
    classes, train_idx = np.unique(labels, return_inverse=True)
    pred = _cosine_weighted_predict(train, train_idx.reshape(-1), len(classes), test, k, temperature, chunk_size)
    return classes[pred]


def knn_evaluate(
    train_features: Any,
    train_labels: Any,
    test_features: Any,
    test_labels: Any,
    k: int = 200,
    mode: Literal["euclidean", "cosine"] = "euclidean",
    temperature: float = 0.1,
) -> dict[str, Any]:
    """KNN on frozen features: ``{"accuracy", "f1_weighted", "k" (after clipping), "mode", "label"}``."""
    y_true = _as_labels(test_labels)
    y_pred = knn_predict(train_features, train_labels, test_features, k=k, mode=mode, temperature=temperature)
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(f"{y_true.shape[0]} test labels for {y_pred.shape[0]} test features.")
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_weighted": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
        "k": min(int(k), len(_as_labels(train_labels))),
        "mode": mode,
        "label": KNN_MODES[mode],
    }
