"""MONAI-style dictionary transforms (``d`` suffix): loading with validation, lesion-centred crops, relative-shift
affine, SSL views."""

from .crop import LesionCropd
from .io import LoadVolumed
from .spatial import RandAffineFractiond
from .views import MultiViewd

__all__ = ["LesionCropd", "LoadVolumed", "MultiViewd", "RandAffineFractiond"]
