"""Synthetic 2D labelled images: the default data of the ``small_data_ssl`` bundle (no files needed), and test data.

A small class-dependent set in the shape of a MedMNIST split (grey ``(1, H, W)`` images in [0, 1]):

* class 0: a smooth bright disk with a coarse, low-contrast texture;
* class 1: a ring (bright annulus, dark centre) with a fine, high-contrast texture;
* class ``c >= 2``: ``c`` small blobs (an object count per class).

Position and radius vary per image, so a class is a shape, not a pixel pattern. Everything is drawn from
``numpy.random.default_rng([seed, index])``: a case depends only on the seed and its index.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["make_image_2d", "synthetic_2d_datalist"]


def _texture(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    t = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), sigma)
    return t / (t.std() + 1e-6)


def make_image_2d(label: int, size: int = 32, seed: int | tuple[int, ...] = 0) -> np.ndarray:
    """One synthetic ``(1, size, size)`` float32 image in [0, 1] of class ``label`` (module docstring)."""
    if size < 16:
        raise ValueError(f"synthetic 2D images need size >= 16, got {size}.")
    if label < 0:
        raise ValueError(f"label must be >= 0, got {label}.")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    radius = rng.uniform(0.2, 0.3) * size
    centre = size / 2 + rng.uniform(-1, 1, 2) * (size / 2 - radius - 2) * 0.5
    dist = np.hypot(yy - centre[0], xx - centre[1])
    if label == 0:
        mask = dist <= radius
        texture, contrast, mean = _texture(rng, size, 2.5), 0.05, 0.7
    elif label == 1:
        mask = (dist <= radius) & (dist >= 0.55 * radius)
        texture, contrast, mean = _texture(rng, size, 0.7), 0.15, 0.65
    else:
        mask = np.zeros((size, size), dtype=bool)
        for _ in range(label):
            c = rng.uniform(0.2, 0.8, 2) * size
            mask |= np.hypot(yy - c[0], xx - c[1]) <= 0.1 * size
        texture, contrast, mean = _texture(rng, size, 1.5), 0.1, 0.7
    background = 0.15 + 0.04 * _texture(rng, size, 4.0)
    image = np.where(mask, mean + contrast * texture, background)
    image = ndimage.gaussian_filter(image, 0.6) + 0.02 * rng.standard_normal((size, size))
    return np.clip(image, 0.0, 1.0).astype(np.float32)[None]


def synthetic_2d_datalist(n: int = 300, size: int = 32, n_classes: int = 2, seed: int = 0) -> list[dict]:
    """``n`` synthetic images, classes in turn (``i % n_classes``): ``{"image", "label", "id", "source"}`` items."""
    if n < 1 or n_classes < 2:
        raise ValueError(f"need n >= 1 and n_classes >= 2, got n={n}, n_classes={n_classes}.")
    return [
        {
            "image": make_image_2d(i % n_classes, size, (seed, i)),
            "label": i % n_classes,
            "id": f"synthetic_{i:05d}",
            "source": "synthetic_2d",
        }
        for i in range(n)
    ]
