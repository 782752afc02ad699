"""CT volumes as stacks of 2D slices: find them in a folder, read them as ``(N, H, W)`` arrays with one source per slice.

The slice reduction of Wolf et al., "Less is More: Selective Reduction of CT Data for Self-Supervised Pre-Training"
(Computers in Biology and Medicine 2024, Sec. 2.1) compares the slices of one CT volume pairwise. This module gives it
the volumes and their slices in a defined order, whatever the storage:

* **NIfTI** (``.nii``, ``.nii.gz``, nibabel) and **NRRD** (``.nrrd``, ``.nhdr``, pynrrd): slice ``k`` is the plane
  ``arr[..., k]`` across the LAST array axis, as these readers give the voxel array (``(x, y, z)`` voxel order, no
  reorientation); its source is ``path#k``. Trailing length-1 axes beyond the third are dropped; 2D and true 4D arrays
  are refused.
* **DICOM series**: a folder of ``.dcm`` files, or of extension-less files with the DICOM preamble. Slices are ordered by
  position: ``ImagePositionPatient`` projected on the slice normal (the cross product of the two
  ``ImageOrientationPatient`` directions), ascending, as ITK/GDCM order a series; ``InstanceNumber`` when a file has no
  position. ``RescaleSlope``/``RescaleIntercept`` are applied (values in HU). Each slice is the transposed pixel array,
  ``(Columns, Rows)`` = ``(x, y)``, the layout ITK, MONAI and nibabel give a volume, so a NIfTI converted from the
  series by ITK/MONAI reads back as the same stack. Its source is the file path. One series per folder.
* **Folders of 2D slice images** (PNG, JPEG, TIFF; Pillow): grouped into volumes by folder and by the name before the
  slice number, ``vol12_slice_3.png`` -> volume ``vol12``, slice 3; ``vol12/slice_003.png`` or ``vol12/003.png`` ->
  volume ``vol12``. Slices are ordered by the NUMBER, so ``_10`` comes after ``_2`` (the authors' released code sorted
  file names as text, which puts ``_10`` before ``_2``). An image is read as it is stored, ``(rows, columns)``; RGB
  images with equal channels give one channel, others their luminance. Its source is the file path.

Volume ids are the path relative to the dataset folder without the extension (``sub/case1``); every problem (corrupt
file, corrupt slice image, mixed slice sizes, 2D/4D array, duplicate slice numbers, no volume at all) raises
:class:`VolumeReadError` naming the file.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["CTVolume", "SliceStack", "VolumeReadError", "discover_volumes", "read_volume"]

logger = logging.getLogger(__name__)

_VOLUME_SUFFIXES = {".nii.gz": "nifti", ".nii": "nifti", ".nrrd": "nrrd", ".nhdr": "nrrd"}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
# "<volume><sep>slice<sep><number>" or "<volume><sep><number>": the LAST number of the stem is the slice index.
_SLICE_NAME = re.compile(r"^(?P<prefix>.*?)(?P<index>\d+)$")
_SLICE_WORD = re.compile(r"[_\-. ]*(slice|slc|image|img)?[_\-. ]*$", re.IGNORECASE)


class VolumeReadError(ValueError):
    """A volume or one of its slices cannot be read or is not a stack of equally sized 2D slices."""


@dataclass(frozen=True)
class SliceStack:
    """The slices of one volume: ``array[k]`` is slice ``k`` (``(N, H, W)``, the stored dtype or HU for DICOM), and
    ``sources[k]`` where it came from (``path#k`` for a slice inside a volume file, else the slice's file)."""

    array: np.ndarray
    sources: list[str]


@dataclass(frozen=True)
class CTVolume:
    """One volume found by :func:`discover_volumes`: ``id``, its ``kind`` (``nifti``, ``nrrd``, ``dicom`` or
    ``slices``), its ``path`` (file, DICOM folder, or folder of slice images) and, for ``dicom`` and ``slices``, its
    ``files`` (slice images already in slice order; DICOM files in name order, ordered by position on reading).
    Small and picklable: a worker process receives the record and calls :meth:`load`."""

    id: str
    kind: str
    path: str
    files: tuple[str, ...] = field(default=())

    def load(self) -> SliceStack:
        """Read the volume's slices (see the module docstring); raises :class:`VolumeReadError`."""
        return read_volume(self)


def discover_volumes(dataset_dir: str | os.PathLike, exclude: Iterable[str | os.PathLike] = ()) -> list[CTVolume]:
    """Every CT volume under ``dataset_dir`` (searched recursively; hidden files and folders and the folders in
    ``exclude``, e.g. an output folder inside the dataset, are skipped), sorted by id. ``dataset_dir`` may also be one
    volume file or one DICOM series folder. Raises :class:`VolumeReadError` when nothing is found, or for slice images
    whose names give two files the same slice number in one volume."""
    root = Path(dataset_dir).expanduser()
    if not root.exists():
        raise VolumeReadError(f"dataset folder '{root}' does not exist.")
    if root.is_file():
        kind = _volume_kind(root)
        if kind is None:
            raise VolumeReadError(f"'{root}' is not a NIfTI or NRRD file (.nii, .nii.gz, .nrrd, .nhdr).")
        return [CTVolume(_strip_suffix(root.name), kind, str(root))]
    skip = {Path(p).expanduser().resolve() for p in exclude}
    volumes: list[CTVolume] = []
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(folder)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in skip)
        files = sorted(here / name for name in filenames if not name.startswith("."))
        relative = here.relative_to(root).as_posix()
        folder_id = "" if relative == "." else relative
        volumes += [
            CTVolume(_join(folder_id, _strip_suffix(f.name)), k, str(f)) for f in files if (k := _volume_kind(f))
        ]
        dicom = [f for f in files if _is_dicom(f)]
        if dicom:
            volumes.append(CTVolume(folder_id or root.name, "dicom", str(here), tuple(map(str, dicom))))
        images = [f for f in files if f.name.lower().endswith(_IMAGE_SUFFIXES)]
        volumes += _group_slice_images(images, folder_id, root.name, here)
    if not volumes:
        raise VolumeReadError(
            f"no CT volume found in '{root}' (looked for .nii, .nii.gz, .nrrd, .nhdr files, DICOM series folders and "
            f"slice images {', '.join(_IMAGE_SUFFIXES)})."
        )
    return _unique_ids(volumes)


