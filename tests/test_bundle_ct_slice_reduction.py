"""Workflow tests of the ct_slice_reduction bundle (reduce.json), the dataset runner and the CLI, on small synthetic
NIfTI volumes whose slices come in groups of exact duplicates."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import REPO
from monai.bundle import ConfigWorkflow
from PIL import Image

from medssl_monai.reduction.__main__ import main
from medssl_monai.reduction.run import MANIFEST_COLUMNS, reduce_dataset

CONFIGS = REPO / "bundles" / "ct_slice_reduction" / "configs"
GROUPS, REPEAT = 4, 3  # each volume: 4 different slices, each present 3 times in a row


def _volume(seed: int) -> np.ndarray:
    """(32, 32, GROUPS * REPEAT) int16: GROUPS random-texture slices (pairwise far apart in dHash), each repeated."""
    rng = np.random.default_rng(seed)
    distinct = rng.integers(-1000, 1000, size=(32, 32, GROUPS)).astype(np.int16)
    return np.repeat(distinct, REPEAT, axis=-1)


@pytest.fixture
def dataset(tmp_path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    for i, name in enumerate(("a", "b")):
        nib.save(nib.Nifti1Image(_volume(i), np.eye(4)), root / f"{name}.nii.gz")
    (root / "broken.nii.gz").write_bytes(b"\x1f\x8b\x08 this is not a gzip stream")
    return root


def _manifest(output: Path) -> list[dict]:
    with (output / "manifest.csv").open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == MANIFEST_COLUMNS
        return list(reader)


def _check_outputs(output: Path, dataset: Path) -> None:
    rows = _manifest(output)
    assert [(r["volume"], int(r["slice"])) for r in rows] == [
        (v, k) for v in ("a", "b") for k in range(GROUPS * REPEAT)
    ]
    for row in rows:
        assert row["source"] == f"{dataset / (row['volume'] + '.nii.gz')}#{row['slice']}"
        assert row["kept"] in ("0", "1")
    for volume in ("a", "b"):
        kept = np.array([int(r["kept"]) for r in rows if r["volume"] == volume]).reshape(GROUPS, REPEAT)
        assert kept.sum(axis=1).tolist() == [1] * GROUPS  # one slice of each duplicate group, every group
    with (output / "errors.csv").open(newline="", encoding="utf-8") as f:
        errors = list(csv.DictReader(f))
    assert [e["volume"] for e in errors] == ["broken"]
    assert errors[0]["source"].endswith("broken.nii.gz") and "broken.nii.gz" in errors[0]["error"]
    summary = json.loads((output / "summary.json").read_text(encoding="utf-8"))
    assert (summary["volumes"], summary["failed"], summary["slices"], summary["kept"]) == (2, 1, 24, 8)
    assert summary["method"] == "hash" and summary["threshold"] == 6 and summary["variant"] == "exact"
    assert [v["volume"] for v in summary["per_volume"]] == ["a", "b"]
    assert all(v["kept_fraction"] == pytest.approx(1 / REPEAT) for v in summary["per_volume"])
    leftovers = [p for p in output.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == []


def _run_bundle(output: Path, **overrides) -> None:
    """reduce.json through MONAI's ConfigWorkflow (what ``python -m monai.bundle run`` does), in this process."""
    wf = ConfigWorkflow(
        config_file=str(CONFIGS / "reduce.json"),
        workflow_type=None,
        logging_file=False,
        output_dir=str(output),
        **{"num_workers": 0, "progress": False, **overrides},
    )
    wf.initialize()
    wf.run()
    wf.finalize()


def test_reduce_workflow_writes_manifest_summary_errors_and_pngs(tmp_path, dataset):
    output = tmp_path / "out"
    _run_bundle(output, dataset_dir=str(dataset), method="hash", threshold=6, export_png=True)
    _check_outputs(output, dataset)
    assert not (output / "slices" / "broken").exists()
    for volume in ("a", "b"):
        kept = [int(r["slice"]) for r in _manifest(output) if r["volume"] == volume and r["kept"] == "1"]
        pngs = sorted((output / "slices" / volume).iterdir())
        assert [p.name for p in pngs] == [f"{k:04d}.png" for k in kept]
        with Image.open(pngs[0]) as image:
            assert image.mode == "L" and image.size == (32, 32)


