"""Projection and prediction heads: small MLPs built from ``(in, out, batch_norm, activation)`` blocks.

Style follows lightly's ``models/modules/heads.py``: one generic MLP, thin named heads that fix the paper's layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MLPHead", "PredictionHead", "SimCLRProjectionHead", "SimSiamProjectionHead", "VICRegExpander"]


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


class SimCLRProjectionHead(MLPHead):
    """SimCLR projector ``g``: ``Linear-BN-ReLU-Linear`` to a 128-d output (Chen et al., ICML 2020, Sec. 2.1 and B.9).

    SimCLR uses one hidden layer as wide as the representation (2048 -> 2048 -> 128 on ResNet-50), the default here
    (``hidden_features=None`` means ``in_features``). Chattopadhyay et al. (ICIP 2023, Sec. 3.1) use "a 2-layer MLP
    projector head with 128-dimensional output" for SimCLR and DCL; their public code narrows the hidden layer to 512
    (pass ``hidden_features=512`` for that).
    """

    def __init__(self, in_features: int = 2048, hidden_features: int | None = None, out_features: int = 128):
        hidden = hidden_features if hidden_features is not None else in_features
        super().__init__([(in_features, hidden, True, True), (hidden, out_features, False, False)])


class SimSiamProjectionHead(MLPHead):
    """SimSiam projector ``f``'s MLP: ``Linear-BN-ReLU-Linear-BN``, BN also on the output and no ReLU there (Chen & He,
    CVPR 2021, Sec. 4: "BN applied to each fully-connected layer, including its output fc").

    Chattopadhyay et al. (ICIP 2023, Sec. 3.1) use a 2-layer projector with a 512-d output (the default here); SimSiam
    itself uses three layers of 2048. The hidden width defaults to ``in_features``.
    """

    def __init__(self, in_features: int = 2048, hidden_features: int | None = None, out_features: int = 512):
        hidden = hidden_features if hidden_features is not None else in_features
        super().__init__([(in_features, hidden, True, True), (hidden, out_features, True, False)])


class VICRegExpander(MLPHead):
    """VICReg expander: ``num_layers`` linear layers, ``BN + ReLU`` after every one but the last.

    Default: Chattopadhyay et al.'s setting (ICIP 2023, Sec. 3.1: "2-layer MLP ... expander ... 4096 dimensions"),
    ``in -> 4096 -> 4096``. Bardes et al. (ICLR 2022, Sec. 4.1) use three layers of 8192 units
    (``VICRegExpander(2048, 8192, 8192, num_layers=3)``).
    """

    def __init__(
        self, in_features: int = 2048, hidden_features: int = 4096, out_features: int = 4096, num_layers: int = 2
    ):
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}.")
        widths = [in_features] + [hidden_features] * (num_layers - 1) + [out_features]
        blocks = [(widths[i], widths[i + 1], True, True) for i in range(num_layers - 1)]
        super().__init__(blocks + [(widths[-2], widths[-1], False, False)])
