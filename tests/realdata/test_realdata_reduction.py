"""Real-data tier: CT slice reduction (medssl_monai.reduction.run) on ../shared/data (MEDSSL_DATA_DIR).

* ct_examples (TotalSegmentator's reference files: CT, small CT, MR, a segmentation, a 20-slice CT DICOM series) and
  the PyRadiomics lung CTs (lung1, lung2 NRRD), reduced with HASH at the paper's threshold 6 through a process pool:
  every slice of every volume has its manifest row;
* the DICOM series read slice for slice as SimpleITK/GDCM reads it, and a NIfTI converted from it by ITK gives the
  same stack and the same reduction.
"""

from __future__ import annotations

import csv
from collections import Counter

import nibabel as nib
import nrrd
import numpy as np
import pytest
import SimpleITK as sitk

from medssl_monai.data import discover_volumes
from medssl_monai.reduction.run import reduce_dataset

pytestmark = pytest.mark.realdata

NIFTI = ("example_ct", "example_ct_sm", "example_mr_sm", "example_seg")
LUNG = ("lung1_image", "lung2_image")


def _manifest(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def linked_dataset(tmp_path, shared_data):
    """ct_examples' volumes and the two lung CTs, linked (not copied) into one folder."""
    root = tmp_path / "data"
    root.mkdir()
    examples = shared_data / "ct_examples"
    for name in NIFTI:
        (root / f"{name}.nii.gz").symlink_to(examples / f"{name}.nii.gz")
    (root / "example_ct_dicom").symlink_to(examples / "example_ct_dicom", target_is_directory=True)
    for name in LUNG:
        (root / f"{name}.nrrd").symlink_to(shared_data / "pyradiomics_testcases" / f"{name}.nrrd")
    return root


def test_hash_reduction_covers_every_slice_of_every_real_volume(tmp_path, linked_dataset, shared_data):
    summary = reduce_dataset(
        linked_dataset, tmp_path / "out", method="hash", threshold=6, max_workers=2, progress=False
    )
    assert summary["failed"] == 0 and summary["volumes"] == 7
    expected = {name: nib.load(linked_dataset / f"{name}.nii.gz").shape[-1] for name in NIFTI}
    expected |= {name: int(nrrd.read_header(str(linked_dataset / f"{name}.nrrd"))["sizes"][-1]) for name in LUNG}
    expected["example_ct_dicom"] = len(list((shared_data / "ct_examples" / "example_ct_dicom").iterdir()))
    rows = _manifest(tmp_path / "out" / "manifest.csv")
    assert Counter(r["volume"] for r in rows) == expected
    for volume in summary["per_volume"]:
        assert 0 < volume["kept"] <= volume["slices"] == expected[volume["volume"]]
        kept = [int(r["slice"]) for r in rows if r["volume"] == volume["volume"] and r["kept"] == "1"]
        assert len(kept) == volume["kept"]


def test_dicom_series_matches_gdcm_order_and_its_itk_nifti(tmp_path, shared_data):
    folder = shared_data / "ct_examples" / "example_ct_dicom"
    (volume,) = discover_volumes(folder)
    stack = volume.load()
    gdcm_files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder))
    assert [str(p) for p in stack.sources] == list(gdcm_files)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(gdcm_files)
    image = reader.Execute()
    np.testing.assert_array_equal(stack.array, sitk.GetArrayFromImage(image).transpose(0, 2, 1))
    converted = tmp_path / "nifti"
    converted.mkdir()
    sitk.WriteImage(image, str(converted / "example_ct_dicom.nii.gz"))
    dicom_dir = tmp_path / "dicom"
    dicom_dir.mkdir()
    (dicom_dir / "example_ct_dicom").symlink_to(folder, target_is_directory=True)
    for name, source in (("from_dicom", dicom_dir), ("from_nifti", converted)):
        reduce_dataset(source, tmp_path / name, threshold=6, max_workers=0, progress=False)
    keep_dicom = [r["kept"] for r in _manifest(tmp_path / "from_dicom" / "manifest.csv")]
    keep_nifti = [r["kept"] for r in _manifest(tmp_path / "from_nifti" / "manifest.csv")]
    assert len(keep_dicom) == 20 and keep_dicom == keep_nifti
