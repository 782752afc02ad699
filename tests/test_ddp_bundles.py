"""Real DDP for every pre-training config: torchrun, two CPU processes, gloo; and SwAV's distributed Sinkhorn-Knopp
giving each rank its rows of the global batch's codes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, spawn_gloo

from medssl_monai.losses import sinkhorn_knopp
from medssl_monai.networks import resnet_backbone

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "GLOO_SOCKET_IFNAME": "lo"}


def _torchrun(configs: list[str], port: int, *args: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}", "-m",
           "monai.bundle", "run", "--config_file", str(configs), *args]  # fmt: skip
    proc = subprocess.run(cmd, check=False, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_small_data_ssl_two_process_gloo_training(tmp_path):
    configs = REPO / "bundles" / "small_data_ssl" / "configs"
    _torchrun(
        [str(configs / "train.json"), str(configs / "multi_gpu_train.json")], 29741,
        "--epochs", "1", "--output_dir", str(tmp_path), "--num_workers", "0", "--batch_size", "8",
        "--backbone", "resnet18", "--method", "simclr", "--synthetic", "{'n': 40, 'size': 32, 'n_classes': 2}",
    )  # fmt: skip
    ckpt = torch.load(tmp_path / "checkpoints" / "checkpoint_epoch=1.pt", weights_only=True)
    # 28 training images (70 % of 40) over 2 ranks, batch 8 per rank, last partial batch dropped: 1 iteration
    assert ckpt["trainer"]["iteration"] == 1
    resnet_backbone("resnet18", 2, 1).load_state_dict(torch.load(tmp_path / "models" / "model.pt", weights_only=True))
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 1


@pytest.mark.parametrize("method", ["swav", "moco"])
def test_ct_pretrain_two_process_gloo_training(method, tmp_path):
    configs = REPO / "bundles" / "ct_slice_reduction" / "configs"
    _torchrun(
        [str(configs / "pretrain.json"), str(configs / "multi_gpu_pretrain.json")], 29751 + (method == "moco"),
        "--epochs", "1", "--output_dir", str(tmp_path), "--method", method, "--batch_size", "4",
        "--moco_queue_length", "16", "--freeze_prototypes_iterations", "1",
    )  # fmt: skip
    ckpt = torch.load(tmp_path / "checkpoints" / "checkpoint_epoch=1.pt", weights_only=True)
    kept = sum(
        1 for line in (tmp_path / "reduction" / "manifest.csv").read_text().splitlines()[1:] if line.endswith(",1")
    )
    assert ckpt["trainer"]["iteration"] == (kept + 1) // 2 // 4  # each rank gets half of the kept slices
    if method == "moco":  # every rank enqueued both ranks' keys: 2 x 4 keys per iteration
        assert int(ckpt["model"]["queue.ptr"]) == (ckpt["trainer"]["iteration"] * 8) % 16
    resnet_backbone("resnet18", 2, 1).load_state_dict(torch.load(tmp_path / "models" / "model.pt", weights_only=True))


def _sinkhorn_worker(rank: int, world: int, init: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        scores = torch.randn(8, 5, generator=torch.Generator().manual_seed(3))
        torch.save(sinkhorn_knopp(scores[rank * 4 : rank * 4 + 4], 0.1, 3), f"{out}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_distributed_sinkhorn_gives_each_rank_its_rows_of_the_global_codes(tmp_path):
    scores = torch.randn(8, 5, generator=torch.Generator().manual_seed(3))
    full = sinkhorn_knopp(scores, 0.1, 3)
    spawn_gloo(_sinkhorn_worker, tmp_path)
    for rank in range(2):
        codes = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        torch.testing.assert_close(codes, full[rank * 4 : rank * 4 + 4])
    assert not torch.allclose(sinkhorn_knopp(scores[:4], 0.1, 3), full[:4])  # a rank alone would get other codes


@pytest.mark.parametrize(
    ("bundle", "train", "overlay"),
    [
        ("small_data_ssl", "train.json", "multi_gpu_train.json"),
        ("ct_slice_reduction", "pretrain.json", "multi_gpu_pretrain.json"),
    ],
)
def test_overlays_disable_the_rank_zero_only_handlers(bundle, train, overlay):
    """The overlays disable handlers by position; this fails if the training config's handler order changes."""
    import json

    configs = REPO / "bundles" / bundle / "configs"
    handlers = json.loads((configs / train).read_text())["train"]["handlers"]
    keys = json.loads((configs / overlay).read_text())
    disabled = sorted(int(k.split("#")[2]) for k in keys if k.endswith("#_disabled_"))
    assert [handlers[i]["_target_"].split(".")[-1] for i in disabled] == [
        "ProgressBar",
        "StatsHandler",
        "TensorBoardStatsHandler",
    ]
