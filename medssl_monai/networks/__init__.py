"""Backbones, heads and their composition into SSL networks (backbone + heads, composed, not subclassed)."""

from .encoders import SiamEncoder3D
from .heads import MLPHead, PredictionHead, SimCLRProjectionHead, VICRegExpander
from .memory_bank import MemoryBank
from .ssl import SSLNetwork

__all__ = [
    "MLPHead",
    "MemoryBank",
    "PredictionHead",
    "SSLNetwork",
    "SiamEncoder3D",
    "SimCLRProjectionHead",
    "VICRegExpander",
]
