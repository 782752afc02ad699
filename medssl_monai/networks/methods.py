"""The SSL methods of Chattopadhyay et al. (ICIP 2023) as ``backbone + heads + loss``, composed by name.

=========  ========================================================  =========================================
method     heads (on a ``feature_dim`` backbone)                      loss (inputs, one per view)
=========  ========================================================  =========================================
simclr     :class:`SimCLRProjectionHead` -> 128                       :class:`NTXentLoss` (``projection``)
dcl        :class:`SimCLRProjectionHead` -> 128                       :class:`DCLLoss` (``projection``)
dclw       :class:`SimCLRProjectionHead` -> 128                       :class:`DCLLoss` ``weighted=True``
simsiam    :class:`SimSiamProjectionHead` -> 512, :class:`PredictionHead`  :class:`SimSiamLoss` (``prediction``,
           512 -> 128 -> 512                                                 ``projection``), stop-gradient
vicreg     :class:`VICRegExpander` -> 4096 -> 4096                    :class:`VICRegLoss` (``projection``)
=========  ========================================================  =========================================

Output sizes are the paper's (Sec. 3.1: 128 for SimCLR and DCL, 512 for SimSiam, 4096 for VICReg). The public code
of Chattopadhyay et al. has no SimSiam predictor, which makes it a different (and collapse-prone) method; ours has one,
as SimSiam (Chen & He, CVPR 2021) requires. Nothing here depends on the number of spatial dimensions: any backbone that
maps ``(B, C, *spatial)`` to ``(B, feature_dim)`` works (MONAI ResNets in 2D or 3D, ``SiamEncoder3D``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..losses import DCLLoss, NTXentLoss, SimSiamLoss, VICRegLoss
from .heads import PredictionHead, SimCLRProjectionHead, SimSiamProjectionHead, VICRegExpander
from .ssl import SSLNetwork

__all__ = ["METHODS", "SSLMethod", "build_method"]

METHODS = ("simclr", "dcl", "dclw", "simsiam", "vicreg")


@dataclass
class SSLMethod:
    """What a trainer needs: the network, the loss, which network outputs feed the loss, and the method's gradient
    clipping.

    ``loss_input_keys`` and ``clip_grad_norm`` are :class:`~medssl_monai.engines.SSLTrainer`'s arguments of those
    names. ``clip_grad_norm`` is 3.0 for VICReg and None for the others: Bardes et al. (ICLR 2022) train VICReg with
    LARS, whose per-layer trust ratio bounds each step; with Chattopadhyay et al.'s plain SGD (lr 0.01) the covariance
    term's gradient at initialisation (global norm ~3,800 on a ResNet-50 at 224 px) made the loss diverge to NaN within
    6 steps, and clipping the global norm at 3.0 kept it finite (``BENCHMARKS.md``, issue 17).
    """

    name: str
    network: SSLNetwork
    loss: nn.Module
    loss_input_keys: tuple[str, ...]
    clip_grad_norm: float | None = None


def build_method(
    name: str,
    backbone: nn.Module,
    feature_dim: int,
    out_features: int | None = None,
    hidden_features: int | None = None,
    **loss_kwargs,
) -> SSLMethod:
    """Compose method ``name`` (one of :data:`METHODS`) on ``backbone`` (output ``(B, feature_dim)``).

    ``out_features`` and ``hidden_features`` override the projector's output and hidden widths (defaults: see the
    module table; hidden = ``feature_dim``, or 4096 for VICReg); ``loss_kwargs`` go to the loss (e.g.
    ``temperature``). In a bundle config::

        "method": {"_target_": "medssl_monai.networks.build_method", "name": "vicreg",
                   "backbone": "@network_def", "feature_dim": 2048},
        "ssl_network_def": "$@method.network", "loss": "$@method.loss"
    """
    key = name.lower()
    if key not in METHODS:
        raise ValueError(f"unknown SSL method {name!r}; choose one of {METHODS}.")
    if key in ("simclr", "dcl", "dclw"):
        projector = SimCLRProjectionHead(feature_dim, hidden_features, out_features or 128)
        loss = NTXentLoss(**loss_kwargs) if key == "simclr" else DCLLoss(weighted=key == "dclw", **loss_kwargs)
        return SSLMethod(key, SSLNetwork(backbone, projector), loss, ("projection",))
    if key == "simsiam":
        out = out_features or 512
        projector = SimSiamProjectionHead(feature_dim, hidden_features, out)
        network = SSLNetwork(backbone, projector, PredictionHead(out))
        return SSLMethod(key, network, SimSiamLoss(**loss_kwargs), ("prediction", "projection"))
    out = out_features or 4096
    projector = VICRegExpander(feature_dim, hidden_features or out, out)
    return SSLMethod(key, SSLNetwork(backbone, projector), VICRegLoss(**loss_kwargs), ("projection",), 3.0)
