"""An SSL network is a backbone plus optional heads, composed (not subclassed)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SSLNetwork"]


class SSLNetwork(nn.Module):
    """Compose ``backbone -> projector -> predictor`` and return every stage by name.

    ``forward(x)`` returns ``{"embedding": h, "projection": z, "prediction": p}`` where ``h = backbone(x)``
    (the representation used downstream), ``z = projector(h)`` (``h`` itself when there is no projector) and
    ``p = predictor(z)`` (absent when there is no predictor). Trainers pick the entries their loss needs, so
    SimSiam, SimCLR, VICReg ... differ only in heads and loss, never in the network class.

    3DSiam (Li et al., MICCAI 2021): the encoder of Table 4 already ends in dense layers, so it uses no
    projector and a :class:`~medssl_monai.networks.PredictionHead`.
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module | None = None, predictor: nn.Module | None = None):
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.predictor = predictor

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.backbone(x)
        z = self.projector(h) if self.projector is not None else h
        out = {"embedding": h, "projection": z}
        if self.predictor is not None:
            out["prediction"] = self.predictor(z)
        return out
