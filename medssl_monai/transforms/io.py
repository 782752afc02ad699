"""Load an image (and its mask) from a file or an in-memory array, and reject bad input with a clear message."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import LoadImage, MapTransform

from ..data.images2d import read_image_2d, to_channels

__all__ = ["LoadImage2Dd", "LoadVolumed"]


class LoadVolumed(MapTransform):
    """Load ``image`` and optional ``mask`` as channel-first float ``MetaTensor``s and validate them.

    A value that is a path goes through MONAI's :class:`~monai.transforms.LoadImage` (NIfTI via nibabel, NRRD via
    pynrrd, a DICOM series folder via pydicom); an array (MedMNIST, phantoms) is wrapped as it is, channel added.

    Raises ``ValueError`` naming the case and the file when: the file cannot be read; the image does not have
    ``spatial_dims`` spatial axes (a 2D image given to a 3D bundle); it holds NaN or infinite voxels; the mask's
    shape or voxel spacing differs from the image's; the mask is empty. A mask is binarised (any non-zero label is
    foreground).

    Args:
        keys: the image key and, optionally, the mask key (``mask_key``).
        mask_key: which key is the mask.
        spatial_dims: required number of spatial axes.
        spacing_tol: relative tolerance of the spacing comparison.
    """

    def __init__(
        self,
        keys: KeysCollection = ("image", "mask"),
        mask_key: str = "mask",
        spatial_dims: int = 3,
        spacing_tol: float = 1e-3,
        id_key: str = "id",
        allow_missing_keys: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mask_key = mask_key
        self.spatial_dims = spatial_dims
        self.spacing_tol = spacing_tol
        self.id_key = id_key
        self.loader = LoadImage(image_only=True, ensure_channel_first=True)

    def _describe(self, d: Mapping, key: Hashable) -> str:
        value = d[key]
        where = f"file '{value}'" if isinstance(value, (str, Path)) else f"array from {d.get('source', 'memory')}"
        return f"case '{d.get(self.id_key, '?')}': {key} {where}"

    def _load(self, d: Mapping, key: Hashable) -> MetaTensor:
        value = d[key]
        if isinstance(value, (str, Path)):
            if not Path(value).exists():
                raise ValueError(f"{self._describe(d, key)} does not exist.")
            try:
                img = self.loader(str(value))
            except Exception as err:
                raise ValueError(f"{self._describe(d, key)} cannot be read: {type(err).__name__}: {err}") from err
        else:
            arr = torch.as_tensor(np.asarray(value))
            if arr.ndim not in (self.spatial_dims, self.spatial_dims + 1):
                raise ValueError(
                    f"{self._describe(d, key)} has {arr.ndim} dimensions (shape {tuple(arr.shape)}), but this workflow "
                    f"needs {self.spatial_dims}D volumes: arrays of shape (D, H, W) or channel-first (C, D, H, W)."
                )
            img = MetaTensor(arr[None] if arr.ndim == self.spatial_dims else arr)
        if img.ndim - 1 != self.spatial_dims:
            raise ValueError(
                f"{self._describe(d, key)} has {img.ndim - 1} spatial dimensions (shape {tuple(img.shape[1:])} after "
                f"adding the channel), but this workflow needs {self.spatial_dims}D volumes."
            )
        return img

    def __call__(self, data: Mapping[Hashable, np.ndarray]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = self._load(d, key).float()
            if key == self.mask_key:
                img = (img > 0).float()
            else:
                bad = int((~torch.isfinite(img)).sum())
                if bad:
                    raise ValueError(f"{self._describe(d, key)} holds {bad} NaN or infinite voxels.")
            d[key] = img
        if self.mask_key in d and any(k in d for k in self.keys if k != self.mask_key):
            self._check_mask(data, d)
        return d

    def _check_mask(self, raw: Mapping, d: dict) -> None:
        mask = d[self.mask_key]
        for key in self.key_iterator(d):
            if key == self.mask_key:
                continue
            img = d[key]
            if tuple(img.shape[1:]) != tuple(mask.shape[1:]):
                raise ValueError(
                    f"{self._describe(raw, key)} has spatial shape {tuple(img.shape[1:])} but its mask "
                    f"'{raw[self.mask_key] if isinstance(raw[self.mask_key], (str, Path)) else 'array'}' has "
                    f"{tuple(mask.shape[1:])}: image/mask geometry mismatch."
                )
            if isinstance(raw[key], (str, Path)) and isinstance(raw[self.mask_key], (str, Path)):
                s_img, s_mask = _spacing(img), _spacing(mask)
                if not np.allclose(s_img, s_mask, rtol=self.spacing_tol, atol=1e-6):
                    raise ValueError(
                        f"{self._describe(raw, key)} has voxel spacing {tuple(np.round(s_img, 4))} but its mask "
                        f"'{raw[self.mask_key]}' has {tuple(np.round(s_mask, 4))}: image/mask geometry mismatch."
                    )
        if not bool(mask.any()):
            raise ValueError(f"{self._describe(raw, self.mask_key)} is empty (no foreground voxel).")


class LoadImage2Dd(MapTransform):
    """Load a 2D image (a PNG/JPEG/TIFF/BMP path, or an in-memory array from an npz) as a ``(channels, H, W)`` float
    tensor, so grey and RGB files of one set batch together (Kermany's X-rays mix grey and RGB JPEGs).

    Files are read by :func:`~medssl_monai.data.read_image_2d` (RGB to grey by BT.601 luminance when
    ``channels=1``). Arrays may be ``(H, W)``, ``(H, W, 3)`` or channel-first ``(C, H, W)`` with ``C == channels``.
    Integer images are divided by their dtype's maximum (uint8 / 255), so the output lies in [0, 1]; float images are
    kept as they are.
    """

    def __init__(self, keys: KeysCollection = "image", channels: int = 1, id_key: str = "id") -> None:
        super().__init__(keys)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}.")
        self.channels = channels
        self.id_key = id_key

    def _array(self, value) -> np.ndarray:
        if isinstance(value, (str, Path)):
            return read_image_2d(value, self.channels)
        arr = np.asarray(value)
        if arr.ndim == 3 and arr.shape[0] == self.channels and arr.shape[-1] not in (3, 4):
            return arr
        return to_channels(arr, self.channels)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            try:
                arr = self._array(d[key])
            except ValueError as err:
                raise ValueError(f"case '{d.get(self.id_key, '?')}': {key}: {err}") from err
            out = torch.from_numpy(arr.astype(np.float32))
            if np.issubdtype(arr.dtype, np.integer):
                out /= float(np.iinfo(arr.dtype).max)
            d[key] = out
        return d


def _spacing(img: MetaTensor) -> np.ndarray:
    affine = np.asarray(img.affine, dtype=np.float64)
    return np.sqrt((affine[:-1, :-1] ** 2).sum(axis=0))
