"""A lesion mask for images that come without one: the image's non-zero region (MedMNIST volumes such as
AdrenalMNIST3D hold the organ on a zero background; PyRadiomics extraction in :mod:`medssl_monai.radiomics` uses the
same ROI for items without a mask)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.transforms import MapTransform

__all__ = ["ForegroundMaskd"]


class ForegroundMaskd(MapTransform):
    """Add ``mask_key = (image > threshold)`` (float 0/1, same shape) when the sample has no ``mask_key``; a sample
    with a mask passes unchanged. An all-background image raises ``ValueError`` naming the case (``id``)."""

    def __init__(self, image_key: str = "image", mask_key: str = "mask", threshold: float = 0.0) -> None:
        super().__init__([image_key])
        self.image_key, self.mask_key, self.threshold = image_key, mask_key, float(threshold)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        if d.get(self.mask_key) is not None:
            return d
        mask = (torch.as_tensor(d[self.image_key]) > self.threshold).float()
        if not bool(mask.any()):
            raise ValueError(f"ForegroundMaskd: case {d.get('id', '?')!r} has no voxel above {self.threshold}.")
        d[self.mask_key] = mask
        return d
