"""PyRadiomics extraction (medssl_monai.radiomics) on small synthetic volumes: features, cache, failures, executors."""

from __future__ import annotations

import csv
import json
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import BUNDLE_3DSIAM

import medssl_monai.radiomics.extract as extract_module
from medssl_monai.radiomics import (
    FeatureCache,
    compare_with_baseline,
    extract_case,
    extract_features,
    extract_to_csv,
    load_params,
    read_feature_csv,
    write_feature_csv,
)
from medssl_monai.utils import atomic_write_csv

YAML = BUNDLE_3DSIAM / "configs" / "radiomics.yaml"
CLASSES = {"shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}
PARAMS = {
    "imageType": {"Original": {}},
    "featureClass": {c: None for c in sorted(CLASSES)},
    "setting": {"binWidth": 25, "label": 1},
}


def _volume(seed: int, shape=(16, 16, 16), radius: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy int16 image (values 1..200) and a ball mask (uint8 0/1) in its centre."""
    rng = np.random.default_rng(seed)
    image = rng.integers(1, 200, size=shape).astype(np.int16)
    grid = np.indices(shape) - (np.array(shape) // 2)[:, None, None, None]
    mask = ((grid**2).sum(0) <= radius**2).astype(np.uint8)
    return image, mask


def _write(path, array: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> str:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return str(path)


def _file_case(tmp_path, case: str, seed: int, ext: str = ".nii.gz", spacing=(1.0, 1.0, 1.0), label=None) -> dict:
    image, mask = _volume(seed)
    item = {
        "id": case,
        "image": _write(tmp_path / f"{case}_image{ext}", image, spacing),
        "mask": _write(tmp_path / f"{case}_mask{ext}", mask, spacing),
    }
    if label is not None:
        item["label"] = label
    return item


def _counting(monkeypatch) -> list[str]:
    """Count the cases actually extracted (in-process runs, max_workers=0)."""
    calls: list[str] = []
    original = extract_module.extract_case

    def counted(image, mask, params, binarize_mask=False):
        calls.append(str(image) if not isinstance(image, np.ndarray) else "array")
        return original(image, mask, params, binarize_mask)

    monkeypatch.setattr(extract_module, "extract_case", counted)
    return calls


def test_features_from_files_and_arrays(tmp_path):
    spacing = (0.8, 0.8, 2.0)  # SimpleITK order (x, y, z)
    nii = _file_case(tmp_path, "nii", 0, ".nii.gz", spacing)
    nrrd = _file_case(tmp_path, "nrrd", 1, ".nrrd")
    noisy, _ = _volume(2)
    noisy[:2] = 0  # the ROI of a case without a mask is the non-zero region
    flat = np.zeros((28, 28, 28), np.uint8)  # an AdrenalMNIST3D-like 0/255 shape: a flat ROI, in uint8
    flat[8:20, 10:18, 9:21] = 255
    rng = np.random.default_rng(3)
    uint8 = rng.integers(0, 256, size=(20, 20, 20)).astype(np.uint8)  # up to 255: bin edges overflow uint8
    datalist = [
        nii,
        nrrd,
        {"id": "array", "image": noisy},
        {"id": "flat", "image": flat},
        {"id": "uint8", "image": uint8},
    ]
    result = extract_features(datalist, YAML, max_workers=0, progress=False)

    assert result.failures == []
    assert result.ids == ["nii", "nrrd", "array", "flat", "uint8"]
    assert result.labels is None
    assert result.values.shape == (5, len(result.names)) and len(result.names) == 107
    assert np.isfinite(result.values).all()
    assert {group.split("_", 1)[1] for group in result.feature_classes()} == CLASSES
    assert not any(name.startswith("diagnostics") for name in result.names)
    assert len(set(result.names)) == len(result.names)

    feature = dict(zip(result.names, result.values.T))
    mask_voxels = int(_volume(0)[1].sum())
    assert feature["original_shape_VoxelVolume"][0] == pytest.approx(mask_voxels * 0.8 * 0.8 * 2.0)  # spacing used
    assert feature["original_shape_VoxelVolume"][2] == np.count_nonzero(noisy)  # arrays: 1 mm, ROI = non-zero
    assert feature["original_shape_VoxelVolume"][3] == 12 * 8 * 12
    assert feature["original_firstorder_Variance"][3] == 0.0  # flat ROI: texture takes its flat-region values
    assert feature["original_glcm_JointEnergy"][3] == 1.0
    assert feature["original_firstorder_Maximum"][4] == uint8[uint8 != 0].max()
    assert feature["original_firstorder_Variance"][4] > 0


def _write_dicom_series(folder: Path, volume: np.ndarray, spacing=(0.8, 0.8, 2.0)) -> Path:
    """One DICOM file per slice, with the tags ImageSeriesReader sorts by (series UID, position, orientation)."""
    folder.mkdir()
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing(spacing)
    uid = "1.2.826.0.1.3680043.2.1125.1"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(volume.shape[0]):
        slice_ = image[:, :, z]
        for tag, value in {
            "0020|000d": f"{uid}.3",
            "0020|000e": f"{uid}.2",
            "0008|0018": f"{uid}.4.{z}",
            "0020|0013": str(z),
            "0020|0032": "\\".join(map(str, image.TransformIndexToPhysicalPoint((0, 0, z)))),
            "0020|0037": "1\\0\\0\\0\\1\\0",
        }.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{z:03d}.dcm"))
        writer.Execute(slice_)
    return folder


def test_dicom_series_folder(tmp_path):
    image, mask = _volume(4)
    folder = _write_dicom_series(tmp_path / "series", image)
    item = {"id": "dicom", "image": str(folder), "mask": _write(tmp_path / "mask.nii.gz", mask, (0.8, 0.8, 2.0))}
    result = extract_features([item], PARAMS, cache_dir=tmp_path / "cache", max_workers=0, progress=False)
    assert result.failures == []
    feature = dict(zip(result.names, result.values[0]))
    assert feature["original_shape_VoxelVolume"] == pytest.approx(mask.sum() * 0.8 * 0.8 * 2.0)
    assert feature["original_firstorder_Maximum"] == image[mask == 1].max()
    (tmp_path / "empty").mkdir()
    failed = extract_features([{**item, "image": str(tmp_path / "empty")}], PARAMS, max_workers=0, progress=False)
    assert "no DICOM series" in failed.failures[0][1]


def test_bundle_parameter_file_and_its_optional_filters(tmp_path):
    params = load_params(YAML)
    assert params["imageType"] == {"Original": {}}
    assert set(params["featureClass"]) == CLASSES and all(v is None for v in params["featureClass"].values())
    assert params["setting"]["binWidth"] == 25 and params["setting"]["label"] == 1

    # the YAML says: delete the leading "# " of the LoG / Wavelet lines to enable them
    text = YAML.read_text()
    for line in ("# LoG:", "#   sigma: [1.0, 2.0, 3.0]", "# Wavelet: {}"):
        assert f"  {line}\n" in text
        text = text.replace(f"  {line}\n", f"  {line[2:]}\n")
    enabled = tmp_path / "radiomics_filters.yaml"
    enabled.write_text(text)
    params = load_params(enabled)
    assert params["imageType"] == {"Original": {}, "LoG": {"sigma": [1.0, 2.0, 3.0]}, "Wavelet": {}}
    image, mask = _volume(0, shape=(24, 24, 24), radius=7)
    features = extract_case(image, mask, params)
    groups = {name.rsplit("_", 2)[0] for name in features}
    assert {"log-sigma-1-0-mm-3D", "log-sigma-3-0-mm-3D", "wavelet-LLH", "wavelet-HHH", "original"} <= groups
    assert len(groups) == 1 + 3 + 8


def test_invalid_parameters_fail_before_any_case(tmp_path):
    with pytest.raises(ValueError, match="nope"):
        load_params({"featureClass": {"nope": None}})
    with pytest.raises(ValueError, match="invalid PyRadiomics parameter dict"):
        load_params(PARAMS, overrides={"binWidth": -1})
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_params(tmp_path / "missing.yaml")
    assert load_params(PARAMS, overrides={"binWidth": 0.1})["setting"] == {"binWidth": 0.1, "label": 1}


def test_cache_skips_finished_cases_and_follows_content_and_parameters(tmp_path, monkeypatch):
    calls = _counting(monkeypatch)
    cache = tmp_path / "cache"
    datalist = [_file_case(tmp_path, f"c{i}", i) for i in range(3)]

    first = extract_features(datalist, PARAMS, cache_dir=cache, max_workers=0, progress=False)
    assert len(calls) == 3 and (first.cached, first.computed) == (0, 3)
    entries = sorted(cache.glob("*.json"))
    assert len(entries) == 3 and len(FeatureCache(cache)) == 3
    assert {json.loads(p.read_text())["id"] for p in entries} == {"c0", "c1", "c2"}
    mtimes = {p: p.stat().st_mtime_ns for p in entries}

    calls.clear()
    second = extract_features(datalist, PARAMS, cache_dir=cache, max_workers=0, progress=False)
    assert calls == [] and (second.cached, second.computed) == (3, 0)
    assert {p: p.stat().st_mtime_ns for p in cache.glob("*.json")} == mtimes  # nothing rewritten
    assert second.ids == first.ids and second.names == first.names
    np.testing.assert_array_equal(second.values, first.values)

    # new image content: that case only is recomputed (the key hashes the file's bytes, not its name)
    image, _ = _volume(99)
    _write(datalist[1]["image"], image)
    calls.clear()
    third = extract_features(datalist, PARAMS, cache_dir=cache, max_workers=0, progress=False)
    assert calls == [datalist[1]["image"]] and (third.cached, third.computed) == (2, 1)
    assert not np.array_equal(third.values[1], first.values[1])
    np.testing.assert_array_equal(third.values[[0, 2]], first.values[[0, 2]])

    # an unreadable entry (hand-edited, cut short) is a miss: recomputed and rewritten
    broken = FeatureCache(cache).path(min(cache.glob("*.json")).stem)
    broken.write_text('{"format": 1, "features": {"original_')
    calls.clear()
    fourth = extract_features(datalist, PARAMS, cache_dir=cache, max_workers=0, progress=False)
    assert len(calls) == 1 and fourth.computed == 1
    assert json.loads(broken.read_text())["format"] == 1

    # other parameters: every case is recomputed
    calls.clear()
    extract_features(datalist, load_params(PARAMS, {"binWidth": 10}), cache_dir=cache, max_workers=0, progress=False)
    assert len(calls) == 3
    assert not list(cache.glob(".*.tmp"))


def test_interrupted_run_resumes(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    datalist = [_file_case(tmp_path, f"c{i}", i) for i in range(4)]
    original = extract_module.extract_case
    calls: list[str] = []

    def interrupted_at_third(image, mask, params, binarize_mask=False):
        calls.append(image)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third case runs
        return original(image, mask, params, binarize_mask)

    monkeypatch.setattr(extract_module, "extract_case", interrupted_at_third)
    with pytest.raises(KeyboardInterrupt):
        extract_features(datalist, PARAMS, cache_dir=cache, max_workers=0, progress=False)
    assert len(list(cache.glob("*.json"))) == 2  # the two finished cases are stored, whole
    assert not list(cache.glob(".*.tmp"))

    monkeypatch.undo()
    calls = _counting(monkeypatch)
    resumed = extract_features(datalist, PARAMS, cache_dir=cache, max_workers=0, progress=False)
    assert calls == [datalist[2]["image"], datalist[3]["image"]]
    assert (resumed.cached, resumed.computed) == (2, 2)
    fresh = extract_features(datalist, PARAMS, max_workers=0, progress=False)
    np.testing.assert_array_equal(resumed.values, fresh.values)


def _bad_cases(tmp_path) -> tuple[list[dict], dict[str, str]]:
    """Cases that must fail, with a phrase their error must contain."""
    image, mask = _volume(5)
    nan_image = image.astype(np.float32)
    nan_image[8, 8, 8] = np.nan
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"this is not a NIfTI file" * 10)
    truncated = tmp_path / "truncated.nii.gz"
    content = Path(_write(truncated, image)).read_bytes()
    truncated.write_bytes(content[: len(content) // 2])  # ITK alone would read it, zero-filled
    multi = mask * 2  # labels {0, 2}: no label 1
    cases = [
        ({"id": "empty_mask", "image": image, "mask": np.zeros_like(mask)}, "no voxel with label 1"),
        ({"id": "nan_voxels", "image": nan_image, "mask": mask}, "non-finite"),
        ({"id": "size_mismatch", "image": image, "mask": mask[:-2]}, "sizes differ"),
        (
            {
                "id": "spacing_mismatch",
                "image": _write(tmp_path / "sp_image.nii.gz", image, (1.0, 1.0, 1.0)),
                "mask": _write(tmp_path / "sp_mask.nii.gz", mask, (1.0, 1.0, 3.0)),
            },
            "geometry mismatch",
        ),
        ({"id": "missing_file", "image": str(tmp_path / "nowhere.nii.gz"), "mask": mask}, "does not exist"),
        ({"id": "corrupt_file", "image": str(corrupt), "mask": mask}, "cannot read image"),
        ({"id": "truncated_file", "image": str(truncated), "mask": mask}, "truncated or corrupt gzip"),
        ({"id": "two_d_image_3d_mask", "image": image[0], "mask": mask}, "expected a 2D label map"),
        ({"id": "four_d", "image": image[None]}, "expected a 3D volume"),
        ({"id": "multiclass", "image": image, "mask": multi}, "binarize_mask=True"),
        ({"id": "blank_image", "image": np.zeros((8, 8, 8), np.int16)}, "no non-zero voxel"),
    ]
    return [c for c, _ in cases], {c["id"]: phrase for c, phrase in cases}


@pytest.mark.parametrize("use_cache", [False, True])
def test_failing_cases_are_reported_and_the_others_finish(tmp_path, use_cache):
    bad, expected = _bad_cases(tmp_path)
    good = [_file_case(tmp_path, "good0", 0), _file_case(tmp_path, "good1", 1)]
    datalist = [good[0], *bad, good[1]]
    result = extract_features(
        datalist, PARAMS, cache_dir=tmp_path / "cache" if use_cache else None, max_workers=0, progress=False
    )
    assert result.ids == ["good0", "good1"]
    assert np.isfinite(result.values).all()
    assert [case for case, _ in result.failures] == [c["id"] for c in bad]  # datalist order
    for case, message in result.failures:
        assert expected[case] in message, (case, message)
    if use_cache:
        assert len(list((tmp_path / "cache").glob("*.json"))) == 2  # failures are not cached


def test_failed_case_is_retried_once_fixed(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    datalist = [_file_case(tmp_path, "c0", 0), _file_case(tmp_path, "c1", 1)]
    mask_path = datalist[1]["mask"]
    mask_bytes = Path(mask_path).read_bytes()
    (tmp_path / "c1_mask.nii.gz").unlink()
    first = extract_features(datalist, PARAMS, cache_dir=cache, max_workers=0, progress=False)
    assert first.ids == ["c0"] and first.failures[0][0] == "c1" and "does not exist" in first.failures[0][1]

    Path(mask_path).write_bytes(mask_bytes)
    calls = _counting(monkeypatch)
    second = extract_features(datalist, PARAMS, cache_dir=cache, max_workers=0, progress=False)
    assert calls == [datalist[1]["image"]] and second.ids == ["c0", "c1"] and second.failures == []


def test_binarize_mask_takes_every_nonzero_label(tmp_path):
    image, mask = _volume(7)
    multi = mask.copy()
    multi[mask == 1] = np.where(np.arange(mask.sum()) % 2 == 0, 2, 4)  # labels {0, 2, 4}
    item = {"id": "brats_like", "image": image, "mask": multi.astype(np.float32)}
    failed = extract_features([item], PARAMS, max_workers=0, progress=False)
    assert failed.ids == [] and "no voxel with label 1" in failed.failures[0][1]
    result = extract_features([item], PARAMS, max_workers=0, progress=False, binarize_mask=True)
    volume = result.values[0, result.names.index("original_shape_VoxelVolume")]
    assert volume == mask.sum()


def test_process_pool_equals_serial(tmp_path):
    bad, _ = _bad_cases(tmp_path)
    datalist = [_file_case(tmp_path, f"c{i}", i, label=i % 2) for i in range(4)] + bad[:2]
    serial = extract_features(datalist, PARAMS, max_workers=0, progress=False)
    with ProcessPoolExecutor(2) as pool:
        pooled = extract_features(datalist, PARAMS, executor=pool, progress=False)
    own_pool = extract_features(datalist, PARAMS, max_workers=2, cache_dir=tmp_path / "cache", progress=False)
    for other in (pooled, own_pool):
        assert other.ids == serial.ids == ["c0", "c1", "c2", "c3"]
        assert other.names == serial.names
        np.testing.assert_array_equal(other.values, serial.values)
        np.testing.assert_array_equal(other.labels, [0, 1, 0, 1])
        assert other.failures == serial.failures and len(serial.failures) == 2


def test_dask_executor_equals_serial(tmp_path):
    distributed = pytest.importorskip("distributed")
    datalist = [_file_case(tmp_path, f"c{i}", i) for i in range(3)] + [{"id": "arr", "image": _volume(9)[0]}]
    serial = extract_features(datalist, PARAMS, max_workers=0, progress=False)
    client = distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None)
    try:
        through_executor = extract_features(datalist, PARAMS, executor=client.get_executor(), progress=False)
        through_address = extract_features(datalist, PARAMS, scheduler_address=client.scheduler.address, progress=False)
    finally:
        client.close()
    for other in (through_executor, through_address):
        assert other.ids == serial.ids and other.names == serial.names and other.failures == []
        np.testing.assert_array_equal(other.values, serial.values)


def test_feature_csv_round_trip(tmp_path):
    ids, names = ["a", "b", "c"], ["original_shape_VoxelVolume", "original_glcm_Idmn", "x"]
    values = np.array([[1.0, 1e-300, math.nan], [123456.789012345678, -0.1, 2.0], [np.pi, 1e300, -0.0]])
    path = write_feature_csv(tmp_path / "features.csv", ids, names, values, labels=[0, 1, 1])
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["id", "label", *names] and rows[1][:2] == ["a", "0"]
    read_ids, read_names, read_values, labels = read_feature_csv(path)
    assert read_ids == ids and read_names == names and labels.tolist() == [0, 1, 1]
    np.testing.assert_array_equal(read_values, values)  # exact, NaN included

    no_labels = write_feature_csv(tmp_path / "nolabels.csv", ids, names, values)
    assert read_feature_csv(no_labels)[3] is None

    # an EmbeddingWriter file (id, label, f0 .. f{D-1}) reads with the same reader
    atomic_write_csv(
        tmp_path / "embeddings.csv", ["id", "label", "f0", "f1"], [["x", 1, 0.5, -2.0], ["y", 0, 1.0, 3.0]]
    )
    emb_ids, emb_names, emb_values, emb_labels = read_feature_csv(tmp_path / "embeddings.csv")
    assert emb_ids == ["x", "y"] and emb_names == ["f0", "f1"] and emb_labels.tolist() == [1, 0]
    np.testing.assert_array_equal(emb_values, [[0.5, -2.0], [1.0, 3.0]])

    (tmp_path / "bad.csv").write_text("case,f0\na,1\n")
    with pytest.raises(ValueError, match="first column must be 'id'"):
        read_feature_csv(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="2 labels for 3 ids"):
        write_feature_csv(tmp_path / "x.csv", ids, names, values, labels=[0, 1])


def test_extract_to_csv_writes_features_and_errors(tmp_path):
    datalist = [_file_case(tmp_path, f"c{i}", i, label=i % 2) for i in range(3)]
    datalist.append({"id": "broken", "image": str(tmp_path / "nowhere.nii.gz"), "label": 0})
    out = tmp_path / "out" / "radiomics.csv"
    path = extract_to_csv(datalist, YAML, out, max_workers=0, progress=False)
    assert path == out and (tmp_path / "out" / "radiomics_cache").is_dir()  # default cache beside the CSV
    ids, names, values, labels = read_feature_csv(out)
    assert ids == ["c0", "c1", "c2"] and labels.tolist() == [0, 1, 0] and len(names) == 107
    direct = extract_features(datalist[:3], YAML, max_workers=0, progress=False)
    np.testing.assert_array_equal(values, direct.values)
    errors = list(csv.reader((tmp_path / "out" / "radiomics_errors.csv").open()))
    assert errors[0] == ["id", "error"] and errors[1][0] == "broken" and "does not exist" in errors[1][1]

    path = extract_to_csv(datalist[:3], YAML, out, max_workers=0, progress=False)  # fixed: stale errors file removed
    assert not (tmp_path / "out" / "radiomics_errors.csv").exists()
    with pytest.raises(RuntimeError, match="failed for every case"):
        extract_to_csv(datalist[3:], YAML, tmp_path / "none.csv", max_workers=0, progress=False)


def test_compare_with_baseline_reads_settings_and_flags_differences(tmp_path):
    """A baseline in PyRadiomics' layout, made from our own values: all match; a perturbed value is flagged."""
    image, mask = _volume(11)
    _write(tmp_path / "brain1_image.nrrd", image, (0.7, 0.7, 3.0))
    _write(tmp_path / "brain1_label.nrrd", mask, (0.7, 0.7, 3.0))
    settings = {"binWidth": 10, "label": 1, "voxelArrayShift": 2000, "interpolator": None, "additionalInfo": True}
    truth = extract_case(
        str(tmp_path / "brain1_image.nrrd"),
        str(tmp_path / "brain1_label.nrrd"),
        {"setting": settings, "imageType": {"Original": {}}, "featureClass": {"firstorder": None, "shape": None}},
    )
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    for cls in ("firstorder", "shape"):
        with (baseline / f"baseline_{cls}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["featureName", "brain1", "brain1_2d"])
            writer.writerow(["diagnostics_Configuration_Settings", repr(settings), "{'force2D': True}"])
            writer.writerow(["diagnostics_Configuration_EnabledImageTypes", "{'Original': {}}", "{'Original': {}}"])
            writer.writerow(["diagnostics_Versions_PyRadiomics", "x", "y"])
            for name, value in truth.items():
                if f"_{cls}_" in name:
                    shifted = value * (1 + 1e-3) if name == "original_firstorder_Energy" else value
                    writer.writerow([name, repr(shifted), "12345"])

    strict = compare_with_baseline(baseline, classes=("firstorder", "shape"), rtol=1e-6, max_workers=0)
    n_first = sum("_firstorder_" in n for n in truth)
    assert strict.failures == []
    assert strict.summary() == {"firstorder": (n_first, n_first - 1), "shape": (len(truth) - n_first,) * 2}
    (miss,) = strict.mismatches()
    assert miss.feature == "original_firstorder_Energy" and miss.rel_diff == pytest.approx(1e-3 / (1 + 1e-3))
    loose = compare_with_baseline(baseline, classes=("firstorder", "shape"), rtol=2e-3, max_workers=0)
    assert loose.all_match
