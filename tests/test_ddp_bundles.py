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


def test_radiomics_deep_contrast_two_process_gloo_training(tmp_path):
    configs = REPO / "bundles" / "radiomics_deep_contrast" / "configs"
    _torchrun(
        [str(configs / "train.json"), str(configs / "multi_gpu_train.json")], 29761,
        "--epochs", "1", "--output_dir", str(tmp_path), "--batch_size", "8", "--backbone", "resnet18",
        "--synthetic", "{'n': 40, 'size': [32, 32, 32], 'imbalance': 3.0, 'seed': 0}",
    )  # fmt: skip
    ckpt = torch.load(tmp_path / "checkpoints" / "checkpoint_epoch=1.pt", weights_only=True)
    # the synthetic train split over 2 ranks (DistributedSampler pads to an even split), batch 8 per rank, last
    # partial batch dropped
    n = sum(1 for _ in (tmp_path / "radiomics.csv").read_text().splitlines()[1:])
    assert ckpt["trainer"]["iteration"] == (n + 1) // 2 // 8
    assert set(ckpt) >= {"model", "optimizer", "bank_deep", "bank_radiomics", "trainer"}
    assert (tmp_path / "models" / "model.pt").is_file()


def _rdc_step_setup(batches: list[dict], network: torch.nn.Module):
    from medssl_monai.apps.radiomics_deep_contrast import RadiomicsDeepTrainer
    from medssl_monai.losses import RadiomicsDeepNCELoss
    from medssl_monai.networks import MemoryBank

    banks = MemoryBank(8, 6, seed=0), MemoryBank(8, 6, seed=1)
    trainer = RadiomicsDeepTrainer(
        device=torch.device("cpu"), max_epochs=1, train_data_loader=batches, network=network,
        optimizer=torch.optim.SGD(network.parameters(), lr=0.5, momentum=0.9), loss_function=RadiomicsDeepNCELoss(),
        bank_deep=banks[0], bank_radiomics=banks[1], num_negatives=2048, seed=0,
    )  # fmt: skip
    trainer.run()
    return banks


def _rdc_data() -> tuple[torch.nn.Module, list[dict]]:
    from medssl_monai.networks import RadiomicsDeepNetwork

    torch.manual_seed(0)
    net = RadiomicsDeepNetwork(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 6)), torch.nn.Linear(5, 6)
    )
    g = torch.Generator().manual_seed(1)
    data = {"image": torch.randn(8, 2, 4, 4, generator=g), "radiomics": torch.randn(8, 5, generator=g)}
    data["index"] = torch.arange(8)
    return net, [{k: v[s : s + 4] for k, v in data.items()} for s in (0, 4)]  # two global batches of 4


def _rdc_worker(rank: int, world: int, init: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        net, batches = _rdc_data()
        mine = [{k: v[rank * 2 : rank * 2 + 2] for k, v in b.items()} for b in batches]  # this rank's half
        banks = _rdc_step_setup(mine, torch.nn.parallel.DistributedDataParallel(net))
        state = {"net": net.state_dict(), "deep": banks[0].memory, "radiomics": banks[1].memory}
        torch.save(state, f"{out}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_radiomics_deep_ddp_step_equals_one_process_on_the_global_batch(tmp_path):
    """Two gloo ranks with half of each batch end with the weights and memory banks of one process on the whole batch
    (DDP averages the ranks' gradients of their batch means; the trainer gathers every rank's bank update)."""
    net, batches = _rdc_data()
    banks = _rdc_step_setup(batches, net)
    spawn_gloo(_rdc_worker, tmp_path)
    for rank in range(2):
        state = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for key, value in net.state_dict().items():
            torch.testing.assert_close(state["net"][key], value, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(state["deep"], banks[0].memory, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(state["radiomics"], banks[1].memory, atol=1e-5, rtol=1e-5)
    fresh = _rdc_data()[0]
    assert not torch.allclose(fresh.radiomics_branch.weight, net.radiomics_branch.weight)  # the steps changed it


@pytest.mark.parametrize(
    ("bundle", "train", "overlay"),
    [
        ("small_data_ssl", "train.json", "multi_gpu_train.json"),
        ("ct_slice_reduction", "pretrain.json", "multi_gpu_pretrain.json"),
        ("radiomics_deep_contrast", "train.json", "multi_gpu_train.json"),
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
