"""2D SSL augmentations as MONAI transforms: SimCLR's random resized crop, flips, intensity jitter and blur.

SimCLR (Chen et al., ICML 2020, Appendix A) crops a random area fraction in ``[0.08, 1]`` of the image with a random
aspect ratio in ``[3/4, 4/3]`` and resizes it back, flips, jitters colour and blurs. Chattopadhyay et al. (ICIP 2023)
use these augmentations; their public code passes ``scale=(0.08, 0.1)`` to the crop (at most a tenth of the image),
which we take for a typo and do not follow: the default here is SimCLR's ``(0.08, 1.0)``. MONAI has no crop with an
area fraction and an aspect ratio (``RandSpatialCrop(random_size=True)`` draws each side independently), hence
:class:`RandResizedCropd`; the rest are MONAI's own transforms.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import (
    Compose,
    MapTransform,
    RandFlipd,
    RandGaussianSmoothd,
    RandomizableTransform,
    RandScaleIntensityd,
    RandScaleIntensityFixedMeand,
    Resize,
    ScaleIntensityRanged,
)
from monai.utils import ensure_tuple_rep

__all__ = ["RandResizedCropd", "ssl_augment_2d"]


class RandResizedCropd(RandomizableTransform, MapTransform):
    """Crop a random box of a 2D channel-first image and resize it to ``size`` (torchvision's ``RandomResizedCrop``).

    The box covers an area fraction drawn uniformly from ``scale`` and has an aspect ratio ``w / h`` drawn
    log-uniformly from ``ratio``; its position is uniform. Up to 10 draws are tried for a box that fits; after that
    the largest centred box whose ratio is clamped to ``ratio`` is taken (torchvision's fallback). The same box is
    applied to every key. ``last_box`` holds ``(top, left, height, width)`` of the latest crop.

    Args:
        keys: the keys of ``(C, H, W)`` images.
        size: output ``(H, W)`` (an int for a square).
        scale: range of the crop's area as a fraction of the image's.
        ratio: range of the crop's aspect ratio ``w / h``.
        mode: interpolation of :class:`monai.transforms.Resize` (``"bilinear"``, ``"nearest"``, ``"area"``...).
    """

    def __init__(
        self,
        keys: KeysCollection,
        size: Sequence[int] | int,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        mode: str = "bilinear",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {tuple(scale)}.")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {tuple(ratio)}.")
        self.size = tuple(int(s) for s in ensure_tuple_rep(size, 2))
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.resize = Resize(self.size, mode=mode, anti_aliasing=False)
        self.last_box: tuple[int, int, int, int] | None = None

    def randomize(self, shape: Sequence[int]) -> None:
        height, width = int(shape[0]), int(shape[1])
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * self.R.uniform(*self.scale)
            aspect = math.exp(self.R.uniform(*log_ratio))
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(self.R.randint(0, height - h + 1))
                left = int(self.R.randint(0, width - w + 1))
                self.last_box = (top, left, h, w)
                return
        aspect = width / height
        if aspect < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif aspect > self.ratio[1]:
            h, w = height, round(height * self.ratio[1])
        else:
            h, w = height, width
        self.last_box = ((height - h) // 2, (width - w) // 2, h, w)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        first = self.first_key(d)
        if first == ():
            return d
        if d[first].ndim != 3:
            raise ValueError(f"RandResizedCropd needs (C, H, W) images, got shape {tuple(d[first].shape)}.")
        self.randomize(d[first].shape[1:])
        top, left, h, w = self.last_box
        for key in self.key_iterator(d):
            d[key] = self.resize(d[key][:, top : top + h, left : left + w])
        return d


def ssl_augment_2d(
    size: Sequence[int] | int,
    keys: KeysCollection = "image",
    scale: Sequence[float] = (0.08, 1.0),
    flip_prob: float = 0.5,
    vertical_flip_prob: float = 0.5,
    jitter_prob: float = 0.8,
    brightness: float = 0.4,
    contrast: float = 0.4,
    blur_prob: float = 0.5,
    blur_sigma: Sequence[float] = (0.1, 2.0),
    clip: bool = True,
) -> Compose:
    """The SimCLR augmentation for grey (or RGB) ``(C, H, W)`` images in [0, 1], as a MONAI ``Compose``.

    1. :class:`RandResizedCropd` to ``size``, area fraction in ``scale`` (SimCLR: ``(0.08, 1)``), ratio 3/4-4/3;
    2. horizontal flip (``flip_prob``) and vertical flip (``vertical_flip_prob``; medical images have no canonical
       up, so both by default);
    3. intensity jitter, each with ``jitter_prob``: brightness ``x (1 + U(-b, b))`` (``RandScaleIntensityd``, as
       torchvision's brightness factor) and contrast ``(x - mean) (1 + U(-c, c)) + mean``
       (``RandScaleIntensityFixedMeand``, as torchvision's contrast); SimCLR's colour jitter at strength 0.5
       (0.4, 0.4). Saturation and hue do not exist for grey images and are left out;
    4. Gaussian blur with ``blur_prob`` and sigma in ``blur_sigma`` pixels (``RandGaussianSmoothd``; SimCLR: p 0.5,
       sigma 0.1-2.0 at 224 px; scale it down for 28 px images);
    5. with ``clip``, intensities clamped back to [0, 1] (torchvision clamps after each jitter).

    Pass it to :class:`~medssl_monai.transforms.MultiViewd` for two independently augmented views.
    """
    size2 = tuple(int(s) for s in ensure_tuple_rep(size, 2))
    sigma = (float(blur_sigma[0]), float(blur_sigma[1]))
    transforms = [
        RandResizedCropd(keys, size2, scale=scale),
        RandFlipd(keys, prob=flip_prob, spatial_axis=1),
        RandFlipd(keys, prob=vertical_flip_prob, spatial_axis=0),
        RandScaleIntensityd(keys, factors=brightness, prob=jitter_prob),
        RandScaleIntensityFixedMeand(keys, factors=contrast, prob=jitter_prob, fixed_mean=True),
        RandGaussianSmoothd(keys, sigma_x=sigma, sigma_y=sigma, prob=blur_prob),
    ]
    if clip:
        transforms.append(ScaleIntensityRanged(keys, a_min=0.0, a_max=1.0, b_min=0.0, b_max=1.0, clip=True))
    return Compose(transforms)
