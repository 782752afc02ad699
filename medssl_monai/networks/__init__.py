"""Backbones, heads and their composition into SSL networks (backbone + heads, composed, not subclassed)."""

from .backbones import RESNET_FEATURES, resnet_backbone
from .encoders import SiamEncoder3D
from .heads import MLPHead, PredictionHead, SimCLRProjectionHead, SimSiamProjectionHead, VICRegExpander
from .memory_bank import MemoryBank
from .methods import METHODS, SSLMethod, build_method
from .radiomics_deep import (
    EMBEDDING_KEYS,
    HybridClassifier,
    ImageClassifier,
    RadiomicsDeepNetwork,
    RadiomicsMLP,
    Standardize,
    deep_branch,
)
from .rubik import RubikCubeNetwork
from .ssl import SSLNetwork

__all__ = [
    "EMBEDDING_KEYS",
    "METHODS",
    "RESNET_FEATURES",
    "HybridClassifier",
    "ImageClassifier",
    "MLPHead",
    "MemoryBank",
    "PredictionHead",
    "RadiomicsDeepNetwork",
    "RadiomicsMLP",
    "RubikCubeNetwork",
    "SSLMethod",
    "SSLNetwork",
    "SiamEncoder3D",
    "SimCLRProjectionHead",
    "SimSiamProjectionHead",
    "Standardize",
    "VICRegExpander",
    "build_method",
    "deep_branch",
    "resnet_backbone",
]
