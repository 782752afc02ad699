"""The bundle API on the 2D encoders: ``verify_net_in_out`` against metadata.json and ``ckpt_export`` to TorchScript
for small_data_ssl and ct_slice_reduction (3dsiam's are in test_bundle_3dsiam.py)."""

from __future__ import annotations

import pytest
import torch
from conftest import REPO
from monai.bundle import ckpt_export, verify_net_in_out

from medssl_monai.networks import resnet_backbone

CASES = {
    "small_data_ssl": ("resnet18", {"backbone": "resnet18"}),  # the shipped model's backbone (metadata: 512-d)
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


#: bundles whose models/model.pt ships (3dsiam's test is in test_bundle_3dsiam.py): inputs of a forward check
SHIPPED = {
    "ct_slice_reduction": lambda net: (torch.rand(4, 1, 96, 96),),
    "small_data_ssl": lambda net: (torch.rand(4, 1, 28, 28),),
    # the 2.5D stack of 10 slices at 32 px and 1,130 raw PyRadiomics features (at the scale of its training data)
    "radiomics_deep_contrast": lambda net: (
        torch.rand(4, 10, 32, 32),
        net.radiomics_branch.standardize.mean + net.radiomics_branch.standardize.std * torch.randn(4, 1130),
    ),
}


@pytest.mark.parametrize("bundle", sorted(SHIPPED))
def test_shipped_model_loads_with_the_bundle_api_and_matches_its_metadata(bundle):
    import hashlib
    import json

    from monai.bundle import load

    root = REPO / "bundles" / bundle
    path = root / "models" / "model.pt"
    metadata = json.loads((root / "configs" / "metadata.json").read_text())
    shipped = metadata["pretrained_weights"]
    assert {"data", "command", "epochs", "seed", "sha256"} <= set(shipped)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == shipped["sha256"]  # the documented file, not another
    # workflow_type="inference": the network as inference.json builds it (ct_slice_reduction has no train.json)
    network = load(name=bundle, bundle_dir=str(REPO / "bundles"), device="cpu", workflow_type="inference")
    saved = torch.load(path, weights_only=True)
    assert set(network.state_dict()) == set(saved)
    for key, value in network.state_dict().items():
        torch.testing.assert_close(value, saved[key])
    with torch.no_grad():
        z = network.eval()(*SHIPPED[bundle](network))
    views = z if isinstance(z, dict) else {"pred": z}  # radiomics_deep_contrast: {"deep", "radiomics"}
    out = metadata["network_data_format"]["outputs"]["pred"]["num_channels"]
    for v in views.values():
        assert v.shape == (4, out) and torch.isfinite(v).all() and v.std(0).mean() > 0