def test_process_pool_gives_the_same_result_as_in_process(tmp_path, dataset):
    in_process = reduce_dataset(dataset, tmp_path / "serial", max_workers=0, progress=False)
    pooled = reduce_dataset(dataset, tmp_path / "pool", max_workers=2, progress=False)  # a real ProcessPoolExecutor
    _check_outputs(tmp_path / "pool", dataset)
    assert _manifest(tmp_path / "serial") == _manifest(tmp_path / "pool")
    assert in_process["kept"] == pooled["kept"] == 8


def test_rerun_after_fix_removes_the_errors_file_and_a_new_failure_removes_stale_pngs(tmp_path, dataset):
    output = tmp_path / "out"
    reduce_dataset(dataset, output, max_workers=0, progress=False, export_png=True)
    (dataset / "broken.nii.gz").unlink()
    summary = reduce_dataset(dataset, output, max_workers=0, progress=False, export_png=True)
    assert summary["failed"] == 0 and not (output / "errors.csv").exists()
    (dataset / "b.nii.gz").write_bytes(b"corrupt now")
    summary = reduce_dataset(dataset, output, max_workers=0, progress=False, export_png=True)
    assert summary["failed"] == 1 and not (output / "slices" / "b").exists() and (output / "slices" / "a").is_dir()
    assert {r["volume"] for r in _manifest(output)} == {"a"}


def test_bad_settings_are_refused_before_any_work(tmp_path, dataset):
    with pytest.raises(ValueError, match="method must be one of"):
        reduce_dataset(dataset, tmp_path / "o", method="phash", max_workers=0)
    with pytest.raises(ValueError, match="variant"):
        reduce_dataset(dataset, tmp_path / "o", variant="greedy", max_workers=0)
    with pytest.raises(ValueError, match="released variant takes a threshold only"):
        reduce_dataset(dataset, tmp_path / "o", variant="released", target_fraction=0.1, max_workers=0)
    with pytest.raises(ValueError, match="target_fraction must be in"):
        reduce_dataset(dataset, tmp_path / "o", target_fraction=1.5, max_workers=0)
    with pytest.raises(ValueError, match="window"):
        reduce_dataset(dataset, tmp_path / "o", window=(100, -100), max_workers=0)
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        reduce_dataset(dataset, tmp_path / "o", threads=0, max_workers=0)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("method", ["hash", "ssim"])
def test_threads_within_a_volume_give_the_same_manifest(tmp_path, dataset, method):
    reduce_dataset(dataset, tmp_path / "one", method=method, max_workers=0, progress=False)
    reduce_dataset(dataset, tmp_path / "two", method=method, max_workers=0, progress=False, threads=2)
    assert _manifest(tmp_path / "one") == _manifest(tmp_path / "two")


def test_default_run_reduces_the_synthetic_demo_volumes(tmp_path):
    _run_bundle(tmp_path)  # no dataset_dir: the synthetic volumes
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["volumes"] == 4 and summary["failed"] == 0 and summary["slices"] == 4 * 32
    assert 0.1 < summary["kept_fraction"] < 0.6  # runs of 4 near-identical slices: about one of each run is kept


def test_metadata_has_mandatory_keys():
    meta = json.loads((CONFIGS / "metadata.json").read_text(encoding="utf-8"))
    for key in ("version", "monai_version", "pytorch_version", "numpy_version", "task", "description", "authors"):
        assert isinstance(meta[key], str) and meta[key], key
    assert meta["version"] in meta["changelog"]
    assert "medssl-monai" in meta["required_packages_version"]
    assert any("Less is More" in ref for ref in meta["references"])


