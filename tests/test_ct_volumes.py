"""CT volume discovery and reading (medssl_monai.data.ct_volumes): slice order, values, sources, clear errors."""

from __future__ import annotations

import gzip

import nibabel as nib
import nrrd
import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medssl_monai.data import CTVolume, VolumeReadError, discover_volumes, read_volume


def _volume(shape=(6, 5, 4), seed=0) -> np.ndarray:
    """A volume whose slice k (along the last axis) is filled with values that encode k."""
    rng = np.random.default_rng(seed)
    vol = rng.integers(0, 50, size=shape).astype(np.int16)
    vol += (np.arange(shape[-1], dtype=np.int16) * 100)[None, None, :]
    return vol


def _by_id(volumes):
    return {v.id: v for v in volumes}


def test_nifti_and_nrrd_round_trip_slices_along_last_axis(tmp_path):
    vol = _volume()
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "a.nii.gz")
    nrrd.write(str(tmp_path / "b.nrrd"), vol)
    (tmp_path / "sub").mkdir()
    nib.save(nib.Nifti1Image(vol[..., :2], np.eye(4)), tmp_path / "sub" / "c.nii")
    volumes = _by_id(discover_volumes(tmp_path))
    assert sorted(volumes) == ["a", "b", "sub/c"]
    for name in ("a", "b"):
        stack = volumes[name].load()
        assert stack.array.shape == (4, 6, 5)
        for k in range(4):
            np.testing.assert_array_equal(stack.array[k], vol[..., k])
        assert stack.sources == [f"{volumes[name].path}#{k}" for k in range(4)]
    assert volumes["sub/c"].load().array.shape == (2, 6, 5)


def test_one_slice_volume_and_trailing_singleton_axis_are_read(tmp_path):
    vol = _volume((6, 5, 1))
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "one.nii")
    nib.save(nib.Nifti1Image(_volume((6, 5, 3))[..., None], np.eye(4)), tmp_path / "t1.nii")
    volumes = _by_id(discover_volumes(tmp_path))
    assert volumes["one"].load().array.shape == (1, 6, 5)
    assert volumes["t1"].load().array.shape == (3, 6, 5)


@pytest.mark.parametrize("shape", [(6, 5), (6, 5, 4, 2)])
def test_2d_and_4d_arrays_are_refused_naming_the_file(tmp_path, shape):
    path = tmp_path / "bad.nii"
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), np.eye(4)), path)
    (volume,) = discover_volumes(tmp_path)
    with pytest.raises(VolumeReadError, match=rf"bad\.nii.*{len(shape)}D array"):
        volume.load()


def test_truncated_nifti_is_reported_with_its_path(tmp_path):
    path = tmp_path / "cut.nii.gz"
    nib.save(nib.Nifti1Image(_volume((32, 32, 8)), np.eye(4)), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VolumeReadError, match="cannot read NIfTI .*cut.nii.gz"):
        read_volume(CTVolume("cut", "nifti", str(path)))


