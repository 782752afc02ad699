"""Exact resume and same-seed reproducibility: a training run killed (Ignite terminate, SIGTERM, SIGINT) and rerun
with the same command ends with bit-identical weights to an unbroken run; two runs of one seed give identical weights
and embeddings (CPU)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import BUNDLE_3DSIAM, REPO, bundle_workflow
from ignite.engine import Events

SMALL_DATA = REPO / "bundles" / "small_data_ssl" / "configs"
SMALL_FAST = {"backbone": "resnet18", "num_workers": 0, "batch_size": 8, "synthetic": {"n": 40, "size": 32, "n_classes": 2},
              "device": "cpu", "method": "simclr"}  # fmt: skip
SIAM_FAST = {"num_workers": 0, "batch_size": 6, "synthetic#n": 12, "synthetic#size": [32, 32, 32], "device": "cpu"}


def _train(configs, out, epochs: int, stop_after: int | None = None, **override) -> None:
    wf = bundle_workflow(configs, "train", epochs=epochs, output_dir=str(out), **override)
    if stop_after is not None:  # killed at the end of that epoch, after its checkpoint
        wf.trainer.add_event_handler(Events.EPOCH_COMPLETED(once=stop_after), lambda e: e.terminate())
    wf.run()
    wf.finalize()


def _assert_same_weights(a, b) -> None:
    sa, sb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.mark.parametrize(
    ("configs", "fast"),
    [(SMALL_DATA, SMALL_FAST), (BUNDLE_3DSIAM / "configs", SIAM_FAST)],
    ids=["small_data_ssl", "3dsiam"],
)
def test_killed_and_resumed_run_ends_bit_identical(configs, fast, tmp_path):
    _train(configs, tmp_path / "unbroken", 3, **fast)
    _train(configs, tmp_path / "killed", 3, stop_after=1, **fast)
    _train(configs, tmp_path / "killed", 3, **fast)
    _assert_same_weights(tmp_path / "unbroken" / "models" / "model.pt", tmp_path / "killed" / "models" / "model.pt")


def test_same_seed_twice_gives_identical_weights_and_embeddings(tmp_path):
    for run in ("a", "b"):
        _train(BUNDLE_3DSIAM / "configs", tmp_path / run, 1, **SIAM_FAST)
        wf = bundle_workflow(
            BUNDLE_3DSIAM / "configs",
            "inference",
            ckpt=str(tmp_path / run / "models" / "model.pt"),
            output_dir=str(tmp_path / run / "inference"),
            **SIAM_FAST,
        )
        wf.run()
        wf.finalize()
    _assert_same_weights(tmp_path / "a" / "models" / "model.pt", tmp_path / "b" / "models" / "model.pt")
    a = (tmp_path / "a" / "inference" / "embeddings.csv").read_text()
    assert a == (tmp_path / "b" / "inference" / "embeddings.csv").read_text() and len(a.splitlines()) > 1


def _cli(out, epochs: int) -> list[str]:
    return [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(SMALL_DATA / "train.json"),
            "--output_dir", str(out), "--epochs", str(epochs), "--backbone", "resnet18", "--num_workers", "0",
            "--batch_size", "8", "--synthetic", "{'n': 64, 'size': 32, 'n_classes': 2}", "--method", "simclr"]  # fmt: skip


ENV = {**os.environ, "MEDSSL_DEBUG": "0"}


@pytest.fixture(scope="module")
def unbroken_cli(tmp_path_factory):
    out = tmp_path_factory.mktemp("unbroken")
    subprocess.run(_cli(out, 3), cwd=REPO, env=ENV, check=True, capture_output=True, timeout=600)
    return out / "models" / "model.pt"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_epoch_then_same_command_resumes_exactly(sig, unbroken_cli, tmp_path):
    env = ENV
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(killed, 3), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = killed / "checkpoints" / "checkpoint_epoch=1.pt"
    deadline = time.monotonic() + 300
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 2
    proc.send_signal(sig)
    assert proc.wait(timeout=120) != 0, "the run finished before the signal: make the run longer"
    assert not (killed / "models" / "model.pt").exists()
    subprocess.run(_cli(killed, 3), cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
    _assert_same_weights(unbroken_cli, killed / "models" / "model.pt")


def test_an_unreadable_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    _train(SMALL_DATA, tmp_path, 3, stop_after=2, **SMALL_FAST)
    newest = tmp_path / "checkpoints" / "checkpoint_epoch=2.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # cut short (a full disk, an interrupted copy)
    wf = bundle_workflow(SMALL_DATA, "train", epochs=3, output_dir=str(tmp_path), **SMALL_FAST)
    epochs: list[int] = []
    wf.trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: epochs.append(e.state.epoch))
    wf.run()
    wf.finalize()
    assert epochs == [2, 3]  # resumed from epoch 1's checkpoint
