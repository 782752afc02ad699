"""Classifiers trained on frozen features: the "linear evaluation" of Chattopadhyay et al. (ICIP 2023), which is a
two-layer MLP, and a true linear probe.

Chattopadhyay et al., Sec. 3.1 ("Downstream"): "we attached a 2-layered MLP classifier and trained it for 100 epochs
using Adam optimizer with a StepLR scheduler (gamma = 0.5) decaying over episodes of 25 epochs". They call it linear
evaluation; it is not linear (a hidden layer and a ReLU), so this module labels it ``"mlp"``, and offers ``"linear"``:
one ``nn.Linear`` on the same features, trained with the same optimiser and schedule.

Choices the paper leaves open (documented in the bundle's docs): the MLP's hidden width (512), the probe's batch size
(16, their Table 1 for the Breast set) and learning rate (Adam 1e-3; their public code uses 1.0, and their Table 1
values were tuned per set, which we do not do); features standardised with the training mean and std; no early
stopping or model selection (the model after the last epoch is evaluated).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..engines.fit import fit
from ..networks.linear_head import LinearHead

__all__ = ["PROBE_LABELS", "FeatureProbe", "build_probe", "fit_linear_head", "probe_evaluate", "train_probe"]

#: Report labels of the two probes.
PROBE_LABELS: dict[str, str] = {
    "mlp": "MLP on frozen features (the paper's 'linear' evaluation: 2 layers, Adam, StepLR 25/0.5)",
    "linear": "Linear probe on frozen features (one nn.Linear, Adam, StepLR 25/0.5)",
}


def build_probe(kind: Literal["mlp", "linear"], in_features: int, n_classes: int, hidden_features: int = 512):
    """``"linear"``: ``nn.Linear(in, C)``; ``"mlp"``: ``Linear(in, hidden) -> ReLU -> Linear(hidden, C)``."""
    if kind == "linear":
        return nn.Linear(in_features, n_classes)
    if kind == "mlp":
        return nn.Sequential(
            nn.Linear(in_features, hidden_features), nn.ReLU(inplace=True), nn.Linear(hidden_features, n_classes)
        )
    raise ValueError(f"probe kind must be one of {sorted(PROBE_LABELS)}, got {kind!r}.")


@dataclass
class FeatureProbe:
    """A trained probe: the network, the standardisation and the classes; ``predict`` maps features to labels."""

    kind: str
    network: nn.Module
    mean: torch.Tensor
    std: torch.Tensor
    classes: np.ndarray
    lr_history: list[float] = field(default_factory=list)
    loss_history: list[float] = field(default_factory=list)

    @torch.no_grad()
    def predict(self, features: Any) -> np.ndarray:
        x = (torch.as_tensor(np.asarray(features), dtype=torch.float32) - self.mean) / self.std
        self.network.eval()
        return self.classes[self.network(x).argmax(1).numpy()]


def _features(x: Any, name: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {a.shape}.")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or infinite values.")
    return a.astype(np.float32)


def _pair(batch, device=None, non_blocking=False, **kwargs):
    """``prepare_batch`` of a ``TensorDataset(features, labels)`` loader."""
    return batch[0].to(device), batch[1].to(device)


def train_probe(
    features: Any,
    labels: Any,
    kind: Literal["mlp", "linear"] = "mlp",
    epochs: int = 100,
    lr: float = 1e-3,
    batch_size: int = 16,
    step_size: int = 25,
    gamma: float = 0.5,
    hidden_features: int = 512,
    weight_decay: float = 0.0,
    standardize: bool = True,
    seed: int = 0,
) -> FeatureProbe:
    """Train a probe on ``features`` (N, D) and ``labels`` (N,) with cross-entropy, Adam and
    ``StepLR(step_size, gamma)`` stepped once per epoch (the paper: 100 epochs, gamma 0.5 every 25).

    ``lr_history`` holds the learning rate used in each epoch, ``loss_history`` the mean training loss per epoch.
    Deterministic under ``seed`` (initialisation and shuffling).
    """
    x = _features(features, "features")
    y_raw = np.asarray(labels).reshape(-1)
    if y_raw.shape[0] != x.shape[0]:
        raise ValueError(f"{y_raw.shape[0]} labels for {x.shape[0]} feature rows.")
    classes, y = np.unique(y_raw, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"a probe needs at least two classes in its training labels, got {classes.tolist()}.")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}.")
    xt = torch.from_numpy(x)
    mean = xt.mean(0) if standardize else torch.zeros(x.shape[1])
    std = xt.std(0).clamp_min(1e-6) if standardize and len(x) > 1 else torch.ones(x.shape[1])
    xt = (xt - mean) / std
    yt = torch.as_tensor(y.reshape(-1), dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        network = build_probe(kind, x.shape[1], len(classes), hidden_features)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    probe = FeatureProbe(kind, network, mean, std, classes)
    data = DataLoader(TensorDataset(xt, yt), batch_size=batch_size, shuffle=True, generator=gen)
    engine = fit(
        network,
        nn.CrossEntropyLoss(),
        data,
        optimizer,
        epochs,
        prepare_batch=_pair,
        lr_scheduler=scheduler,
        description=f"{kind} probe",
    )
    probe.lr_history = list(engine.state.metrics["lr_history"])
    probe.loss_history = list(engine.state.metrics["loss_history"])
    return probe


def probe_evaluate(
    train_features: Any, train_labels: Any, test_features: Any, test_labels: Any, kind: str = "mlp", **kwargs
) -> dict[str, Any]:
    """Train a probe (:func:`train_probe` ``kwargs``) and score it: ``{"accuracy", "f1_weighted", "kind", "label",
    "epochs", "final_train_loss"}``."""
    probe = train_probe(train_features, train_labels, kind=kind, **kwargs)
    y_true = np.asarray(test_labels).reshape(-1)
    y_pred = probe.predict(_features(test_features, "test_features"))
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(f"{y_true.shape[0]} test labels for {y_pred.shape[0]} test features.")
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_weighted": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
        "kind": kind,
        "label": PROBE_LABELS[kind],
        "epochs": len(probe.loss_history),
        "final_train_loss": probe.loss_history[-1],
    }


def fit_linear_head(
    features: np.ndarray, labels: np.ndarray, class_names: Sequence[str] | None = None, C: float = 1.0, seed: int = 0
) -> LinearHead:
    """Fit scikit-learn's multinomial ``LogisticRegression`` on standardised ``features`` and return it as a
    :class:`LinearHead` (same probabilities as ``predict_proba``; binary problems get the two-row softmax form)."""
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
