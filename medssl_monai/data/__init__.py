"""Readers and dataset builders: synthetic phantoms, MedMNIST npz, image + mask datalists.

Every reader returns a datalist: a list of dicts with ``image`` (a file path, or an array for in-memory data),
optional ``mask``, optional ``label`` (class index) and ``id``. :func:`build_datalist` picks the reader from
what ``dataset_dir`` points at, so one bundle config serves every input.
"""

from .datalist import build_datalist, folder_datalist, json_datalist
from .dataset import ReportingDataset, collate_reporting, root_cause
from .medmnist import medmnist_datalist
from .phantoms import make_phantom, synthetic_datalist

__all__ = [
    "ReportingDataset",
    "build_datalist",
    "collate_reporting",
    "folder_datalist",
    "json_datalist",
    "make_phantom",
    "medmnist_datalist",
    "root_cause",
    "synthetic_datalist",
]
