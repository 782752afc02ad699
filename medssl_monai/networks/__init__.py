"""Backbones, heads and their composition into SSL networks (backbone + heads, composed, not subclassed)."""

from .backbones import RESNET_FEATURES, load_weights, read_checkpoint, resnet_backbone
from .encoders import SiamEncoder3D
from .heads import MLPHead, PredictionHead, SimCLRProjectionHead, SimSiamProjectionHead, VICRegExpander
from .linear_head import LinearHead
from .memory_bank import MemoryBank
from .methods import METHODS, SSLMethod, build_method
from .moco import MoCoNetwork
from .queue import FeatureQueue
from .radiomics_deep import (
    EMBEDDING_KEYS,
    HybridClassifier,
    ImageClassifier,
    RadiomicsDeepNetwork,
    RadiomicsMLP,
    Standardize,
    deep_branch,
    radiomics_in_features,
)
from .rubik import RubikCubeNetwork
from .spark import SparKNetwork, SparseBatchNorm2d, random_visible_mask
from .ssl import SSLNetwork
from .swav import SwAVNetwork, SwAVProjectionHead, SwAVPrototypes

__all__ = [
    "EMBEDDING_KEYS",
    "METHODS",
    "RESNET_FEATURES",
    "FeatureQueue",
    "HybridClassifier",
    "ImageClassifier",
    "LinearHead",
    "MLPHead",
    "MemoryBank",
    "MoCoNetwork",
    "PredictionHead",
    "RadiomicsDeepNetwork",
    "RadiomicsMLP",
    "RubikCubeNetwork",
    "SSLMethod",
    "SSLNetwork",
    "SiamEncoder3D",
    "SimCLRProjectionHead",
    "SimSiamProjectionHead",
    "SparKNetwork",
    "SparseBatchNorm2d",
    "Standardize",
    "SwAVNetwork",
    "SwAVProjectionHead",
    "SwAVPrototypes",
    "VICRegExpander",
    "build_method",
    "deep_branch",
    "load_weights",
    "radiomics_in_features",
    "random_visible_mask",
    "read_checkpoint",
    "resnet_backbone",
]
