"""Synthetic lesion phantoms: the default data of every bundle (no files needed), and test data.

Each volume holds one lesion-like object placed off-centre in a textured background, with its mask.
Two classes at a configurable imbalance (default 3:1, the BraTS H:L ratio of Li et al., Suppl. Table 2):

* class 0 (majority): a smooth ellipsoid with a coarse, low-contrast texture;
* class 1 (minority): a lobulated object (union of overlapping spheres) with a fine, high-contrast texture.

Everything is drawn from ``numpy.random.default_rng([seed, index])``, so a case depends only on the seed and its
index: the same seed gives identical volumes, whatever ``n`` is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["make_phantom", "synthetic_datalist"]


def _grid(size: Sequence[int]) -> np.ndarray:
    return np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in size], indexing="ij"))


def _texture(rng: np.random.Generator, size: Sequence[int], sigma: float) -> np.ndarray:
    t = ndimage.gaussian_filter(rng.standard_normal(size).astype(np.float32), sigma)
    return t / (t.std() + 1e-6)


def make_phantom(label: int, size: Sequence[int] = (48, 48, 48), seed: int | Sequence[int] = 0):
    """One phantom volume and its mask.

    Returns ``(image, mask)``: float32 intensities in about [0, 1] and a uint8 mask, both of shape ``size``.
    """
    rng = np.random.default_rng(seed)
    size = tuple(int(s) for s in size)
    if len(size) != 3 or min(size) < 16:
        raise ValueError(f"phantom size must be three axes of at least 16 voxels, got {size}.")
    grid = _grid(size)
    radius = rng.uniform(0.12, 0.18) * min(size)
    margin = np.array(size) / 2 - radius * 1.4
    centre = np.array(size) / 2 + rng.uniform(-1, 1, 3) * np.maximum(margin, 0) * 0.6
    if label == 0:
        axes = radius * rng.uniform(0.8, 1.2, 3)
        dist = np.sqrt(sum(((grid[i] - centre[i]) / axes[i]) ** 2 for i in range(3)))
        mask = dist <= 1.0
        texture, contrast, mean = _texture(rng, size, 2.5), 0.06, 0.60
    else:
        mask = np.zeros(size, dtype=bool)
        for _ in range(int(rng.integers(3, 6))):
            c = centre + rng.normal(0, radius * 0.45, 3)
            r = radius * rng.uniform(0.45, 0.75)
            mask |= sum((grid[i] - c[i]) ** 2 for i in range(3)) <= r**2
        texture, contrast, mean = _texture(rng, size, 0.7), 0.15, 0.55
    background = 0.15 + 0.04 * _texture(rng, size, 4.0)
    image = np.where(mask, mean + contrast * texture, background)
    image = ndimage.gaussian_filter(image, 0.6) + 0.02 * rng.standard_normal(size)
    return image.astype(np.float32), mask.astype(np.uint8)


def synthetic_datalist(
    n: int = 120, size: Sequence[int] = (48, 48, 48), imbalance: float = 3.0, seed: int = 0
) -> list[dict]:
    """A datalist of ``n`` phantoms: ``{"image", "mask", "label", "id", "source"}`` with in-memory arrays.

    ``imbalance`` is majority:minority; the minority count is ``round(n / (1 + imbalance))`` (30 of 120 at 3:1).
    Labels are shuffled under ``seed``.
    """
    if n < 2:
        raise ValueError(f"synthetic_datalist needs n >= 2, got {n}.")
    if imbalance < 1:
        raise ValueError(f"imbalance is majority:minority and must be >= 1, got {imbalance}.")
    n_minor = max(1, round(n / (1.0 + imbalance)))
    labels = np.zeros(n, dtype=np.int64)
    labels[:n_minor] = 1
    np.random.default_rng(seed).shuffle(labels)
    items = []
    for i, label in enumerate(labels.tolist()):
        image, mask = make_phantom(label, size, seed=(seed, i))
        items.append({"image": image, "mask": mask, "label": label, "id": f"phantom_{i:04d}", "source": "synthetic"})
    return items
