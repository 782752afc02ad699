"""MONAI-style dictionary transforms (``d`` suffix): loading with validation, lesion-centred crops, lesion-box crop and
resize, the 2.5D tumour-slice input, 2D loading and SSL augmentation, relative-shift affine, SSL views, the
Rubik's cube pretext sample."""

from .augment2d import RandResizedCropd, ssl_augment_2d
from .crop import LesionBoxResized, LesionCropd, average_lesion_size, datalist_lesion_size, lesion_bounding_box
from .io import LoadImage2Dd, LoadVolumed
from .mask import ForegroundMaskd
from .rubik import RubikCubed, hamming_permutations, rotate_cube
from .slices25d import Slices25Dd, select_tumour_slices, slices_25d
from .spatial import RandAffineFractiond
from .views import MultiViewd

__all__ = [
    "ForegroundMaskd",
    "LesionBoxResized",
    "LesionCropd",
    "LoadImage2Dd",
    "LoadVolumed",
    "MultiViewd",
    "RandAffineFractiond",
    "RandResizedCropd",
    "RubikCubed",
    "Slices25Dd",
    "average_lesion_size",
    "datalist_lesion_size",
    "hamming_permutations",
    "lesion_bounding_box",
    "rotate_cube",
    "select_tumour_slices",
    "slices_25d",
    "ssl_augment_2d",
]
