"""numba kernels of the reduction's hot loops: :mod:`.pairwise` (NMI, SSIM; when kernels are used, threads) and
:mod:`.hashing` (8-bit conversion, dHash). Each is an accelerator of an exact numpy/torch path of
:mod:`medssl_monai.reduction` and gives the same bits."""

from . import hashing, pairwise

__all__ = ["hashing", "pairwise"]
