"""Projection and prediction heads: small MLPs built from ``(in, out, batch_norm, activation)`` blocks.

Style follows lightly's ``models/modules/heads.py``: one generic MLP, thin named heads that fix the paper's layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MLPHead", "PredictionHead"]


class MLPHead(nn.Module):
    """A stack of ``Linear [+ BatchNorm1d] [+ ReLU]`` blocks.

    Args:
        blocks: one ``(in_features, out_features, batch_norm, relu)`` tuple per linear layer.
    """

    def __init__(self, blocks: Sequence[tuple[int, int, bool, bool]]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for in_features, out_features, batch_norm, relu in blocks:
            layers.append(nn.Linear(in_features, out_features, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(out_features))
            if relu:
                layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class PredictionHead(MLPHead):
    """SimSiam predictor ``p``: a two-layer bottleneck MLP ``Linear-BN-ReLU-Linear`` (Chen & He, CVPR 2021, Sec. 4).

    3DSiam (Li et al., MICCAI 2021, Fig. 1) calls it "a two-layer perceptron". The hidden width defaults to a
    quarter of the input (SimSiam's 2048 -> 512 -> 2048 bottleneck ratio), so 256 -> 64 -> 256 for 3DSiam.
    """

    def __init__(self, in_features: int = 256, hidden_features: int | None = None, out_features: int | None = None):
        hidden = hidden_features if hidden_features is not None else max(in_features // 4, 1)
        out = out_features if out_features is not None else in_features
        super().__init__([(in_features, hidden, True, True), (hidden, out, False, False)])
