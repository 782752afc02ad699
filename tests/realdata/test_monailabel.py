"""MONAI Label: a real server (monailabel 0.8.5, in .venv-monailabel from scripts/setup_monailabel.sh) serving the
shipped 3dsiam encoder and a linear classification head on it, over AdrenalMNIST3D volumes, called over HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import BUNDLE_3DSIAM, missing

from medssl_monai.monailabel import APP_DIR, BundleEncoder, LinearHead, fit_linear_head

pytestmark = pytest.mark.realdata
REPO = Path(__file__).resolve().parents[2]
SERVER = REPO / ".venv-monailabel" / "bin" / "python"  # runs `-m monailabel.main` (what the monailabel script runs)
CLASSES = ["normal", "hyperplasia"]  # MedMNIST v2 AdrenalMNIST3D labels 0 and 1


@pytest.fixture(scope="module")
def monailabel_cli() -> Path:
    if not SERVER.is_file():
        missing(f"no MONAI Label server environment at {SERVER.parent.parent}: run scripts/setup_monailabel.sh")
    return SERVER


def _write(volumes: np.ndarray, folder: Path, prefix: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, v in enumerate(volumes):
        paths.append(folder / f"{prefix}_{i:03d}.nii.gz")
        nib.save(nib.Nifti1Image(v.astype(np.float32), np.eye(4)), paths[-1])
    return paths


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url: str, method: str = "GET") -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def test_server_serves_embeddings_and_class_probabilities(monailabel_cli, shared_data, tmp_path):
    data = np.load(shared_data / "adrenalmnist3d" / "adrenalmnist3d.npz")
    encoder = BundleEncoder(BUNDLE_3DSIAM)
    # the classification bundle: a linear head fitted on the encoder's embeddings of 160 training volumes
    train = _write(data["train_images"][:160], tmp_path / "train", "train")
    z_train = torch.stack([encoder(p) for p in train]).numpy()
    head = fit_linear_head(z_train, data["train_labels"][:160, 0], CLASSES)
    head.save(tmp_path / "head.pt")
    studies = _write(data["test_images"][:3], tmp_path / "studies", "adrenal_test")

    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [str(monailabel_cli), "-m", "monailabel.main", "start_server", "--app", APP_DIR, "--studies", str(tmp_path / "studies"),
         "--host", "127.0.0.1", "--port", str(port), "--conf", "bundle", str(BUNDLE_3DSIAM),
         "--conf", "classifier", str(tmp_path / "head.pt")],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                status, info = _call(f"{base}/info/")
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "MONAI Label server did not answer in 180 s"
            time.sleep(1)
        assert info["name"] == "medssl_monai" and info["datastore"]["total"] == 3
        assert info["models"]["embedding"]["dimension"] == 3
        assert info["models"]["classification"]["type"] == "classification"
        assert info["models"]["classification"]["labels"] == CLASSES

        for path in studies:
            image_id = path.name[: -len(".nii.gz")]
            expected = encoder(path)
            status, result = _call(f"{base}/infer/embedding?image={image_id}&output=json", method="POST")
            assert status == 200, result
            assert result["bundle"] == "3dsiam" and result["dimension"] == expected.numel() == 256
            # the served embedding is the bundle's own inference pipeline's embedding of the same file
            np.testing.assert_allclose(result["embedding"], expected.numpy(), rtol=1e-5, atol=1e-5)

            status, result = _call(f"{base}/infer/classification?image={image_id}&output=json", method="POST")
            assert status == 200, result
            probs = head(expected[None])[0].detach()
            assert list(result["probabilities"]) == CLASSES
            np.testing.assert_allclose(list(result["probabilities"].values()), probs.numpy(), atol=1e-5)
            assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
            assert result["prediction"] == CLASSES[int(probs.argmax())]

        status, _ = _call(f"{base}/infer/segmentation?image=adrenal_test_000&output=json", method="POST")
        assert status >= 400  # a model the app does not serve
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_linear_head_reproduces_logistic_regression(tmp_path):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (40, 5)), rng.normal(1.5, 2, (40, 5))])
    y = np.repeat([0, 1], 40)
    head = fit_linear_head(x, y, CLASSES)
    head.save(tmp_path / "h.pt")
    loaded = LinearHead.load(tmp_path / "h.pt")
    mean, std = x.mean(0), x.std(0)
    reference = (
        LogisticRegression(max_iter=5000, random_state=0).fit((x - mean) / std, y).predict_proba((x - mean) / std)
    )
    ours = loaded(torch.as_tensor(x, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    assert loaded.class_names == CLASSES
    with pytest.raises(ValueError, match="two classes"):
        fit_linear_head(x, np.zeros(80))
    torch.save({"weight": torch.zeros(2, 5)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a LinearHead file"):
        LinearHead.load(tmp_path / "bad.pt")
