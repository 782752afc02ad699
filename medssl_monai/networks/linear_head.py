"""A linear classifier on frozen embeddings (class probabilities), saved as a plain tensor file
(``torch.load(weights_only=True)``); :func:`medssl_monai.evaluation.fit_linear_head` fits one."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import torch
from torch import nn

from ..utils import atomic_write_bytes
from .backbones import read_checkpoint

__all__ = ["LinearHead"]


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
        buffer = io.BytesIO()
        torch.save({"state_dict": self.state_dict(), "class_names": self.class_names}, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> LinearHead:
        saved = read_checkpoint(path)
        if not isinstance(saved, dict) or "state_dict" not in saved:
            raise ValueError(f"'{path}' is not a LinearHead file (no 'state_dict'); write it with LinearHead.save.")
        weight = saved["state_dict"]["linear.weight"]
        head = cls(weight.shape[1], weight.shape[0], saved.get("class_names"))
        head.load_state_dict(saved["state_dict"])
        return head.eval()
