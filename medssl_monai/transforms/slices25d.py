"""The 2.5D input of Zhao & Yang (MICCAI 2021, Sec. 3.1, KiTS19): 10 slices through the tumour, 64 x 64, as channels.

"We uniformly select 10 slice images for each tumor area because of a wide range of slice thicknesses. If there are
less than 10 slices, select slices repeatedly from the middle to the ends. And we resize these tumor slices to
10 x 64 x 64, and then send them to CNN as a whole." Made precise here:

- **Tumour slices.** The slices along ``axis`` (default: the last spatial axis, axial after MONAI ``LoadImaged`` +
  ``Orientationd("RAS")``) whose mask has a non-zero voxel, in increasing order: ``t_0 < ... < t_{n-1}``.
- **n >= 10, ``spread="uniform"`` (default, the paper's "uniformly select").** Positions
  ``floor(j (n - 1) / 9 + 0.5)``, ``j = 0..9``, of the tumour slices: evenly spaced from the first to the last tumour
  slice, so thin-slice and thick-slice scans both cover the whole tumour (the reason the paper gives).
  ``spread="central"``: the 10 consecutive tumour slices centred on the tumour's middle, positions
  ``(n - 10) // 2 .. (n - 10) // 2 + 9`` (when ``n - 10`` is odd the extra slice is left at the far end).
- **n < 10 ("repeatedly from the middle to the ends").** Order the tumour slices by distance of their position from
  the middle position ``(n - 1) / 2`` (ties: the lower position first), cycle through that order until 10 slices are
  taken, then sort by position. The middle slices get the extra repeats first: n = 3 gives ``t0 t0 t0 t1 t1 t1 t1
  t2 t2 t2``; n = 4 gives ``t0 t0 t1 t1 t1 t2 t2 t2 t3 t3``.
- **Crop.** One in-plane box for all 10 slices (so the channels stay aligned): the bounding box of the whole tumour
  projected on the slice plane, widened by ``margin`` pixels per side and clipped to the image.
- **Resize and scale.** Each slice is resized to 64 x 64 (bilinear), and the stack is scaled to [0, 1] (Sec. 2.3:
  "normalized to [0, 1]"): min-max over the stack, or, with ``intensity_range=(a_min, a_max)`` (a CT window),
  clipped to the window and scaled by it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Literal

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from torch.nn import functional as F

from .crop import _case, lesion_bounding_box

__all__ = ["Slices25Dd", "select_tumour_slices", "slices_25d"]

Spread = Literal["uniform", "central"]


def _positions(n: int, num_slices: int, spread: Spread) -> list[int]:
    """Positions (into the ``n`` tumour slices) of the ``num_slices`` selected slices, sorted."""
    if n >= num_slices:
        if spread == "uniform":
            if num_slices == 1:
                return [(n - 1) // 2]
            return [int(np.floor(j * (n - 1) / (num_slices - 1) + 0.5)) for j in range(num_slices)]
        start = (n - num_slices) // 2
        return list(range(start, start + num_slices))
    middle = (n - 1) / 2
    order = sorted(range(n), key=lambda p: (abs(p - middle), p))
    return sorted(order[j % n] for j in range(num_slices))


def select_tumour_slices(
    mask: np.ndarray | torch.Tensor,
    num_slices: int = 10,
    axis: int = -1,
    spread: Spread = "uniform",
    case: object = None,
) -> list[int]:
    """Indices along ``axis`` of the ``num_slices`` selected slices of a 3D ``mask`` (see the module docstring),
    sorted, with repeats when the tumour spans fewer slices. Raises ``ValueError`` naming ``case`` if it is empty."""
    m = np.asarray(mask)
    if m.ndim != 3:
        raise ValueError(f"select_tumour_slices expects a 3D mask, got shape {m.shape}{_case(case)}.")
    if num_slices < 1:
        raise ValueError(f"num_slices must be positive, got {num_slices}.")
    if spread not in ("uniform", "central"):
        raise ValueError(f"spread must be 'uniform' or 'central', got {spread!r}.")
    other = tuple(a for a in range(3) if a != axis % 3)
    tumour = np.flatnonzero(np.any(m != 0, axis=other))
    if tumour.size == 0:
        raise ValueError(f"the tumour mask is empty{_case(case)}: no slice goes through the tumour.")
    return [int(tumour[p]) for p in _positions(tumour.size, num_slices, spread)]


def _select(
    image: np.ndarray,
    mask: np.ndarray,
    num_slices: int,
    spatial_size: Sequence[int],
    axis: int,
    spread: Spread,
    margin: int,
    case: object,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(image stack, mask stack), each (num_slices, *spatial_size) float32; image not yet scaled."""
    if image.shape != mask.shape or image.ndim != 3:
        raise ValueError(f"image and mask must be 3D of one shape, got {image.shape} and {mask.shape}{_case(case)}.")
    chosen = select_tumour_slices(mask, num_slices, axis, spread, case)
    img = np.moveaxis(image, axis, 0)[chosen]  # (num_slices, h, w)
    msk = np.moveaxis(mask, axis, 0)[chosen]
    start, end = lesion_bounding_box(np.moveaxis(mask, axis, 0).any(0), case)
    lo = [max(s - margin, 0) for s in start]
    hi = [min(e + margin, n) for e, n in zip(end, img.shape[1:])]
    img = img[:, lo[0] : hi[0], lo[1] : hi[1]]
    if not np.isfinite(img).all():
        raise ValueError(f"the image has NaN or infinite values in the tumour slices{_case(case)}.")
    size = tuple(int(s) for s in spatial_size)
    img_t = torch.as_tensor(np.ascontiguousarray(img), dtype=torch.float32)[None]
    msk_t = torch.as_tensor(np.ascontiguousarray(msk[:, lo[0] : hi[0], lo[1] : hi[1]] != 0), dtype=torch.float32)[None]
    img_t = F.interpolate(img_t, size=size, mode="bilinear", align_corners=False)[0]
    msk_t = F.interpolate(msk_t, size=size, mode="nearest")[0]
    return img_t, msk_t


