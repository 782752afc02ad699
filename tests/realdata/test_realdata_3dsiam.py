"""Real-data tier: the 3dsiam bundle and its readers on ../shared/data (MEDSSL_DATA_DIR)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from conftest import BUNDLE_3DSIAM
from monai.bundle import ConfigWorkflow

from medssl_monai.data import build_datalist, folder_datalist
from medssl_monai.transforms import LesionCropd, LoadVolumed

pytestmark = pytest.mark.realdata
CONFIGS = BUNDLE_3DSIAM / "configs"


def _run(name, output_dir, **override):
    wf = ConfigWorkflow(
        config_file=str(CONFIGS / f"{name}.json"),
        workflow_type="train" if name == "train" else "infer",
        logging_file=False,
        **{"num_workers": 0, "device": "cpu", "output_dir": str(output_dir), **override},
    )
    wf.initialize()
    wf.run()
    return wf


def test_one_short_epoch_on_adrenalmnist3d(shared_data, tmp_path):
    npz = shared_data / "adrenalmnist3d" / "adrenalmnist3d.npz"
    wf = _run("train", tmp_path, dataset_dir=str(npz), limit=24, epochs=1)
    state = wf.trainer.state
    assert state.iteration == 4  # 24 volumes, batch 6
    assert float(state.metrics["train_loss_epoch"]) < 0  # the cosine between prediction and target became positive
    assert 0.1 < state.metrics["embedding_std_ratio"] < 1.5  # not collapsed
    encoder = tmp_path / "models" / "model.pt"
    assert encoder.is_file()

    out = tmp_path / "embed"
    _run("inference", out, dataset_dir=str(npz), split="val", limit=10, ckpt=str(encoder))
    rows = list(csv.reader((out / "embeddings.csv").open()))
    assert [r[0] for r in rows[1:]] == [f"val_{i:05d}" for i in range(10)]
    labels = np.load(npz)["val_labels"][:10, 0]
    assert [int(r[1]) for r in rows[1:]] == labels.tolist()
    assert np.isfinite(np.array(rows[1:])[:, 2:].astype(float)).all()


def test_brats_flair_lesion_crop_and_embedding(shared_data, tmp_path):
    root = shared_data / "brats2015_subset"
    glob, replace = "**/Flair_subtrMeanDivStd.nii.gz", ["Flair_subtrMeanDivStd", "OTMultiClass"]
    items = folder_datalist(root, image_glob=glob, mask_replace=replace)
    assert len(items) == 6 and len({i["id"] for i in items}) == 6
    d = LesionCropd(roi_size=96)(LoadVolumed()(items[0]))
    assert d["image"].shape == d["mask"].shape == (1, 96, 96, 96)
    centroid = torch.nonzero(d["mask"][0]).float().mean(0)
    assert torch.all((centroid - 48).abs() <= 1.0)

    # all 6 patients through inference.json with the shipped pre-trained encoder (its default checkpoint)
    _run("inference", tmp_path, dataset_dir=str(root), image_glob=glob, mask_replace=replace, batch_size=2)
    rows = list(csv.reader((tmp_path / "embeddings.csv").open()))
    assert len(rows) == 7 and len(rows[0]) == 1 + 256
    values = np.asarray([[float(v) for v in row[1:]] for row in rows[1:]])
    assert np.isfinite(values).all() and values.std(0).mean() > 0  # six different embeddings


def test_pyradiomics_testcases_nrrd_image_and_mask(shared_data):
    items = build_datalist(
        shared_data / "pyradiomics_testcases", image_glob="*_image.nrrd", mask_replace=["_image", "_label"]
    )
    assert [i["id"] for i in items] == ["brain1_image", "brain2_image", "breast1_image", "lung1_image", "lung2_image"]
    for item in items[:3]:
        d = LesionCropd(roi_size=96)(LoadVolumed()(item))
        assert d["image"].shape == (1, 96, 96, 96) and float(d["mask"].sum()) > 0


def test_dicom_series_folder_loads_as_volume(shared_data):
    d = LoadVolumed()({"image": str(shared_data / "ct_examples" / "example_ct_dicom"), "id": "ct"})
    assert d["image"].shape == (1, 512, 512, 20)
    assert torch.isfinite(d["image"]).all()


def test_shipped_encoder_is_healthy_in_eval_mode_on_real_test_volumes(shared_data):
    """Regression guard for issue 17: the 0.2.0 encoder had an eval-mode std ratio of 0.07 (collapsed) on these
    volumes. The shipped one must keep the part of the target it meets (std ratio >= 0.5) and not be rank-collapsed."""
    from monai.bundle import load

    from medssl_monai.evaluation import representation_health

    with np.load(shared_data / "adrenalmnist3d" / "adrenalmnist3d.npz") as d:
        volumes = torch.as_tensor(d["test_images"][:96]).float()[:, None]
    encoder = load(name="3dsiam", bundle_dir=str(BUNDLE_3DSIAM.parent), device="cpu").eval()
    with torch.no_grad():
        embeddings = torch.cat([encoder(volumes[s : s + 32]) for s in range(0, len(volumes), 32)])
    health = representation_health(embeddings)
    assert health["std_ratio"] >= 0.5 and health["effective_rank"] > 3
