import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from medssl_monai.data import (
    ReportingDataset,
    build_datalist,
    collate_reporting,
    folder_datalist,
    json_datalist,
    make_phantom,
    medmnist_datalist,
    synthetic_datalist,
)
from medssl_monai.transforms import LoadVolumed


def test_phantoms_deterministic_under_seed():
    a = synthetic_datalist(n=6, size=(24, 24, 24), seed=5)
    b = synthetic_datalist(n=6, size=(24, 24, 24), seed=5)
    c = synthetic_datalist(n=6, size=(24, 24, 24), seed=6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["mask"], y["mask"])
        assert x["label"] == y["label"] and x["id"] == y["id"]
    assert not np.array_equal(a[0]["image"], c[0]["image"])
    # a case depends on (seed, index) only, not on n
    np.testing.assert_array_equal(make_phantom(a[2]["label"], (24, 24, 24), seed=(5, 2))[0], a[2]["image"])


def test_phantom_imbalance_and_classes_differ():
    items = synthetic_datalist(n=40, size=(32, 32, 32), imbalance=3.0, seed=0)
    labels = np.array([i["label"] for i in items])
    assert (labels == 1).sum() == 10 and (labels == 0).sum() == 30
    assert all(i["mask"].any() for i in items)

    # texture: more high-frequency energy inside the minority lesions; shape: lobulated, so less compact
    def texture(i):
        inner = ndimage.binary_erosion(i["mask"] > 0)
        return (i["image"] - ndimage.gaussian_filter(i["image"], 1.5))[inner].std()

    def compactness(i):
        m = i["mask"] > 0
        return m.sum() ** (2 / 3) / (m & ~ndimage.binary_erosion(m)).sum()

    for feature, sign in ((texture, 1), (compactness, -1)):
        mean = {k: np.mean([feature(i) for i in items if i["label"] == k]) for k in (0, 1)}
        assert sign * (mean[1] - mean[0]) > 0.1 * abs(mean[0])
    with pytest.raises(ValueError, match="imbalance"):
        synthetic_datalist(n=4, imbalance=0.5)


def _npz(path, n=5, shape=(28, 28, 28)):
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, *shape), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, (n, 1), dtype=np.uint8)
    np.savez(path, **arrays)
    return arrays


def test_medmnist_reader(tmp_path):
    arrays = _npz(tmp_path / "toy.npz")
    items = medmnist_datalist(tmp_path / "toy.npz", split="val", limit=3)
    assert [i["id"] for i in items] == ["val_00000", "val_00001", "val_00002"]
    assert items[1]["label"] == int(arrays["val_labels"][1, 0])
    np.testing.assert_array_equal(items[2]["image"], arrays["val_images"][2])
    loaded = LoadVolumed()(items[0])
    assert loaded["image"].shape == (1, 28, 28, 28)
    with pytest.raises(ValueError, match="split"):
        medmnist_datalist(tmp_path / "toy.npz", split="training")
    np.savez(tmp_path / "bad.npz", images=np.zeros(3))
    with pytest.raises(ValueError, match="not a MedMNIST npz"):
        medmnist_datalist(tmp_path / "bad.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"nope")
    with pytest.raises(ValueError, match="cannot read"):
        medmnist_datalist(tmp_path / "corrupt.npz")


def _nifti(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array), np.eye(4)), str(path))


def _folder(root, n=3):
    for i in range(n):
        img = np.random.rand(30, 30, 30).astype(np.float32)
        mask = np.zeros((30, 30, 30), np.uint8)
        mask[10:14, 10:14, 10:14] = 1
        _nifti(root / "images" / f"case{i}.nii.gz", img)
        _nifti(root / "masks" / f"case{i}.nii.gz", mask)
    (root / "labels.csv").write_text("id,label\ncase0,0\ncase1,1\ncase2,0\n")


def test_folder_datalist_default_layout(tmp_path):
    _folder(tmp_path)
    items = folder_datalist(tmp_path)
    assert [i["id"] for i in items] == ["case0", "case1", "case2"]
    assert [i["label"] for i in items] == [0, 1, 0]
    assert items[0]["mask"].endswith("masks/case0.nii.gz")
    assert build_datalist(str(tmp_path), limit=2) == items[:2]


def test_folder_datalist_reports_missing_masks_and_no_match(tmp_path):
    _folder(tmp_path)
    (tmp_path / "masks" / "case1.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="case1: mask"):
        folder_datalist(tmp_path)
    with pytest.raises(FileNotFoundError, match="no images matching"):
        folder_datalist(tmp_path, image_glob="*.nrrd")


def test_json_datalist_resolves_relative_paths(tmp_path):
    _folder(tmp_path)
    (tmp_path / "list.json").write_text(
        json.dumps({"training": [{"image": "images/case0.nii.gz", "mask": "masks/case0.nii.gz", "label": 1}]})
    )
    items = json_datalist(tmp_path / "list.json")
    assert items[0]["id"] == "case0" and items[0]["label"] == 1
    assert items[0]["image"] == str((tmp_path / "images" / "case0.nii.gz").resolve())
    assert build_datalist(tmp_path / "list.json") == items
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="cannot read datalist"):
        json_datalist(tmp_path / "broken.json")


def test_build_datalist_dispatch_and_errors(tmp_path):
    assert len(build_datalist(None, synthetic={"n": 4, "size": [20, 20, 20]})) == 4
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_datalist(tmp_path / "nowhere")
    _npz(tmp_path / "a.npz")
    assert len(build_datalist(tmp_path, split="test")) == 5  # a folder holding one npz
    _npz(tmp_path / "b.npz")
    with pytest.raises(ValueError, match="several npz"):
        build_datalist(tmp_path)


def test_reporting_dataset_keeps_good_cases(tmp_path):
    _folder(tmp_path)
    (tmp_path / "images" / "case1.nii.gz").write_bytes(b"corrupt")
    items = folder_datalist(tmp_path)
    ds = ReportingDataset(items, transform=LoadVolumed())
    batch = collate_reporting([ds[i] for i in range(3)])
    assert batch["id"] == ["case0", "case2"] and batch["image"].shape == (2, 1, 30, 30, 30)
    assert len(batch["errors"]) == 1 and batch["errors"][0][0] == "case1"
    assert "cannot be read" in batch["errors"][0][1] and "case1.nii.gz" in batch["errors"][0][1]
    assert collate_reporting([ds[1]]) == {"errors": batch["errors"]}


def test_default_roi_size_follows_the_data(tmp_path):
    from medssl_monai.data import default_roi_size

    assert default_roi_size(None) == [32, 32, 32]
    assert default_roi_size(tmp_path) == [96, 96, 96]  # tumour volumes: Li et al.'s 96^3 crops
    for edge in (28, 64):
        path = tmp_path / f"set{edge}.npz"
        np.savez(path, train_images=np.zeros((2, edge, edge, edge), np.uint8), train_labels=np.zeros((2, 1)))
        assert default_roi_size(path) == [edge] * 3  # a MedMNIST volume is never padded to 96^3
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.npz"):
        default_roi_size(bad)
