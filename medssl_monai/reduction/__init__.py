"""CT slice reduction of Wolf et al., "Less is More" (2024, Sec. 2.1): per-volume similarity of slices (dHash with
Hamming distance, SSIM, normalised mutual information, deep-feature cosine) and greedy removal of near duplicates,
plus the ALL and EveryN baselines.

Typical use on one volume of int16 HU slices ``(N, H, W)``::

    keep = reduce_volume(to_uint8(slices), method="hash")   # HASH-6, the paper's recommendation

File I/O, the dataset runner and the CLI live in :mod:`medssl_monai.reduction.run` (separate module).
"""

from .convert import to_uint8
from .deep import embed, input_channels, pairwise_cosine
from .hashing import dhash, dhash_slices, hamming, pairwise_hamming
from .reduce import (
    DEFAULT_EVERY_N,
    DEFAULT_TARGET_FRACTION,
    DEFAULT_THRESHOLDS,
    METHODS,
    every_n,
    reduce_pairs,
    reduce_volume,
    similarity_matrix,
    target_count,
)
from .similarity import nmi, pairwise_nmi, pairwise_ssim, ssim

__all__ = [
    "DEFAULT_EVERY_N",
    "DEFAULT_TARGET_FRACTION",
    "DEFAULT_THRESHOLDS",
    "METHODS",
    "dhash",
    "dhash_slices",
    "embed",
    "every_n",
    "hamming",
    "input_channels",
    "nmi",
    "pairwise_cosine",
    "pairwise_hamming",
    "pairwise_nmi",
    "pairwise_ssim",
    "reduce_pairs",
    "reduce_volume",
    "similarity_matrix",
    "ssim",
    "target_count",
    "to_uint8",
]
