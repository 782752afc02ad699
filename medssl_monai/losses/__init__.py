"""One loss per file, each with its paper's formula and defaults in the docstring, all on one base
(:class:`SSLLoss`: per-sample values, RE weights, DDP gather)."""

from .base import SSLLoss, check_positive, gather, gather_with_grad, weighted_mean
from .dcl import DCLLoss, dclw_weights
from .masked_reconstruction import MaskedReconstructionLoss, patchify
from .moco import MoCoLoss
from .negative_cosine import SimSiamLoss, negative_cosine_similarity
from .ntxent import NTXentLoss
from .radiomics_deep_nce import RadiomicsDeepNCELoss, info_nce
from .rubik import RubikCubeLoss
from .swav import SwAVLoss, sinkhorn_knopp
from .vicreg import VICRegLoss, covariance_loss, invariance_loss, variance_loss

__all__ = [
    "DCLLoss",
    "MaskedReconstructionLoss",
    "MoCoLoss",
    "NTXentLoss",
    "RadiomicsDeepNCELoss",
    "RubikCubeLoss",
    "SSLLoss",
    "SimSiamLoss",
    "SwAVLoss",
    "VICRegLoss",
    "check_positive",
    "covariance_loss",
    "dclw_weights",
    "gather",
    "gather_with_grad",
    "info_nce",
    "invariance_loss",
    "negative_cosine_similarity",
    "patchify",
    "sinkhorn_knopp",
    "variance_loss",
    "weighted_mean",
]
