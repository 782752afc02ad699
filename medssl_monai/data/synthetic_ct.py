"""Synthetic CT-like volumes with runs of near-identical slices: the default data of the ct_slice_reduction bundle
(no files needed) and test data.

Wolf et al. ("Less is More", Computers in Biology and Medicine 2024, Sec. 1) reduce CT data because consecutive
slices are nearly identical. These volumes make that visible on a laptop: each has ``distinct`` different slices (axial
sections of a lesion phantom, :func:`~medssl_monai.data.phantoms.make_phantom`), each repeated ``repeat`` times along
the slice axis with a little noise, so a similarity-based reduction should keep about one slice per run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medssl_monai.utils import atomic_write_bytes

from .phantoms import make_phantom

__all__ = ["make_synthetic_ct", "write_synthetic_ct_folder"]


def make_synthetic_ct(
    size: Sequence[int] = (64, 64), distinct: int = 8, repeat: int = 4, noise: float = 2.0, seed: int = 0
) -> np.ndarray:
    """One ``(H, W, distinct * repeat)`` int16 volume in HU (air -1000, tissue about 0-400), slices along the last
    axis as NIfTI stores them; slices ``r * repeat ... (r + 1) * repeat - 1`` are copies of one section plus Gaussian
    noise of ``noise`` HU."""
    rng = np.random.default_rng(seed)
    height, width = (int(s) for s in size)
    sections = max(16, distinct * 6)  # far-apart sections of a taller phantom: distinct slices really differ
    image, _ = make_phantom(int(rng.integers(0, 2)), (height, width, sections), seed=seed)
    picks = np.linspace(0, sections - 1, distinct).round().astype(int)
    hu = -1000.0 + 1400.0 * np.clip(image[..., picks], 0.0, 1.0)
    volume = np.repeat(hu, repeat, axis=-1) + rng.normal(0.0, noise, (height, width, distinct * repeat))
    return np.clip(volume, -1024, 3071).round().astype(np.int16)


def write_synthetic_ct_folder(
    folder: str | os.PathLike,
    n: int = 4,
    size: Sequence[int] = (64, 64),
    distinct: int = 8,
    repeat: int = 4,
    seed: int = 0,
) -> str:
    """Write ``n`` volumes of :func:`make_synthetic_ct` as ``folder/synthetic_ct_<i>.nii`` (1 mm voxels, written
    atomically, identical for the same arguments) and return the folder."""
    import nibabel as nib

    folder = Path(folder)
    for i in range(n):
        volume = make_synthetic_ct(size, distinct, repeat, seed=seed * 1000 + i)
        image = nib.Nifti1Image(volume, np.eye(4))
        atomic_write_bytes(folder / f"synthetic_ct_{i:03d}.nii", image.to_bytes(), fsync=False)
    return str(folder)
