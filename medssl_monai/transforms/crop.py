"""Lesion crops: a fixed box centred on the lesion with background padding (Li et al., MICCAI 2021, Sec. 3, BraTS
set-up), and the lesion's bounding box resized to a common size and scaled to [0, 1] (Zhao & Yang, MICCAI 2021,
Sec. 2.3 and 3.1)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import BorderPad, MapTransform, Resize, SpatialCrop
from monai.utils import ensure_tuple, ensure_tuple_rep

from .io import LoadVolumed

__all__ = ["LesionBoxResized", "LesionCropd", "average_lesion_size", "datalist_lesion_size", "lesion_bounding_box"]


def _case(case: object) -> str:
    return f" (case {case!r})" if case is not None else ""


def lesion_bounding_box(mask: np.ndarray | torch.Tensor, case: object = None) -> tuple[list[int], list[int]]:
    """``(start, end)`` (end exclusive) of the smallest box holding every non-zero voxel of ``mask`` (any ndim).

    Raises ``ValueError`` naming ``case`` when the mask is empty.
    """
    fg = np.argwhere(np.asarray(mask) != 0)
    if fg.size == 0:
        raise ValueError(f"the lesion mask is empty{_case(case)}: no lesion to crop.")
    return fg.min(0).tolist(), (fg.max(0) + 1).tolist()


def average_lesion_size(masks: Iterable[np.ndarray | torch.Tensor]) -> tuple[int, ...]:
    """The lesions' mean bounding-box extent per axis, rounded (half up): the "average size" that Zhao & Yang resize
    every tumour area to (Sec. 2.3; 196 x 160 for TN-SCUI2020, Sec. 3.1). Give masks without a channel axis."""
    extents = [np.subtract(*lesion_bounding_box(m)[::-1]) for m in masks]
    if not extents:
        raise ValueError("average_lesion_size needs at least one mask.")
    return tuple(int(np.floor(e + 0.5)) for e in np.mean(extents, axis=0))


def datalist_lesion_size(datalist: Sequence[Mapping], spatial_dims: int = 2, mask_key: str = "mask") -> tuple[int, ...]:
    """:func:`average_lesion_size` of a datalist's masks (paths or arrays, read by
    :class:`~medssl_monai.transforms.LoadVolumed` with ``spatial_dims``): the size Zhao & Yang resize every tumour
    area to (Sec. 2.3). Raises ``ValueError`` naming the case for a case without a mask or with an empty mask."""
    if not datalist:
        raise ValueError("datalist_lesion_size needs a non-empty datalist.")
    load = LoadVolumed(keys=mask_key, mask_key=mask_key, spatial_dims=spatial_dims, allow_missing_keys=False)
    masks = []
    for item in datalist:
        if mask_key not in item:
            raise ValueError(f"case '{item.get('id', '?')}' has no {mask_key!r}: the lesion size needs masks.")
        mask = load(item)[mask_key][0]
        if not bool(mask.any()):
            raise ValueError(f"case '{item.get('id', '?')}': {mask_key} is empty (no lesion).")
        masks.append(mask.numpy())
    return average_lesion_size(masks)


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
        if any(int(r) < 1 for r in ensure_tuple(roi_size)):
            raise ValueError(f"roi_size must be at least 1 voxel per axis, got {roi_size}.")
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


class LesionBoxResized(MapTransform):
    """Crop the lesion's bounding box (from the mask), resize it to ``spatial_size``, scale the image to [0, 1].

    Zhao & Yang's image view (Sec. 2.3): "different sized tumor areas are resized to the average size and then
    normalized to [0, 1]"; for TN-SCUI2020 "we crop nodule areas from images and resize the areas to 196x160" (Sec.
    3.1). :func:`average_lesion_size` computes the average size of a data set. The random crop and resize back of the
    paper's augmentation is MONAI's ``RandSpatialCropd`` + ``Resized``, configured in the bundle.

    Channel-first inputs ``(C, *spatial)`` (2D or 3D). The box is the bounding box of ``source_key > 0`` over all
    channels, widened by ``margin`` voxels per side and clipped to the image; every key is cropped to it. The mask
    (``source_key``) is resized with nearest neighbours, other keys with (bi/tri)linear interpolation and then min-max
    scaled to [0, 1] over the crop (a constant crop becomes 0). Empty masks and non-finite images raise ``ValueError``
    naming the case (``id`` of the sample).
    """

    def __init__(
        self,
        keys: KeysCollection = ("image", "mask"),
        spatial_size: Sequence[int] | int = (196, 160),
        source_key: str = "mask",
        margin: int = 0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if margin < 0:
            raise ValueError(f"margin must be non-negative, got {margin}.")
        self.spatial_size = spatial_size
        self.source_key = source_key
        self.margin = int(margin)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        case = d.get("id")
        if self.source_key not in d:
            raise ValueError(f"LesionBoxResized: no {self.source_key!r} in the sample{_case(case)}.")
        mask = d[self.source_key]
        spatial = mask.shape[1:]
        start, end = lesion_bounding_box(np.asarray(mask).any(0), case)
        lo = [max(s - self.margin, 0) for s in start]
        hi = [min(e + self.margin, n) for e, n in zip(end, spatial)]
        crop = SpatialCrop(roi_start=lo, roi_end=hi)
        size = ensure_tuple_rep(self.spatial_size, len(spatial))
        linear = "bilinear" if len(spatial) == 2 else "trilinear"
        for key in self.key_iterator(d):
            img = torch.as_tensor(crop(d[key]), dtype=torch.float32)
            if key == self.source_key:
                d[key] = Resize(size, mode="nearest")(img)
                continue
            if not torch.isfinite(img).all():
                raise ValueError(
                    f"LesionBoxResized: {key!r} has NaN or infinite values in the lesion box{_case(case)}."
                )
            img = Resize(size, mode=linear, anti_aliasing=False)(img)
            low, high = img.min(), img.max()
            d[key] = (img - low) / (high - low) if high > low else torch.zeros_like(img)
        return d
