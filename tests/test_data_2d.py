"""2D data: MedMNIST 2D npz with channels, class-folder trees, the stratified 70/10/20 split, the resolver, the 2D
loader and the SimCLR augmentation (random resized crop)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medssl_monai.data import (
    class_folder_datalist,
    dataset_datalists,
    medmnist_datalist,
    read_image_2d,
    stratified_split,
    to_channels,
)
from medssl_monai.transforms import LoadImage2Dd, MultiViewd, RandResizedCropd, ssl_augment_2d


def _npz(path: Path, rgb: bool = False, n: tuple[int, int, int] = (30, 10, 20)) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        shape = (count, 12, 10, 3) if rgb else (count, 12, 10)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % 2).reshape(count, 1).astype(np.uint8)
    np.savez(path, **arrays)
    return path


def _tree(root: Path, layout: dict[str, int], size: tuple[int, int] = (9, 7), mode: str = "L") -> Path:
    """``layout``: relative folder -> number of images written there."""
    rng = np.random.default_rng(1)
    for folder, count in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            shape = (size[0], size[1], 3) if mode == "RGB" else size
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / folder / f"im{i}.png")
    return root


def test_to_channels_grey_rgb_and_luminance():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert to_channels(grey).shape == (1, 3, 4)
    assert to_channels(grey, 3).shape == (3, 3, 4)
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    y = to_channels(rgb)
    assert y.dtype == np.uint8 and y.shape == (1, 2, 2)
    assert int(y[0, 0, 0]) == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)  # 124, Pillow's "L"
    assert int(y[0, 0, 0]) == int(np.asarray(Image.fromarray(rgb).convert("L"))[0, 0])
    np.testing.assert_array_equal(to_channels(rgb, 3)[:, 0, 0], [200, 100, 50])
    with pytest.raises(ValueError, match="channels"):
        to_channels(grey, 2)
    with pytest.raises(ValueError, match="2D image"):
        to_channels(np.zeros((4, 4, 4, 4)))


def test_medmnist_2d_channels(tmp_path):
    path = _npz(tmp_path / "g.npz")
    items = medmnist_datalist(path, "val", channels=1)
    assert len(items) == 10 and items[0]["image"].shape == (1, 12, 10) and items[0]["image"].dtype == np.uint8
    assert [it["label"] for it in items[:3]] == [0, 1, 0]
    assert medmnist_datalist(path, "val")[0]["image"].shape == (12, 10)  # stored layout kept without channels
    rgb = _npz(tmp_path / "c.npz", rgb=True)
    assert medmnist_datalist(rgb, "test", channels=1)[0]["image"].shape == (1, 12, 10)
    assert medmnist_datalist(rgb, "test", channels=3)[0]["image"].shape == (3, 12, 10)
    vol = tmp_path / "v.npz"
    np.savez(vol, train_images=np.zeros((2, 8, 8, 8), np.uint8), train_labels=np.zeros((2, 1)))
    with pytest.raises(ValueError, match="2D images"):
        medmnist_datalist(vol, "train", channels=1)


def test_class_folder_flat_tree_kather_like(tmp_path):
    root = _tree(tmp_path / "kather", {"01_TUMOR": 3, "02_STROMA": 2, "08_EMPTY": 1})
    items = class_folder_datalist(root)
    assert len(items) == 6
    assert {it["class_name"]: it["label"] for it in items} == {"01_TUMOR": 0, "02_STROMA": 1, "08_EMPTY": 2}
    assert items[0]["id"] == "01_TUMOR/im0" and Path(items[0]["image"]).is_file()
    assert all("split" not in it for it in items)


def test_class_folder_split_folders_kermany_like(tmp_path):
    root = _tree(
        tmp_path / "chest_xray", {"train/NORMAL": 2, "train/PNEUMONIA": 3, "test/NORMAL": 1, "test/PNEUMONIA": 1}
    )
    items = class_folder_datalist(root)
    assert {(it["split"], it["class_name"]) for it in items} == {
        ("train", "NORMAL"),
        ("train", "PNEUMONIA"),
        ("test", "NORMAL"),
        ("test", "PNEUMONIA"),
    }
    assert {it["class_name"]: it["label"] for it in items} == {"NORMAL": 0, "PNEUMONIA": 1}


def test_class_folder_nested_breakhis_like(tmp_path):
    layout = {
        "benign/SOB/adenosis/SOB_B_A_1/400X": 2,
        "benign/SOB/adenosis/SOB_B_A_1/40X": 3,
        "malignant/SOB/ductal_carcinoma/SOB_M_DC_2/400X": 1,
        "malignant/SOB/lobular_carcinoma/SOB_M_LC_3/400X": 1,
    }
    root = _tree(tmp_path / "breast", layout)
    items = class_folder_datalist(root, pattern="**/400X/*")
    assert len(items) == 4 and {it["class_name"] for it in items} == {"benign", "malignant"}
    subtypes = class_folder_datalist(root, class_level=2, pattern="**/400X/*")
    assert sorted({it["class_name"] for it in subtypes}) == ["adenosis", "ductal_carcinoma", "lobular_carcinoma"]
    with pytest.raises(ValueError, match="class_level=9"):
        class_folder_datalist(root, class_level=9)
    with pytest.raises(FileNotFoundError, match="no images"):
        class_folder_datalist(root, pattern="**/999X/*")
    with pytest.raises(ValueError, match="single class"):
        class_folder_datalist(root / "benign")


def test_stratified_split_fractions_seed_and_tiny_class():
    y = np.array([0] * 70 + [1] * 30)
    train, val, test = stratified_split(y, seed=3)
    assert (len(train), len(val), len(test)) == (70, 10, 20)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(100))  # a partition
    assert [int((y[p] == 1).sum()) for p in (train, val, test)] == [21, 3, 6]  # 30% of each part is class 1
    again = stratified_split(y, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    assert not np.array_equal(test, stratified_split(y, seed=4)[2])
    with pytest.raises(ValueError, match=r"class\(es\) 2 \(9\)"):
        stratified_split(np.array([0] * 40 + [1] * 40 + [2] * 9))
    with pytest.raises(ValueError, match="sum"):
        stratified_split(y, (0.5, 0.2))


def test_dataset_datalists_npz_and_trees(tmp_path):
    npz = _npz(tmp_path / "m.npz")
    given = dataset_datalists(tmp_path)  # a folder holding one npz
    assert [len(given[s]) for s in ("train", "val", "test")] == [30, 10, 20]
    assert given["train"][0]["image"].shape == (1, 12, 10)
    pooled = dataset_datalists(npz, resplit=True, seed=1)
    assert [len(pooled[s]) for s in ("train", "val", "test")] == [42, 6, 12]
    assert len({it["id"] for s in pooled for it in pooled[s]}) == 60

    flat = _tree(tmp_path / "flat", {"a": 20, "b": 10})
    parts = dataset_datalists(flat)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [21, 3, 6]

    kermany = _tree(
        tmp_path / "kermany", {"train/NORMAL": 16, "train/PNEUMONIA": 24, "test/NORMAL": 3, "test/PNEUMONIA": 4}
    )
    parts = dataset_datalists(kermany)
    assert len(parts["test"]) == 7 and all(it["split"] == "test" for it in parts["test"])
    assert (len(parts["train"]), len(parts["val"])) == (35, 5)  # val carved from train: 0.1 / 0.8 of it
    assert {it["label"] for it in parts["val"]} == {0, 1}
    pooled = dataset_datalists(kermany, resplit=True)
    assert sum(len(v) for v in pooled.values()) == 47 and len(pooled["test"]) == 9  # round(0.2 * 47)


def test_load_image_2d_files_and_arrays(tmp_path):
    grey = _tree(tmp_path / "g", {"x": 1})
    rgb = _tree(tmp_path / "c", {"x": 1}, mode="RGB")
    load = LoadImage2Dd("image")
    for path in (grey / "x" / "im0.png", rgb / "x" / "im0.png"):
        out = load({"image": str(path), "id": "c"})["image"]
        assert out.shape == (1, 9, 7) and out.dtype == torch.float32 and 0 <= float(out.min()) <= float(out.max()) <= 1
    assert read_image_2d(rgb / "x" / "im0.png", 3).shape == (3, 9, 7)
    assert LoadImage2Dd("image", channels=3)({"image": str(grey / "x" / "im0.png")})["image"].shape == (3, 9, 7)
    arr = np.full((1, 5, 6), 255, np.uint8)
    torch.testing.assert_close(load({"image": arr})["image"], torch.ones(1, 5, 6))
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="case 'b'.*cannot read image"):
        load({"image": str(bad), "id": "b"})


def test_rand_resized_crop_size_area_and_determinism():
    img = torch.arange(40 * 50, dtype=torch.float32).reshape(1, 40, 50)
    crop = RandResizedCropd("image", 16, scale=(0.2, 0.6))
    crop.set_random_state(0)
    boxes = []
    for _ in range(50):
        out = crop({"image": img})["image"]
        assert out.shape == (1, 16, 16)
        top, left, h, w = crop.last_box
        assert 0 <= top and top + h <= 40 and 0 <= left and left + w <= 50
        assert 0.2 * 0.9 <= h * w / 2000 <= 0.6 * 1.1  # area fraction within bounds (rounding of sides)
        assert 3 / 4 * 0.85 <= w / h <= 4 / 3 * 1.15
        boxes.append(crop.last_box)
    assert len(set(boxes)) > 40  # random
    crop.set_random_state(0)
    assert [crop({"image": img}) and crop.last_box for _ in range(50)] == boxes  # deterministic under the seed
    full = RandResizedCropd("image", (40, 50), scale=(1.0, 1.0), ratio=(1.25, 1.25))
    torch.testing.assert_close(torch.as_tensor(full({"image": img})["image"]), img)  # whole image, identity resize
    with pytest.raises(ValueError, match="scale"):
        RandResizedCropd("image", 8, scale=(0.5, 0.1))


def test_ssl_augment_2d_two_views():
    img = {"image": torch.rand(1, 28, 28)}
    views = MultiViewd(ssl_augment_2d(24))
    views.set_random_state(0)
    out = views(dict(img))
    a, b = torch.as_tensor(out["view1"]), torch.as_tensor(out["view2"])
    assert a.shape == b.shape == (1, 24, 24) and "image" not in out
    assert not torch.allclose(a, b)  # independent draws per view
    assert 0.0 <= float(min(a.min(), b.min())) and float(max(a.max(), b.max())) <= 1.0  # clipped
    views.set_random_state(0)
    torch.testing.assert_close(torch.as_tensor(views(dict(img))["view1"]), a)
    three = ssl_augment_2d(16)({"image": torch.rand(3, 20, 20)})["image"]
    assert three.shape == (3, 16, 16)
