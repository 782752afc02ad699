"""MONAI-style dictionary transforms (``d`` suffix): loading with validation, lesion-centred crops, relative-shift
affine, SSL views."""

from .augment2d import RandResizedCropd, ssl_augment_2d
from .crop import LesionCropd
from .io import LoadImage2Dd, LoadVolumed
from .spatial import RandAffineFractiond
from .views import MultiViewd

__all__ = [
    "LesionCropd",
    "LoadImage2Dd",
    "LoadVolumed",
    "MultiViewd",
    "RandAffineFractiond",
    "RandResizedCropd",
    "ssl_augment_2d",
]