def _write_dicom(path, pixels, position, instance, series, slope=1.0, intercept=-1024.0, normal_z=1.0):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = series
    ds.Modality = "CT"
    ds.InstanceNumber = instance
    if position is not None:
        ds.ImagePositionPatient = [0.0, 0.0, float(position)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, normal_z, 0.0]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_series_in_shuffled_file_order_comes_back_in_position_order(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    series = generate_uid()
    rng = np.random.default_rng(1)
    positions = [-10.0, -7.5, -5.0, -2.5, 0.0]  # slice k at position positions[k]
    pixels = [rng.integers(0, 2000, (6, 5)) + 3000 * k for k in range(5)]
    names = ["x9", "a1", "m5", "b2", "z0"]  # name order is not slice order; extension-less files
    instance_numbers = [5, 4, 3, 2, 1]  # InstanceNumber runs against position: position wins
    for k in rng.permutation(5):
        _write_dicom(folder / names[k], pixels[k], positions[k], instance_numbers[k], series)
    (volume,) = discover_volumes(tmp_path)
    assert volume.kind == "dicom" and volume.id == "series"
    stack = volume.load()
    assert stack.array.shape == (5, 5, 6)  # (Columns, Rows) per slice: the (x, y) layout of ITK/nibabel volumes
    assert stack.sources == [str(folder / names[k]) for k in range(5)]
    for k in range(5):
        np.testing.assert_array_equal(stack.array[k], (pixels[k].astype(np.int32) - 1024).T)


def test_dicom_without_position_falls_back_to_instance_number_and_applies_rescale(tmp_path):
    series = generate_uid()
    pixels = [np.full((4, 4), 10 * (k + 1)) for k in range(3)]
    for k, name in enumerate(["c.dcm", "a.dcm", "b.dcm"]):
        _write_dicom(tmp_path / name, pixels[k], None, k + 1, series, slope=0.5, intercept=-100.0)
    stack = discover_volumes(tmp_path)[0].load()
    assert stack.array.dtype == np.float32
    assert [s.rsplit("/", 1)[-1] for s in stack.sources] == ["c.dcm", "a.dcm", "b.dcm"]
    np.testing.assert_allclose(stack.array[:, 0, 0], [-95.0, -90.0, -85.0])


def test_dicom_problems_are_named(tmp_path):
    series = generate_uid()
    _write_dicom(tmp_path / "1.dcm", np.zeros((4, 4)), 0.0, 1, series)
    _write_dicom(tmp_path / "2.dcm", np.zeros((5, 4)), 1.0, 2, series)
    with pytest.raises(VolumeReadError, match=r"2\.dcm.*mixed sizes"):
        discover_volumes(tmp_path)[0].load()
    _write_dicom(tmp_path / "2.dcm", np.zeros((4, 4)), 1.0, 2, generate_uid())
    with pytest.raises(VolumeReadError, match="2 series"):
        discover_volumes(tmp_path)[0].load()
    _write_dicom(tmp_path / "2.dcm", np.zeros((4, 4)), 0.0, 2, series)
    with pytest.raises(VolumeReadError, match="same ImagePositionPatient"):
        discover_volumes(tmp_path)[0].load()
    (tmp_path / "2.dcm").write_bytes(b"not a dicom file")
    with pytest.raises(VolumeReadError, match=r"cannot read DICOM file .*2\.dcm"):
        discover_volumes(tmp_path)[0].load()


def _png(path, value, shape=(8, 6)):
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)


def test_slice_images_are_grouped_and_ordered_numerically(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for k in (1, 2, 10, 3):  # text order would be 1, 10, 2, 3
        _png(flat / f"vol12_slice_{k}.png", k)
        _png(flat / f"vol7_slice_{k}.png", 100 + k)
    per_folder = tmp_path / "patient3"
    per_folder.mkdir()
    for k in (9, 10, 11):
        _png(per_folder / f"slice_{k:d}.png", 200 + k)
    volumes = _by_id(discover_volumes(tmp_path))
    assert sorted(volumes) == ["flat/vol12", "flat/vol7", "patient3"]
    stack = volumes["flat/vol12"].load()
    assert stack.array[:, 0, 0].tolist() == [1, 2, 3, 10]
    assert [s.rsplit("/", 1)[-1] for s in stack.sources] == [f"vol12_slice_{k}.png" for k in (1, 2, 3, 10)]
    assert stack.array.shape == (4, 8, 6)
    assert volumes["patient3"].load().array[:, 0, 0].tolist() == [209, 210, 211]


def test_slice_image_problems_are_named(tmp_path):
    _png(tmp_path / "v_1.png", 1)
    _png(tmp_path / "v_2.png", 2, shape=(8, 7))
    with pytest.raises(VolumeReadError, match=r"v_2\.png.*mixed sizes"):
        discover_volumes(tmp_path)[0].load()
    (tmp_path / "v_2.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(VolumeReadError, match=r"cannot read slice image .*v_2\.png"):
        discover_volumes(tmp_path)[0].load()
    _png(tmp_path / "v_02.png", 2)
    with pytest.raises(VolumeReadError, match="both have slice number 2"):
        discover_volumes(tmp_path)


def test_empty_folder_and_output_folder_exclusion(tmp_path):
    with pytest.raises(VolumeReadError, match="no CT volume found"):
        discover_volumes(tmp_path)
    nib.save(nib.Nifti1Image(_volume(), np.eye(4)), tmp_path / "a.nii")
    (tmp_path / "out" / "slices" / "a").mkdir(parents=True)
    _png(tmp_path / "out" / "slices" / "a" / "0000.png", 3)
    assert [v.id for v in discover_volumes(tmp_path)] == ["a", "out/slices/a"]
    assert [v.id for v in discover_volumes(tmp_path, exclude=[tmp_path / "out"])] == ["a"]


def test_gzip_nifti_read_matches_uncompressed(tmp_path):
    vol = _volume((7, 3, 5))
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "u.nii")
    (tmp_path / "g.nii.gz").write_bytes(gzip.compress((tmp_path / "u.nii").read_bytes()))
    volumes = _by_id(discover_volumes(tmp_path))
    np.testing.assert_array_equal(volumes["u"].load().array, volumes["g"].load().array)
