"""Image and mask inputs of the radiomics extraction: read them as SimpleITK images, check them, fingerprint them.

A source is a file path (NIfTI, NRRD, MHA ... anything ``SimpleITK.ReadImage`` reads), a folder holding one DICOM
series (``SimpleITK.ImageSeriesReader``), or a numpy array. Arrays are indexed ``(D, H, W)`` = ``(z, y, x)``, or
``(H, W)`` = ``(y, x)`` for 2D images (``SimpleITK.GetImageFromArray``), and get spacing 1 mm, origin 0 and identity
direction.

2D images (PNG, 2D NIfTI/NRRD, 2D arrays) stay 2D: PyRadiomics extracts from them natively, with the ``shape2D`` class
in place of ``shape`` (Zhao & Yang's TN-SCUI2020 ultrasound set, MICCAI 2021 Sec. 3.1).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

__all__ = ["prepare_case", "read_source", "source_digest"]

# 8- and 16-bit pixel types are widened to int32: PyRadiomics 3.1 computes its bin edges (``maximum + 2 * binWidth``,
# radiomics/imageoperations.py getBinEdges) in the image's own type, which under NumPy 2 (NEP 50) wraps around for
# uint8 255 + 50 and makes the GLCM calculation fail. Values are unchanged by the cast.
_WIDEN = {sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16}


def read_source(source, role: str = "image") -> sitk.Image:
    """Read one source (path, DICOM folder or array) as a SimpleITK image; ``role`` names it in error messages."""
    if isinstance(source, np.ndarray):
        return _from_array(source, role)
    path = Path(os.fspath(source)).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{role} '{path}' does not exist.")
    try:
        if path.is_dir():
            return _read_dicom_series(path)
        if path.name.lower().endswith(".gz"):
            _check_gzip(path)
        return sitk.ReadImage(str(path))
    except RuntimeError as err:  # SimpleITK's reader errors: the last line says what went wrong
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        reason = lines[-1].removeprefix("sitk::ERROR:").strip() if lines else type(err).__name__
        raise ValueError(f"cannot read {role} '{path}': {reason}") from err


def _from_array(array: np.ndarray, role: str) -> sitk.Image:
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    elif not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{role} array has dtype {array.dtype}: expected integers or floats.")
    if array.ndim not in (2, 3):
        raise ValueError(f"{role} array has shape {array.shape}: expected a 3D volume (D, H, W) or a 2D image (H, W).")
    return sitk.GetImageFromArray(np.ascontiguousarray(array))  # spacing 1 mm, origin 0, identity direction


def _check_gzip(path: Path) -> None:
    """Decompress a ``.gz`` file to its end (gzip checks length and CRC): ITK's NIfTI reader accepts a truncated
    ``.nii.gz`` without an error and fills the missing voxels, which would give silently wrong features."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 22):
                pass
    except (OSError, EOFError, zlib.error) as err:
        raise RuntimeError(f"truncated or corrupt gzip stream ({err})") from err


def _read_dicom_series(folder: Path) -> sitk.Image:
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise ValueError("no DICOM series in this folder")
    if len(series) > 1:
        raise ValueError(f"the folder holds {len(series)} DICOM series ({', '.join(series)}): point at one")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0]))
    return reader.Execute()


def source_digest(source, role: str = "image") -> str:
    """SHA-256 of a source's content: the file's bytes, every file of a DICOM series folder (names and bytes, in
    name order), or an array's dtype, shape and bytes. Raises ``FileNotFoundError`` for a missing path."""
    digest = hashlib.sha256()
    if isinstance(source, np.ndarray):
        array = np.ascontiguousarray(source)
        digest.update(f"array:{array.dtype.str}:{array.shape}:".encode())
        digest.update(array.tobytes())
        return digest.hexdigest()
    path = Path(os.fspath(source)).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{role} '{path}' does not exist.")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(f"file:{file.relative_to(path) if path.is_dir() else ''}:{file.stat().st_size}:".encode())
        with file.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def prepare_case(
    image_source, mask_source=None, settings: dict | None = None, binarize_mask: bool = False
) -> tuple[sitk.Image, sitk.Image]:
    """Read and check one case; returns ``(image, mask)`` ready for ``RadiomicsFeatureExtractor.execute``.

    The ROI is the voxels of ``mask`` equal to ``settings["label"]`` (default 1). Without a mask, the ROI is the
    image's non-zero voxels (MedMNIST volumes have no masks). With ``binarize_mask``, every non-zero mask voxel is ROI
    (multi-class segmentations such as BraTS, labels 1-4). Raises ``ValueError`` with the problem for: an image that is
    not a 2D or 3D scalar image, non-finite (NaN/inf) image voxels, a mask whose size differs from the image's (unless the
    ``correctMask`` setting asks PyRadiomics to resample it), and an empty ROI. A 2D image (with a 2D mask) is kept 2D;
    enable ``shape2D`` rather than ``shape`` for it (the bundle's ``radiomics_2d.yaml``). Other geometry differences (spacing,
    origin, direction) are PyRadiomics' check (``geometryTolerance``, ``correctMask``).
    """
    settings = settings or {}
    label = int(settings.get("label", 1))
    image = read_source(image_source, "image")
    if image.GetDimension() not in (2, 3) or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"image has size {image.GetSize()} with {image.GetNumberOfComponentsPerPixel()} component(s) per voxel: "
            "expected a 3D scalar volume or a 2D scalar image."
        )
    if image.GetPixelID() in _WIDEN:
        image = sitk.Cast(image, sitk.sitkInt32)
    voxels = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(voxels.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(voxels)))
        if bad:
            raise ValueError(f"image has {bad} non-finite voxel(s) (NaN or inf).")

    if mask_source is None:
        mask = sitk.Cast(sitk.NotEqual(image, 0), sitk.sitkUInt32) * label
        if not np.any(sitk.GetArrayViewFromImage(mask)):
            raise ValueError("image has no non-zero voxel (no mask given: the ROI is the image's non-zero region).")
        return image, mask

    mask = read_source(mask_source, "mask")
    if mask.GetNumberOfComponentsPerPixel() > 1:  # a segmentation object: pick the channel as PyRadiomics does
        mask = sitk.VectorIndexSelectionCast(mask, int(settings.get("label_channel", 0)))
    if mask.GetDimension() != image.GetDimension():
        raise ValueError(
            f"mask has size {mask.GetSize()} ({mask.GetDimension()}D) but the image has {image.GetSize()} "
            f"({image.GetDimension()}D): expected a {image.GetDimension()}D label map."
        )
    if mask.GetSize() != image.GetSize() and not settings.get("correctMask", False):
        raise ValueError(
            f"image and mask sizes differ: image {image.GetSize()}, mask {mask.GetSize()} "
            "(set correctMask: true in the parameters to resample the mask onto the image)."
        )
    if binarize_mask:
        mask = sitk.Cast(sitk.NotEqual(mask, 0), sitk.sitkUInt32) * label
    values = sitk.GetArrayViewFromImage(mask)
    if not np.any(values == label):
        present = np.unique(values)
        shown = ", ".join(f"{v:g}" for v in present[:10]) + (" ..." if len(present) > 10 else "")
        hint = "" if binarize_mask or not present.any() else "; binarize_mask=True takes every non-zero voxel"
        raise ValueError(f"mask has no voxel with label {label} (values present: {shown}{hint}).")
    return image, mask