def _scale(stack: torch.Tensor, intensity_range: Sequence[float] | None) -> torch.Tensor:
    if intensity_range is not None:
        low, high = (float(v) for v in intensity_range)
        if not high > low:
            raise ValueError(f"intensity_range must be (a_min, a_max) with a_min < a_max, got {intensity_range}.")
        return (stack.clamp(low, high) - low) / (high - low)
    low, high = stack.min(), stack.max()
    return (stack - low) / (high - low) if high > low else torch.zeros_like(stack)


def slices_25d(
    image: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor,
    num_slices: int = 10,
    spatial_size: Sequence[int] = (64, 64),
    axis: int = -1,
    spread: Spread = "uniform",
    margin: int = 0,
    intensity_range: Sequence[float] | None = None,
    case: object = None,
) -> torch.Tensor:
    """The 2.5D input ``(num_slices, *spatial_size)`` in [0, 1] from a 3D ``image`` and its ``mask`` (one shape).

    Args:
        num_slices: slices stacked as channels; 10 (Zhao & Yang, Sec. 3.1).
        spatial_size: in-plane size of each slice; 64 x 64 (Sec. 3.1).
        axis: the slice axis of the 3D arrays; the last by default.
        spread: ``"uniform"`` (paper) or ``"central"`` selection when the tumour spans more slices than needed.
        margin: pixels added around the tumour's in-plane bounding box.
        intensity_range: ``(a_min, a_max)`` window to clip and scale by; ``None`` for min-max over the stack.
        case: a case name for error messages.
    """
    img, _ = _select(np.asarray(image), np.asarray(mask), num_slices, spatial_size, axis, spread, margin, case)
    return _scale(img, intensity_range)


class Slices25Dd(MapTransform):
    """Dictionary version of :func:`slices_25d`: ``image_key`` becomes the ``(num_slices, 64, 64)`` stack in [0, 1]
    and ``mask_key`` the same slices of the mask (nearest neighbours, 0/1), so both collate into batches.

    Inputs are 3D ``(H, W, D)`` or channel-first ``(1, H, W, D)``; ``axis`` counts spatial axes only. Errors (empty
    mask, NaN or infinite image) name the case by the sample's ``id``.
    """

    def __init__(
        self,
        image_key: str = "image",
        mask_key: str = "mask",
        num_slices: int = 10,
        spatial_size: Sequence[int] = (64, 64),
        axis: int = -1,
        spread: Spread = "uniform",
        margin: int = 0,
        intensity_range: Sequence[float] | None = None,
    ) -> None:
        keys: KeysCollection = (image_key, mask_key)
        super().__init__(keys)
        self.image_key, self.mask_key = image_key, mask_key
        self.num_slices = int(num_slices)
        self.spatial_size = tuple(spatial_size)
        self.axis = int(axis)
        self.spread = spread
        self.margin = int(margin)
        self.intensity_range = intensity_range

    @staticmethod
    def _volume(x: np.ndarray | torch.Tensor, key: str, case: object) -> np.ndarray:
        arr = np.asarray(x)
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 3:
            raise ValueError(f"Slices25Dd: {key!r} must be (H, W, D) or (1, H, W, D), got {arr.shape}{_case(case)}.")
        return arr

    def __call__(self, data: Mapping[Hashable, np.ndarray | torch.Tensor]) -> dict:
        d = dict(data)
        case = d.get("id")
        image = self._volume(d[self.image_key], self.image_key, case)
        mask = self._volume(d[self.mask_key], self.mask_key, case)
        img, msk = _select(image, mask, self.num_slices, self.spatial_size, self.axis, self.spread, self.margin, case)
        d[self.image_key] = _scale(img, self.intensity_range)
        d[self.mask_key] = msk
        return d
