"""User errors of the bundle commands: one paragraph as the last thing printed, exit status 1, no traceback wall."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest
from conftest import BUNDLE_3DSIAM, REPO
from monai.bundle import ConfigWorkflow

from medssl_monai.data import build_datalist
from medssl_monai.errors import DEBUG_ENV, format_user_error, install_excepthook, user_error

CONFIGS = BUNDLE_3DSIAM / "configs"


def _wrapped(inner: BaseException) -> RuntimeError:
    try:
        try:
            raise inner
        except BaseException as err:
            raise RuntimeError("Failed to instantiate component 'x.y' with keywords: a,b") from err
    except RuntimeError as outer:
        return outer


def test_user_error_finds_the_package_check_inside_monai_wrappers(tmp_path):
    with pytest.raises(FileNotFoundError) as excinfo:
        build_datalist(dataset_dir=str(tmp_path / "missing.npz"))
    ours = excinfo.value
    outer = _wrapped(ours)
    assert user_error(outer) is ours
    text = format_user_error(outer)
    assert text.startswith("medssl_monai: FileNotFoundError: dataset_dir") and "missing.npz" in text
    assert "(while MONAI ran the config: Failed to instantiate component 'x.y')" in text and DEBUG_ENV in text


def test_bugs_keep_their_traceback_and_package_checks_win_over_their_causes():
    assert user_error(_wrapped(RuntimeError("shape mismatch in matmul"))) is None  # not a user error: a bug
    assert user_error(_wrapped(ValueError("raised outside the package"))) is None
    bad_zip = zipfile.BadZipFile("File is not a zip file")
    assert user_error(_wrapped(bad_zip)) is bad_zip  # an unreadable file is a user error wherever it is raised
    assert user_error(_wrapped(FileNotFoundError(2, "No such file", "/x"))) is not None


def test_the_hook_is_installed_only_under_monai_bundle():
    assert install_excepthook() is False  # pytest is not `python -m monai.bundle`
    assert not getattr(sys.excepthook, "medssl", False)


def _run(*args: str, debug: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, DEBUG_ENV: "1" if debug else "0"}
    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing_npz", "dataset_dir '/nonexistent/data.npz' does not exist"),
        ("truncated_npz", "cannot read MedMNIST file"),
        ("negative_epochs", "epochs must be a positive integer, got -1"),
        ("corrupt_checkpoint", "cannot be read (UnpicklingError"),
    ],
)
def test_bundle_commands_end_with_one_paragraph(case, expected, tmp_path):
    out = str(tmp_path / "out")
    if case == "missing_npz":
        args = ["--config_file", str(CONFIGS / "train.json"), "--dataset_dir", "/nonexistent/data.npz"]
    elif case == "truncated_npz":
        path = tmp_path / "cut.npz"
        path.write_bytes(b"PK\x03\x04" + b"\0" * 200)
        args = ["--config_file", str(CONFIGS / "train.json"), "--dataset_dir", str(path)]
    elif case == "negative_epochs":
        args = ["--config_file", str(CONFIGS / "train.json"), "--epochs", "-1", "--limit", "12"]
    else:
        ckpt = tmp_path / "model.pt"
        ckpt.write_bytes(b"not a checkpoint")
        args = ["--config_file", str(CONFIGS / "inference.json"), "--ckpt", str(ckpt), "--limit", "4"]
    result = _run(*args, "--output_dir", out, "--num_workers", "0")
    assert result.returncode == 1
    tail = result.stderr.strip().splitlines()[-4:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert any(expected in line for line in tail), tail
    assert tail[-1].startswith("Fix the input or override named above")
    if case == "missing_npz":
        debug = _run(*args, "--output_dir", out, debug=True)
        assert debug.returncode == 1 and "Traceback" in debug.stderr and expected in debug.stderr


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"roi_size": [0, 0, 0]}, "roi_size must be at least 1 voxel per axis"),
        ({"synthetic#n": 4}, "the training data yield no batch: 4 sample(s) for batches of 6"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
    ],
)
def test_bad_overrides_are_refused_before_training(override, expected, tmp_path):
    with pytest.raises(Exception) as excinfo:
        wf = ConfigWorkflow(
            config_file=str(CONFIGS / "train.json"),
            workflow_type="train",
            logging_file=False,
            output_dir=str(tmp_path),
            num_workers=0,
            **override,
        )
        wf.initialize()
        wf.run()
    found = user_error(excinfo.value)
    assert isinstance(found, ValueError) and expected in str(found)
    assert not any(tmp_path.rglob("*.pt"))  # refused before any checkpoint was written


@pytest.mark.parametrize(
    ("config", "args", "expected"),
    [
        (
            "pretrain",
            ["--reduction_dir", "/nonexistent/red"],
            "reduction output '/nonexistent/red/manifest.csv' does not",
        ),
        ("pretrain", ["--method", "byol"], "unknown pre-training method 'byol'"),
        (
            "finetune",
            ["--pretrained", "/nonexistent/model.pt"],
            "pretrained weights '/nonexistent/model.pt' do not exist",
        ),
    ],
)
def test_ct_slice_reduction_commands_end_with_one_paragraph(config, args, expected, tmp_path):
    configs = REPO / "bundles" / "ct_slice_reduction" / "configs"
    result = _run("--config_file", str(configs / f"{config}.json"), *args, "--output_dir", str(tmp_path / "out"))
    assert result.returncode == 1
    tail = result.stderr.strip().splitlines()[-4:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert any(expected in line for line in tail), tail
    assert not any((tmp_path / "out").rglob("*.pt"))


@pytest.mark.parametrize("bundle", ["radiomics_deep_contrast", "small_data_ssl", "ct_slice_reduction"])
def test_inference_with_a_corrupt_checkpoint_ends_with_one_paragraph(bundle, tmp_path):
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"bad\n")  # torch.load raises IndexError on this one, not an unpickling error
    configs = REPO / "bundles" / bundle / "configs"
    data = []
    if bundle == "ct_slice_reduction":  # its inference embeds the slices of a reduction: make a small one
        from medssl_monai.data import write_synthetic_ct_folder
        from medssl_monai.reduction.run import reduce_dataset

        folder = write_synthetic_ct_folder(tmp_path / "ct", n=1, size=[32, 32], distinct=4, repeat=2, seed=0)
        reduce_dataset(folder, tmp_path / "reduction", method="hash", max_workers=0, progress=False)
        data = ["--reduction_dir", str(tmp_path / "reduction")]
    result = _run(
        "--config_file", str(configs / "inference.json"), "--ckpt", str(ckpt), "--output_dir", str(tmp_path), *data
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    tail = result.stderr.strip().splitlines()[-4:]
    assert any(f"checkpoint '{ckpt}' cannot be read" in line for line in tail), tail


def test_unknown_overrides_are_found_by_path():
    from medssl_monai.errors import _cli_overrides, unknown_overrides

    config = {"epochs": 2, "synthetic": {"n": 4}, "train": {"handlers": [{"a": 1}, {"b": 2}]}}
    argv = ["x", "run", "--config_file", "c.json", "--epoch", "3", "--synthetic#n=5", "--train#handlers#1#b", "0",
            "--train#handlers#0#_disabled_", "true", "--train#handlers#5#a", "1", "--synthetic#n#x", "1"]  # fmt: skip
    overrides = _cli_overrides(argv)
    assert overrides["synthetic#n"] == "5" and overrides["config_file"] == "c.json"
    assert unknown_overrides(overrides, config) == ["epoch", "train#handlers#5#a", "synthetic#n#x"]


def test_a_mistyped_override_is_refused_before_anything_runs(tmp_path):
    result = _run("--config_file", str(CONFIGS / "train.json"), "--epoch", "3", "--output_dir", str(tmp_path / "o"))
    assert result.returncode == 1
    tail = result.stderr.strip().splitlines()[-2:]
    assert "unknown override(s) --epoch (did you mean --epochs?)" in tail[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()  # nothing ran


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--epochs", "abc"], "epochs must be a positive integer, got 'abc'"),
        (["--lr", "1e8", "--method", "vicreg", "--clip_grad_norm", "$None"], "NonFiniteLossError: non-finite loss"),
        (["--output_dir", "/proc/medssl_unwritable"], "/proc/medssl_unwritable"),
    ],
    ids=["non_numeric_epochs", "huge_learning_rate", "unwritable_output_dir"],
)
def test_small_data_ssl_bad_settings_end_with_one_paragraph(args, expected, tmp_path):
    configs = REPO / "bundles" / "small_data_ssl" / "configs"
    out = [] if "--output_dir" in args else ["--output_dir", str(tmp_path / "out")]
    result = _run("--config_file", str(configs / "train.json"), "--epochs", "1", *args, *out)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    paragraph = [line for line in result.stderr.splitlines() if line.startswith("medssl_monai: ")]
    assert len(paragraph) == 1 and expected in paragraph[0], result.stderr[-1500:]