def test_cli_smoke(tmp_path, dataset):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "medssl_monai.reduction", str(dataset), "--method", "hash", "--threshold", "6"]
    command += ["--output-dir", str(tmp_path / "out"), "--workers", "0", "--no-progress"]
    result = subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1, result.stderr  # one volume failed, the others were reduced
    assert "Kept 8 of 24 slices" in result.stderr and "broken" in result.stderr
    _check_outputs(tmp_path / "out", dataset)
    (dataset / "broken.nii.gz").unlink()
    assert main(command[3:]) == 0  # the same command line in this process (a second interpreter start costs ~10 s)
    assert not (tmp_path / "out" / "errors.csv").exists()
    assert main([str(tmp_path / "nothing"), "--output-dir", str(tmp_path / "o2"), "--workers", "0"]) == 2


def test_deep_method_runs_in_process_with_a_torchscript_encoder(tmp_path, dataset):
    import torch
    from torch import nn

    (dataset / "broken.nii.gz").unlink()
    with pytest.raises(ValueError, match="needs an encoder"):
        reduce_dataset(dataset, tmp_path / "none", method="deep", max_workers=0)
    encoder = torch.jit.script(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    torch.jit.save(encoder, str(tmp_path / "encoder.ts"))  # 3 input channels: grey slices must be repeated
    summary = reduce_dataset(
        dataset, tmp_path / "deep", method="deep", encoder=str(tmp_path / "encoder.ts"), max_workers=2, progress=False
    )
    assert summary["failed"] == 0 and summary["target_fraction"] == 0.1 and summary["threshold"] is None
    assert [v["kept"] for v in summary["per_volume"]] == [1, 1]  # the paper's 10 % of 12 slices, at least one


def test_every_n_and_target_fraction_reach_the_library(tmp_path, dataset):
    summary = reduce_dataset(dataset, tmp_path / "n", method="every_n", n=5, max_workers=0, progress=False)
    assert summary["n"] == 5 and [v["kept"] for v in summary["per_volume"]] == [3, 3]  # slices 0, 5, 10
    kept = [int(r["slice"]) for r in _manifest(tmp_path / "n") if r["kept"] == "1" and r["volume"] == "a"]
    assert kept == [0, 5, 10]
    summary = reduce_dataset(dataset, tmp_path / "t", target_fraction=0.5, max_workers=0, progress=False)
    assert summary["threshold"] is None and [v["kept"] for v in summary["per_volume"]] == [6, 6]


def test_dask_scheduler_address_gives_the_same_manifest(tmp_path, dataset):
    distributed = pytest.importorskip("distributed")
    reduce_dataset(dataset, tmp_path / "serial", max_workers=0, progress=False)
    client = distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None)
    try:
        summary = reduce_dataset(dataset, tmp_path / "dask", scheduler_address=client.scheduler.address, progress=False)
    finally:
        client.close()
    assert summary["failed"] == 1 and summary["kept"] == 8
    assert _manifest(tmp_path / "dask") == _manifest(tmp_path / "serial")


def test_exported_slices_reduce_to_themselves_and_one_slice_volumes_are_kept(tmp_path, dataset):
    """After an exact threshold run no two kept slices are near-duplicates: reducing the exported PNG folders again
    (read as slice-image volumes, numerically ordered) keeps every slice."""
    (dataset / "broken.nii.gz").unlink()
    nib.save(nib.Nifti1Image(_volume(7)[..., :1], np.eye(4)), dataset / "single.nii")
    first = reduce_dataset(dataset, tmp_path / "first", export_png=True, max_workers=0, progress=False)
    assert [(v["volume"], v["kept"]) for v in first["per_volume"]] == [("a", 4), ("b", 4), ("single", 1)]
    second = reduce_dataset(tmp_path / "first" / "slices", tmp_path / "second", max_workers=0, progress=False)
    assert [(v["volume"], v["slices"], v["kept"]) for v in second["per_volume"]] == [
        ("a", 4, 4),
        ("b", 4, 4),
        ("single", 1, 1),
    ]
