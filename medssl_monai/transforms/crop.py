"""Lesion-centred crop with background padding (Li et al., MICCAI 2021, Sec. 3, BraTS set-up)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import BorderPad, MapTransform, SpatialCrop
from monai.utils import ensure_tuple_rep

__all__ = ["LesionCropd"]


class LesionCropd(MapTransform):
    """Crop a box of ``roi_size`` centred on the mask's centroid; pad what falls outside the volume.

    "We make use of the segmentation mask to get the centroid and generate a 3D bounding box of 96x96x96 to
    localize the tumour. If the bounding box exceeds the original volume, the out-of-box region was padded with
    background intensity." (Li et al., Sec. 3.)

    The box starts at ``floor(centroid + 0.5) - roi_size // 2`` (halves round up) on each axis, so the centroid voxel
    sits at index ``roi_size // 2`` of the crop. Image keys are padded with the background intensity: the image minimum
    by default (``background="min"``), or a given number. The mask (``source_key``) is padded with 0. When the sample
    has no ``source_key`` (MedMNIST: no masks) the transform passes it through unchanged.
    """

    def __init__(
        self,
        keys: KeysCollection = ("image", "mask"),
        source_key: str = "mask",
        roi_size: Sequence[int] | int = 96,
        background: float | str = "min",
        allow_missing_keys: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.source_key = source_key
        self.roi_size = roi_size
        if not (isinstance(background, (int, float)) or background == "min"):
            raise ValueError(f"background must be 'min' or a number, got {background!r}.")
        self.background = background

    def box(self, mask: torch.Tensor) -> tuple[list[int], list[int]]:
        """``(start, end)`` of the crop box in voxel indices; may extend past the volume."""
        spatial = mask.shape[1:]
        roi = ensure_tuple_rep(self.roi_size, len(spatial))
        fg = torch.nonzero(torch.as_tensor(mask).any(0))
        if fg.numel() == 0:
            raise ValueError("LesionCropd: the mask is empty, no centroid to crop around.")
        centroid = fg.float().mean(0)
        start = [int(torch.floor(c + 0.5)) - r // 2 for c, r in zip(centroid, roi)]
        return start, [s + r for s, r in zip(start, roi)]

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        if self.source_key not in d:
            return d
        start, end = self.box(d[self.source_key])
        spatial = d[self.source_key].shape[1:]
        lo = [max(s, 0) for s in start]
        hi = [min(e, n) for e, n in zip(end, spatial)]
        border = [v for s, e, a, b in zip(start, end, lo, hi) for v in (a - s, e - b)]
        crop = SpatialCrop(roi_start=lo, roi_end=hi)
        for key in self.key_iterator(d):
            img = crop(d[key])
            if key == self.source_key:
                value = 0.0
            elif self.background == "min":
                value = float(d[key].min())
            else:
                value = float(self.background)
            d[key] = BorderPad(spatial_border=border, mode="constant", value=value)(img) if any(border) else img
        return d
