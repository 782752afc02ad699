"""The bundle API on the 2D encoders: ``verify_net_in_out`` against metadata.json and ``ckpt_export`` to TorchScript
for small_data_ssl and ct_slice_reduction (3dsiam's are in test_bundle_3dsiam.py)."""

from __future__ import annotations

import pytest
import torch
from conftest import REPO
from monai.bundle import ckpt_export, verify_net_in_out

from medssl_monai.networks import resnet_backbone

CASES = {
    "small_data_ssl": ("resnet50", {}),
    "ct_slice_reduction": ("resnet18", {"reduction_dir": "$None"}),
}


@pytest.mark.parametrize("bundle", sorted(CASES))
def test_verify_net_in_out_and_ckpt_export(bundle, tmp_path):
    backbone, override = CASES[bundle]
    configs = REPO / "bundles" / bundle / "configs"
    torch.manual_seed(0)
    reference = resnet_backbone(backbone, 2, 1).eval()
    ckpt = tmp_path / "models" / "model.pt"
    ckpt.parent.mkdir()
    torch.save(reference.state_dict(), ckpt)
    common = {"meta_file": str(configs / "metadata.json"), "config_file": str(configs / "inference.json")}
    verify_net_in_out(net_id="network_def", any=32, ckpt=str(ckpt), **common, **override)
    ts = tmp_path / "model.ts"
    ckpt_export(net_id="network_def", filepath=str(ts), ckpt_file=str(ckpt), ckpt=str(ckpt), **common, **override)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(ts))(x), reference(x))
