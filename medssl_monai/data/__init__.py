"""Readers and dataset builders: synthetic phantoms, MedMNIST npz, image + mask datalists, CT volumes as slice stacks.

Every reader returns a datalist: a list of dicts with ``image`` (a file path, or an array for in-memory data),
optional ``mask``, optional ``label`` (class index) and ``id``. :func:`build_datalist` picks the reader from
what ``dataset_dir`` points at, so one bundle config serves every input.
"""

from .ct_slices import load_manifest_slices
from .ct_volumes import CTVolume, SliceStack, VolumeReadError, discover_volumes, read_volume
from .datalist import (
    build_datalist,
    datalists_2d,
    dataset_datalists,
    folder_datalist,
    held_out_datalist,
    json_datalist,
)
from .dataset import ReportingDataset, collate_reporting, root_cause
from .images2d import IMAGE_EXTENSIONS, class_folder_datalist, read_image_2d, to_channels
from .medmnist import default_roi_size, medmnist_datalist
from .phantoms import make_phantom, synthetic_datalist
from .splitting import stratified_split
from .synthetic2d import make_image_2d, synthetic_2d_datalist
from .synthetic_ct import make_synthetic_ct, write_synthetic_ct_folder

__all__ = [
    "IMAGE_EXTENSIONS",
    "CTVolume",
    "ReportingDataset",
    "SliceStack",
    "VolumeReadError",
    "build_datalist",
    "class_folder_datalist",
    "collate_reporting",
    "datalists_2d",
    "dataset_datalists",
    "default_roi_size",
    "discover_volumes",
    "folder_datalist",
    "held_out_datalist",
    "json_datalist",
    "load_manifest_slices",
    "make_image_2d",
    "make_phantom",
    "make_synthetic_ct",
    "medmnist_datalist",
    "read_image_2d",
    "read_volume",
    "root_cause",
    "stratified_split",
    "synthetic_2d_datalist",
    "synthetic_datalist",
    "to_channels",
    "write_synthetic_ct_folder",
]
