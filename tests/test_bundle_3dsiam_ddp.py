"""Real DDP: the multi_gpu_train.json overlay with torchrun, two CPU processes, gloo backend."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from conftest import BUNDLE_3DSIAM, REPO

from medssl_monai.networks import PredictionHead, SiamEncoder3D, SSLNetwork


def test_two_process_gloo_training(tmp_path):
    configs = [str(BUNDLE_3DSIAM / "configs" / "train.json"), str(BUNDLE_3DSIAM / "configs" / "multi_gpu_train.json")]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29731",
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        str(configs),
        "--epochs",
        "1",
        "--output_dir",
        str(tmp_path),
        "--num_workers",
        "0",
        "--batch_size",
        "4",
        "--roi_size",
        "[28,28,28]",
        "--synthetic#n",
        "16",
        "--synthetic#size",
        "[32,32,32]",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ckpt = torch.load(tmp_path / "checkpoints" / "checkpoint_epoch=1.pt", weights_only=True)
    # 16 phantoms split over 2 ranks, batch 4 per rank: 2 iterations (a single process would run 4)
    assert ckpt["trainer"]["iteration"] == 2
    # the unwrapped module was saved: loads strictly into a single-process network and encoder
    SSLNetwork(SiamEncoder3D(), predictor=PredictionHead(256)).load_state_dict(ckpt["model"])
    SiamEncoder3D().load_state_dict(torch.load(tmp_path / "models" / "model.pt", weights_only=True))
    # rank 0 alone writes: one checkpoint, one TensorBoard event file
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 1


def test_overlay_disables_the_rank_zero_only_handlers():
    """multi_gpu_train.json disables handlers by position; this fails if train.json's handler order changes."""
    import json

    handlers = json.loads((BUNDLE_3DSIAM / "configs" / "train.json").read_text())["train"]["handlers"]
    overlay = json.loads((BUNDLE_3DSIAM / "configs" / "multi_gpu_train.json").read_text())
    disabled = sorted(int(k.split("#")[2]) for k in overlay if k.endswith("#_disabled_"))
    names = [handlers[i]["_target_"].split(".")[-1] for i in disabled]
    assert names == ["ProgressBar", "StatsHandler", "TensorBoardStatsHandler"]