def read_volume(volume: CTVolume) -> SliceStack:
    """Read one volume's slices as a :class:`SliceStack`; raises :class:`VolumeReadError` naming the file."""
    readers = {"nifti": _read_nifti, "nrrd": _read_nrrd, "dicom": _read_dicom, "slices": _read_slice_images}
    if volume.kind not in readers:
        raise VolumeReadError(f"volume '{volume.id}': unknown kind '{volume.kind}'.")
    return readers[volume.kind](volume)


# ----------------------------------------------------------------------------------------------------------- discovery
def _volume_kind(path: Path) -> str | None:
    name = path.name.lower()
    return next((kind for suffix, kind in _VOLUME_SUFFIXES.items() if name.endswith(suffix)), None)


def _strip_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in (*_VOLUME_SUFFIXES, *_IMAGE_SUFFIXES, ".dcm"):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _join(*parts: str) -> str:
    return "/".join(part for part in parts if part)


def _is_dicom(path: Path) -> bool:
    """A ``.dcm`` file, or an extension-less file with the ``DICM`` marker after its 128-byte preamble."""
    if path.name.lower().endswith(".dcm"):
        return True
    if path.suffix and not re.fullmatch(r"\.\d+", path.suffix):  # "CT.1.2.840...": UID-like names are extension-less
        return False
    try:
        with path.open("rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _group_slice_images(images: list[Path], folder_id: str, root_name: str, folder: Path) -> list[CTVolume]:
    groups: dict[str, dict[int, Path]] = defaultdict(dict)
    for image in images:
        stem = _strip_suffix(image.name)
        match = _SLICE_NAME.match(stem)
        if match is None:
            raise VolumeReadError(f"slice image '{image}': no slice number at the end of its name (e.g. vol1_slice_3).")
        prefix = _SLICE_WORD.sub("", match["prefix"])
        index = int(match["index"])
        group = groups[prefix]
        if index in group:
            raise VolumeReadError(f"slice images '{group[index]}' and '{image}' both have slice number {index}.")
        group[index] = image
    return [
        CTVolume(
            _join(folder_id, prefix) or root_name,
            "slices",
            str(folder),
            tuple(str(group[i]) for i in sorted(group)),
        )
        for prefix, group in sorted(groups.items())
    ]


def _unique_ids(volumes: list[CTVolume]) -> list[CTVolume]:
    """Sorted by id; where two volumes share an id (``case.nii.gz`` and ``case.nrrd``), both get their file name."""
    counts: dict[str, int] = defaultdict(int)
    for volume in volumes:
        counts[volume.id] += 1
    renamed = []
    for volume in volumes:
        if counts[volume.id] > 1:
            suffix = Path(volume.path).name if volume.kind in ("nifti", "nrrd") else volume.kind
            volume = CTVolume(_join(volume.id.rpartition("/")[0], suffix), volume.kind, volume.path, volume.files)
        renamed.append(volume)
    ids = [volume.id for volume in renamed]
    if len(set(ids)) != len(ids):
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        raise VolumeReadError(f"several volumes have the id(s) {duplicated}: rename them.")
    return sorted(renamed, key=lambda volume: volume.id)


# ------------------------------------------------------------------------------------------------------------- readers
def _as_slices(array: np.ndarray, path: str) -> SliceStack:
    """``arr[..., k]`` -> ``stack[k]``: a 3D array (after dropping trailing length-1 axes) with slices along its last
    axis."""
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise VolumeReadError(f"'{path}' holds a {array.ndim}D array of shape {array.shape}: expected a 3D volume.")
    if array.dtype.kind not in "biuf":
        raise VolumeReadError(f"'{path}' has voxels of type {array.dtype}: expected integers or floats.")
    stack = np.ascontiguousarray(np.moveaxis(array, -1, 0))
    return SliceStack(stack, [f"{path}#{k}" for k in range(stack.shape[0])])


def _read_nifti(volume: CTVolume) -> SliceStack:
    import nibabel as nib

    try:
        array = np.asanyarray(nib.load(volume.path).dataobj)
    except Exception as err:
        raise VolumeReadError(f"cannot read NIfTI '{volume.path}': {type(err).__name__}: {err}") from err
    return _as_slices(np.asarray(array), volume.path)


def _read_nrrd(volume: CTVolume) -> SliceStack:
    import nrrd

    try:
        array, _ = nrrd.read(volume.path)
    except Exception as err:
        raise VolumeReadError(f"cannot read NRRD '{volume.path}': {type(err).__name__}: {err}") from err
    return _as_slices(np.asarray(array), volume.path)


def _read_dicom(volume: CTVolume) -> SliceStack:
    import pydicom

    headers = []
    for file in volume.files:
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
        except Exception as err:
            raise VolumeReadError(f"cannot read DICOM file '{file}': {type(err).__name__}: {err}") from err
        if "PixelData" not in ds and "Rows" not in ds:  # DICOMDIR, structured reports ...: not slices
            logger.debug("Skipping DICOM file without an image: %s", file)
            continue
        headers.append((file, ds))
    if not headers:
        raise VolumeReadError(f"DICOM folder '{volume.path}' holds no image.")
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in headers}
    if len(series) > 1:
        raise VolumeReadError(
            f"DICOM folder '{volume.path}' holds {len(series)} series ({', '.join(sorted(series))}): one per folder."
        )
    ordered = _order_dicom(headers, volume.path)
    slices = []
    shape = None
    for file, _ in ordered:
        try:
            ds = pydicom.dcmread(file)
            pixels = ds.pixel_array
        except Exception as err:
            raise VolumeReadError(
                f"cannot read the pixels of DICOM file '{file}': {type(err).__name__}: {err}"
            ) from err
        if pixels.ndim != 2:
            raise VolumeReadError(
                f"DICOM file '{file}' holds a {pixels.ndim}D image {pixels.shape}: expected one slice."
            )
        if shape is None:
            shape = pixels.shape
        elif pixels.shape != shape:
            raise VolumeReadError(
                f"DICOM file '{file}' has a {pixels.shape} slice, the series' first slice is {shape}: mixed sizes."
            )
        slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
        slices.append((pixels, slope, intercept))
    integral = all(s.is_integer() and i.is_integer() for _, s, i in slices)
    dtype = np.int32 if integral else np.float32
    stack = np.stack([(p.astype(np.float64) * s + i).astype(dtype).T for p, s, i in slices])
    return SliceStack(stack, [file for file, _ in ordered])


