"""One loss per file, each with its paper's formula and defaults in the docstring."""

from .dcl import DCLLoss, dclw_weights
from .negative_cosine import SimSiamLoss, negative_cosine_similarity
from .ntxent import NTXentLoss
from .rubik import RubikCubeLoss
from .radiomics_deep_nce import RadiomicsDeepNCELoss, info_nce
from .vicreg import VICRegLoss, covariance_loss, invariance_loss, variance_loss

__all__ = [
    "DCLLoss",
    "NTXentLoss",
    "RadiomicsDeepNCELoss",
    "RubikCubeLoss",
    "SimSiamLoss",
    "VICRegLoss",
    "covariance_loss",
    "dclw_weights",
    "info_nce",
    "invariance_loss",
    "negative_cosine_similarity",
    "variance_loss",
]
