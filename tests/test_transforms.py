import math

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import BUNDLE_3DSIAM
from monai.bundle import ConfigParser
from monai.transforms import RandAdjustContrastd

from medssl_monai.transforms import LesionCropd, LoadVolumed, MultiViewd, RandAffineFractiond


def _augmentation():
    parser = ConfigParser()
    parser.read_config(BUNDLE_3DSIAM / "configs" / "train.json")
    parser["bundle_root"] = str(BUNDLE_3DSIAM)
    return parser.get_parsed_content("train#augmentation")


def test_augmentation_ranges_are_the_papers():
    """Li et al. Sec. 3: rotation [-20, 20] deg, scale [0.7, 1.3], shift [-5%, 5%] of the size, gamma [0.7, 1.5]."""
    aug = _augmentation()
    aug.set_random_state(0)
    affine = next(t for t in aug.transforms if isinstance(t, RandAffineFractiond))
    gamma = next(t for t in aug.transforms if isinstance(t, RandAdjustContrastd))
    grid = affine.rand_affine.rand_affine_grid
    rot, scale, shift, gammas = [], [], [], []
    sample = {"image": torch.rand(1, 40, 32, 28) * 255}
    for _ in range(200):
        aug(dict(sample))
        rot += grid.rotate_params
        scale += grid.scale_params
        shift.append(np.abs(grid.translate_params) / np.array([40, 32, 28]))
        if gamma._do_transform:
            gammas.append(gamma.adjuster.gamma_value)
    limit = math.radians(20)
    assert max(map(abs, rot)) <= limit and max(map(abs, rot)) > 0.9 * limit
    assert 0.7 <= min(scale) < 0.75 and 1.25 < max(scale) <= 1.3
    assert np.max(shift) <= 0.05 + 1e-9 and np.max(shift) > 0.045
    assert 0.7 <= min(gammas) and max(gammas) <= 1.5 and len(gammas) > 50


def test_views_differ_and_are_reproducible():
    aug = _augmentation()
    views = MultiViewd(aug, key="image", view_keys=("view1", "view2"))
    x = {"image": torch.rand(1, 30, 30, 30) * 255, "id": "a"}
    views.set_random_state(3)
    a = views(x)
    assert "image" not in a and a["id"] == "a"
    assert a["view1"].shape == a["view2"].shape == (1, 30, 30, 30)
    assert not torch.allclose(a["view1"], a["view2"])
    views.set_random_state(3)
    b = views(x)
    torch.testing.assert_close(torch.as_tensor(a["view1"]), torch.as_tensor(b["view1"]))
    torch.testing.assert_close(torch.as_tensor(a["view2"]), torch.as_tensor(b["view2"]))


def _lesion_case(centre, size=(40, 40, 40), radius=3):
    img = np.full(size, 5.0, dtype=np.float32)
    mask = np.zeros(size, dtype=np.uint8)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in size], indexing="ij"))
    ball = sum((grid[i] - centre[i]) ** 2 for i in range(3)) <= radius**2
    img[ball] = 100.0
    mask[ball] = 1
    return LoadVolumed()({"image": img, "mask": mask, "id": "c"})


def test_crop_is_centred_on_mask_centroid():
    d = LesionCropd(roi_size=16)(_lesion_case((20, 18, 22)))
    assert d["image"].shape == d["mask"].shape == (1, 16, 16, 16)
    centroid = torch.nonzero(d["mask"][0]).float().mean(0)
    torch.testing.assert_close(centroid, torch.tensor([8.0, 8.0, 8.0]))


def test_crop_near_border_pads_with_background():
    case = _lesion_case((3, 20, 36))  # touches the low end of axis 0 and the high end of axis 2
    d = LesionCropd(roi_size=[16, 16, 16])(case)
    img, mask = d["image"][0], d["mask"][0]
    assert img.shape == (16, 16, 16)
    # box starts at 3 - 8 = -5 on axis 0: five padded slices, filled with the image minimum (background 5)
    assert torch.all(img[:5] == 5.0) and torch.all(mask[:5] == 0)
    # axis 2: box 28..44 on a 40-voxel axis: the last 4 are padding
    assert torch.all(img[:, :, -4:] == 5.0)
    assert not torch.all(img[5] == 5.0)  # the first real slice holds the lesion edge
    # the lesion stays centred
    torch.testing.assert_close(torch.nonzero(mask).float().mean(0), torch.tensor([8.0, 8.0, 8.0]))
    assert float(img.max()) == 100.0