def _order_dicom(headers: list, folder: str) -> list:
    """Sort DICOM slices by position along the slice normal (ascending), else by ``InstanceNumber``."""

    def position(ds) -> float | None:
        ipp, iop = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
        if ipp is None or iop is None or len(ipp) != 3 or len(iop) != 6:
            return None
        normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
        return float(np.dot(normal, np.asarray(ipp, float)))

    keys = [position(ds) for _, ds in headers]
    rule = "ImagePositionPatient"
    if any(key is None for key in keys):
        keys = [ds.get("InstanceNumber") for _, ds in headers]
        rule = "InstanceNumber"
        missing = [file for (file, _), key in zip(headers, keys) if key is None]
        if missing:
            raise VolumeReadError(f"DICOM file '{missing[0]}' has neither ImagePositionPatient nor InstanceNumber.")
        keys = [float(key) for key in keys]
    order = sorted(range(len(headers)), key=lambda i: keys[i])
    for a, b in itertools.pairwise(order):
        if np.isclose(keys[a], keys[b], rtol=0, atol=1e-4):
            raise VolumeReadError(
                f"DICOM files '{headers[a][0]}' and '{headers[b][0]}' in '{folder}' have the same {rule} ({keys[a]:g})."
            )
    return [headers[i] for i in order]


def _read_slice_images(volume: CTVolume) -> SliceStack:
    from PIL import Image, UnidentifiedImageError

    slices = []
    for file in volume.files:
        try:
            with Image.open(file) as image:
                image.load()
                pixels = _grey(image)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise VolumeReadError(f"cannot read slice image '{file}': {type(err).__name__}: {err}") from err
        if slices and pixels.shape != slices[0].shape:
            raise VolumeReadError(
                f"slice image '{file}' is {pixels.shape}, slice '{volume.files[0]}' of the same volume is "
                f"{slices[0].shape}: mixed sizes."
            )
        slices.append(pixels)
    return SliceStack(np.stack(slices), list(volume.files))


def _grey(image) -> np.ndarray:
    """One channel: as stored for greyscale modes; RGB(A) with equal channels -> the first one, else luminance."""
    if image.mode in ("RGB", "RGBA"):
        rgb = np.asarray(image.convert("RGB"))
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all():
            return np.ascontiguousarray(rgb[..., 0])
        return np.asarray(image.convert("L"))
    if image.mode in ("P", "LA", "PA", "CMYK", "YCbCr", "1"):
        return np.asarray(image.convert("L"))
    return np.asarray(image)
