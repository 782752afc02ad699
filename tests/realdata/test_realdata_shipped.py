"""Real-data tier: each bundle's shipped models/model.pt run through the bundle's inference.json on real data, in one
command each, as a user would (issue 20)."""

from __future__ import annotations

import csv

import pytest
from conftest import REPO, bundle_workflow

pytestmark = pytest.mark.realdata


def _rows(path) -> tuple[list[str], list[list[str]]]:
    header, *rows = csv.reader(path.open())
    return header, rows


def test_small_data_ssl_shipped_encoder_embeds_breastmnist(shared_data, tmp_path):
    configs = REPO / "bundles" / "small_data_ssl" / "configs"
    wf = bundle_workflow(
        configs, "inference", dataset_dir=str(shared_data / "breastmnist"), splits=["test"], output_dir=str(tmp_path)
    )  # the default ckpt: the shipped models/model.pt with its run_config.json (ResNet-18, 28 px)
    wf.run()
    header, rows = _rows(tmp_path / "embeddings.csv")
    assert header[:2] == ["id", "label"] and len(header) == 2 + 512
    assert len(rows) == 156 and {r[1] for r in rows} == {"0", "1"}  # BreastMNIST's test split, both classes


def test_ct_slice_reduction_shipped_encoder_embeds_reduced_ct_slices(shared_data, tmp_path):
    configs = REPO / "bundles" / "ct_slice_reduction" / "configs"
    data = tmp_path / "data"
    data.mkdir()
    (data / "example_ct_dicom").symlink_to(shared_data / "ct_examples" / "example_ct_dicom")
    reduce = bundle_workflow(configs, "reduce", dataset_dir=str(data), output_dir=str(tmp_path / "red"), num_workers=0)
    reduce.run()
    wf = bundle_workflow(configs, "inference", reduction_dir=str(tmp_path / "red"), output_dir=str(tmp_path / "emb"))
    wf.run()  # the default ckpt: the shipped SwAV ResNet-18, at its 96 px
    header, rows = _rows(tmp_path / "emb" / "embeddings.csv")
    assert sum(h.startswith("f") and h[1:].isdigit() for h in header) == 512
    assert len(rows) == 20  # every slice of the 20-slice series (kept_only false)


def test_radiomics_deep_contrast_shipped_network_embeds_adrenalmnist3d(shared_data, tmp_path):
    configs = REPO / "bundles" / "radiomics_deep_contrast" / "configs"
    npz = shared_data / "adrenalmnist3d" / "adrenalmnist3d.npz"
    # the default ckpt: the shipped network; its run_config sets the backbone, the 2.5D stack and the LoG sigmas
    wf = bundle_workflow(configs, "inference", dataset_dir=str(npz), split="test", limit=6, output_dir=str(tmp_path))
    wf.run()
    header, rows = _rows(tmp_path / "embeddings.csv")
    assert header[:3] == ["id", "label", "deep_0"] and header[-1] == "radiomics_127" and len(rows) == 6