def test_crop_rounds_half_voxel_centroids_up():
    mask = torch.zeros(1, 30, 30, 30)
    mask[0, 10:12, 20, 21:23] = 1  # centroid (10.5, 20, 21.5)
    start, end = LesionCropd(roi_size=8).box(mask)
    assert start == [7, 16, 18] and end == [15, 24, 26]  # floor(c + 0.5) - 4


def test_crop_explicit_background_and_missing_mask():
    d = LesionCropd(roi_size=16, background=-1.0)(_lesion_case((1, 20, 20)))
    assert float(d["image"][0, 0].max()) == -1.0
    no_mask = {"image": torch.zeros(1, 10, 10, 10)}
    assert LesionCropd(roi_size=16)(no_mask)["image"].shape == (1, 10, 10, 10)
    with pytest.raises(ValueError, match="background"):
        LesionCropd(background="mean")


def test_rand_affine_fraction_scales_with_size():
    t = RandAffineFractiond(keys="image", prob=1.0, translate_fraction=0.05)
    t.set_random_state(0)
    for size in (20, 100):
        t({"image": torch.zeros(1, size, size, size)})
        assert t.rand_affine.rand_affine_grid.translate_range == (0.05 * size,) * 3
    with pytest.raises(ValueError, match="translate_fraction"):
        RandAffineFractiond(keys="image", translate_range=3)


# --- loading and bad input -------------------------------------------------------------------------------------


def _nifti(path, array, spacing=(1.0, 1.0, 1.0)):
    nib.save(nib.Nifti1Image(np.asarray(array), np.diag([*spacing, 1.0])), str(path))
    return str(path)


def test_load_files_and_binarise_mask(tmp_path):
    img = _nifti(tmp_path / "img.nii.gz", np.random.rand(30, 30, 30).astype(np.float32))
    mask = np.zeros((30, 30, 30), np.uint8)
    mask[10:15, 10:15, 10:15] = 4
    d = LoadVolumed()({"image": img, "mask": _nifti(tmp_path / "m.nii.gz", mask), "id": "x"})
    assert d["image"].shape == (1, 30, 30, 30) and d["image"].dtype == torch.float32
    assert set(torch.unique(d["mask"]).tolist()) == {0.0, 1.0}


@pytest.mark.parametrize(
    "case,match",
    [
        ("nan", "NaN or infinite"),
        ("2d", "2 spatial dimensions"),
        ("shape", "geometry mismatch"),
        ("spacing", "spacing .* geometry mismatch"),
        ("empty", "empty"),
        ("corrupt", "cannot be read"),
        ("missing", "does not exist"),
    ],
)
def test_bad_input_names_case_file_and_problem(tmp_path, case, match):
    good = np.random.rand(30, 30, 30).astype(np.float32)
    mask = np.zeros((30, 30, 30), np.uint8)
    mask[5:9, 5:9, 5:9] = 1
    image_path = tmp_path / "image.nii.gz"
    mask_path = tmp_path / "mask.nii.gz"
    image, m = good, mask
    spacing = (1.0, 1.0, 1.0)
    if case == "nan":
        image = good.copy()
        image[0, 0, 0] = np.nan
    elif case == "2d":
        image, m = good[:, :, 0], mask[:, :, 5]
    elif case == "shape":
        m = mask[:, :, :20]
    elif case == "spacing":
        spacing = (1.0, 1.0, 2.0)
    elif case == "empty":
        m = np.zeros_like(mask)
    _nifti(image_path, image)
    _nifti(mask_path, m, spacing)
    if case == "corrupt":
        image_path.write_bytes(b"this is not a nifti file")
    if case == "missing":
        image_path.unlink()
    with pytest.raises(ValueError, match=match) as err:
        LoadVolumed()({"image": str(image_path), "mask": str(mask_path), "id": "case42"})
    assert "case42" in str(err.value)
    if case not in ("empty",):
        assert "image.nii.gz" in str(err.value)


def test_array_inputs_need_three_spatial_axes():
    with pytest.raises(ValueError, match=r"case 'slice': image array from breastmnist.npz\[train 0\] has 2 dim.*3D"):
        LoadVolumed()({"image": np.zeros((28, 28)), "id": "slice", "source": "breastmnist.npz[train 0]"})
