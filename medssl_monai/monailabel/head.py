"""A linear classifier on frozen embeddings, saved as a plain tensor file (``torch.load(weights_only=True)``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..utils import atomic_write_bytes

__all__ = ["LinearHead", "fit_linear_head"]


class LinearHead(nn.Module):
    """``softmax(W (z - mean) / std + b)``: class probabilities from an embedding ``z`` (the linear evaluation of
    Li et al. / Chattopadhyay et al., served). ``state_dict`` holds ``mean``, ``std``, ``linear.*`` and the class
    names travel beside it (``save``/``load``)."""

    def __init__(self, in_features: int, n_classes: int, class_names: Sequence[str] | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("std", torch.ones(in_features))
        self.linear = nn.Linear(in_features, n_classes)
        self.class_names = (
            [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(n_classes)]
        )
        if len(self.class_names) != n_classes:
            raise ValueError(f"{len(self.class_names)} class names for {n_classes} classes.")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear((z - self.mean) / self.std), dim=-1)

    def save(self, path: str | os.PathLike) -> None:
        import io

        buffer = io.BytesIO()
        torch.save({"state_dict": self.state_dict(), "class_names": self.class_names}, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> LinearHead:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or "state_dict" not in saved:
            raise ValueError(f"'{path}' is not a LinearHead file (no 'state_dict'); write it with LinearHead.save.")
        weight = saved["state_dict"]["linear.weight"]
        head = cls(weight.shape[1], weight.shape[0], saved.get("class_names"))
        head.load_state_dict(saved["state_dict"])
        return head.eval()


def fit_linear_head(
    features: np.ndarray, labels: np.ndarray, class_names: Sequence[str] | None = None, C: float = 1.0, seed: int = 0
) -> LinearHead:
    """Fit scikit-learn's multinomial ``LogisticRegression`` on standardised ``features`` and return it as a
    :class:`LinearHead` (same probabilities as ``predict_proba``; binary problems get the two-row softmax form)."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"fit_linear_head needs two classes or more, got only {classes.tolist()}.")
    mean, std = x.mean(0), x.std(0)
    std[std == 0] = 1.0
    model = LogisticRegression(C=C, max_iter=5000, random_state=seed).fit((x - mean) / std, y)
    coef, intercept = model.coef_, model.intercept_
    if len(classes) == 2:  # sigmoid(w.x + b) == softmax([0, w.x + b])[1]
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    names = class_names if class_names is not None else [str(c) for c in classes]
    head = LinearHead(x.shape[1], len(classes), names)
    with torch.no_grad():
        head.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        head.std.copy_(torch.as_tensor(std, dtype=torch.float32))
        head.linear.weight.copy_(torch.as_tensor(coef, dtype=torch.float32))
        head.linear.bias.copy_(torch.as_tensor(intercept, dtype=torch.float32))
    return head.eval()
