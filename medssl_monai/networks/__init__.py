"""Backbones, heads and their composition into SSL networks (backbone + heads, composed, not subclassed)."""

from .backbones import RESNET_FEATURES, resnet_backbone
from .encoders import SiamEncoder3D
from .heads import MLPHead, PredictionHead, SimCLRProjectionHead, SimSiamProjectionHead, VICRegExpander
from .memory_bank import MemoryBank
from .methods import METHODS, SSLMethod, build_method
from .ssl import SSLNetwork

__all__ = [
    "METHODS",
    "RESNET_FEATURES",
    "MLPHead",
    "MemoryBank",
    "PredictionHead",
    "SSLMethod",
    "SSLNetwork",
    "SiamEncoder3D",
    "SimCLRProjectionHead",
    "SimSiamProjectionHead",
    "VICRegExpander",
    "build_method",
    "resnet_backbone",
]
