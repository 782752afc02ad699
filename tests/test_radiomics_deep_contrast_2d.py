"""The radiomics_deep_contrast bundle's 2D mode (``spatial_dims: 2``; Zhao & Yang, MICCAI 2021, TN-SCUI2020 set-up,
Sec. 2.3 and 3.1): the 2D radiomics extraction (shape2D features) and train.json + evaluate.json on a folder of 2D
NIfTI image + mask phantoms, with the image view cropped to the lesion box and resized to the average lesion size."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import REPO, bundle_workflow
from monai.bundle import ConfigWorkflow

from medssl_monai.radiomics import extract_case, load_params

BUNDLE = REPO / "bundles" / "radiomics_deep_contrast"
CONFIGS = BUNDLE / "configs"
PARAMS_2D = CONFIGS / "radiomics_2d.yaml"

N_CASES = 24
HEIGHTS = [10, 12, 14, 16, 18, 20]  # lesion box sizes, cycled over the cases: mean 15 x 17
WIDTHS = [12, 14, 16, 18, 20, 22]


def _phantom(i: int) -> tuple[np.ndarray, np.ndarray, int]:
    """A 48 x 48 image with a rectangular lesion of known box: class 1 lesions are brighter and noisier."""
    rng = np.random.default_rng(i)
    label = int(i % 3 == 0)  # 8 of 24 in class 1 (an unambiguous majority class)
    h, w = HEIGHTS[i % 6], WIDTHS[(i // 2) % 6]
    r0, c0 = int(rng.integers(2, 48 - h - 2)), int(rng.integers(2, 48 - w - 2))
    mask = np.zeros((48, 48), np.uint8)
    mask[r0 : r0 + h, c0 : c0 + w] = 1
    image = rng.normal(60.0, 10.0, (48, 48))
    image[mask > 0] = rng.normal(120.0 + 60.0 * label, 10.0 + 25.0 * label, int(mask.sum()))
    return np.clip(image, 0, 255).astype(np.float32), mask, label


def _write_folder(root) -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = ["id,label"]
    for i in range(N_CASES):
        image, mask, label = _phantom(i)
        affine = np.diag([0.5, 0.5, 1.0, 1.0])
        nib.save(nib.Nifti1Image(image, affine), root / "images" / f"us_{i:02d}.nii.gz")
        nib.save(nib.Nifti1Image(mask, affine), root / "masks" / f"us_{i:02d}.nii.gz")
        rows.append(f"us_{i:02d},{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def test_2d_radiomics_has_shape2d_features(tmp_path):
    image, mask, _ = _phantom(3)
    affine = np.diag([0.5, 0.7, 1.0, 1.0])
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "image.nii.gz")
    nib.save(nib.Nifti1Image(mask, affine), tmp_path / "mask.nii.gz")
    params = {**load_params(PARAMS_2D), "imageType": {"Original": {}}}
    features = extract_case(tmp_path / "image.nii.gz", tmp_path / "mask.nii.gz", params)
    shape2d = [k for k in features if k.startswith("original_shape2D_")]
    assert len(shape2d) == 9 and not any(k.startswith("original_shape_") for k in features)
    assert len(features) == 9 + 93  # shape2D + first-order and texture of the original image
    # the pixel surface is the ROI's pixel count times the pixel area (0.5 x 0.7 mm)
    assert features["original_shape2D_PixelSurface"] == pytest.approx(mask.sum() * 0.5 * 0.7, rel=1e-6)
    # a 2D array (spacing 1) gives the plain pixel count; the same case as a file gives the same texture
    from_array = extract_case(image, mask, params)
    assert from_array["original_shape2D_PixelSurface"] == pytest.approx(float(mask.sum()))
    assert from_array["original_firstorder_Mean"] == pytest.approx(features["original_firstorder_Mean"], rel=1e-5)
    with pytest.raises(ValueError, match="expected a 2D label map"):
        extract_case(image, mask[None], params)


def _workflow(name: str, **override) -> ConfigWorkflow:
    return bundle_workflow(CONFIGS, name, **override)


def test_2d_train_then_evaluate(tmp_path):
    data = tmp_path / "data"
    _write_folder(data)
    common = {
        "dataset_dir": str(data),
        "spatial_dims": 2,
        "backbone": "resnet18",
        "log_sigma": [1.0],
        "radiomics_workers": 0,
        "device": "cpu",
    }
    train = _workflow("train", output_dir=str(tmp_path / "train"), epochs=1, batch_size=8, **common)
    assert train.parser.get_parsed_content("image_size") == (15, 17)  # mean box 15 x 17 of the phantoms
    sample = train.parser.get_parsed_content("preprocessing")(dict(train.parser.get_parsed_content("items")[0]))
    assert tuple(sample["image"].shape) == (1, 15, 17)  # one channel, the average lesion size
    assert float(sample["image"].min()) == 0.0 and float(sample["image"].max()) == pytest.approx(1.0)
    train.run()
    train.finalize()
    model = torch.load(tmp_path / "train" / "models" / "model.pt", weights_only=True)
    first_conv = next(v for k, v in model.items() if k.startswith("image_branch.") and v.ndim == 4)
    assert first_conv.shape[1] == 1  # 1 input channel
    # Original (9 shape2D + 93) + LoG sigma 1 (93) + wavelet LL, LH, HL, HH (4 x 93)
    assert model["radiomics_branch.standardize.mean"].shape[0] == 9 + 93 + 93 + 4 * 93

    methods = ["Ours, both views (linear)", "Radiomics method", "ResNet"]
    evaluate = _workflow(
        "evaluate",
        output_dir=str(tmp_path / "evaluate"),
        ckpt=str(tmp_path / "train" / "models" / "model.pt"),
        radiomics_cache=str(tmp_path / "train" / "radiomics_cache"),
        finetune_epochs=1,
        finetune_batch_size=8,
        label_fractions=[1.0],
        n_splits=3,
        select_k=10,
        methods=methods,
        **common,
    )
    assert evaluate.parser.get_parsed_content("image_size") == (15, 17)
    evaluate.run()
    evaluate.finalize()
    doc = json.loads((tmp_path / "evaluate" / "results.json").read_text(encoding="utf-8"))
    rows = {(r["feature_set"], r["label_fraction"]) for r in doc["records"]}
    assert rows == {(n, 1.0) for n in ["Ours, both views (linear)", "Radiomics method", "ResNet-18"]}
    assert doc["header"]["n_samples"] == N_CASES
    for r in doc["records"]:
        assert 0.0 <= r["metrics"]["accuracy"]["mean"] <= 1.0
