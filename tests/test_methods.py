"""SSL methods composed from backbone + heads + loss (Chattopadhyay et al., ICIP 2023): every method trains a step in
2D, builds in 3D, SimSiam has its predictor and stop-gradient, and a few SimSiam steps on phantoms do not collapse."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from medssl_monai.data import make_phantom
from medssl_monai.losses import DCLLoss, NTXentLoss, SimSiamLoss, VICRegLoss
from medssl_monai.networks import (
    METHODS,
    RESNET_FEATURES,
    PredictionHead,
    SimSiamProjectionHead,
    build_method,
    resnet_backbone,
)


def _step(method, views: list[torch.Tensor]) -> torch.Tensor:
    outputs = [method.network(v) for v in views]
    return method.loss(*[out[k] for k in method.loss_input_keys for out in outputs])


@pytest.mark.parametrize("name", METHODS)
def test_method_2d_forward_loss_backward(name):
    torch.manual_seed(0)
    method = build_method(name, resnet_backbone("resnet18", spatial_dims=2), RESNET_FEATURES["resnet18"])
    views = [torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32)]
    loss = _step(method, views)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in method.network.backbone.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert method.network(views[0])["embedding"].shape == (4, 512)


def test_method_heads_and_losses_follow_the_paper():
    dims = {}
    for name in METHODS:
        m = build_method(name, torch.nn.Identity(), 64)
        dims[name] = m.network(torch.randn(3, 64))["projection"].shape[1]
    assert dims == {"simclr": 128, "dcl": 128, "dclw": 128, "simsiam": 512, "vicreg": 4096}
    losses = {name: build_method(name, torch.nn.Identity(), 64).loss for name in METHODS}
    assert isinstance(losses["simclr"], NTXentLoss) and isinstance(losses["vicreg"], VICRegLoss)
    assert isinstance(losses["dcl"], DCLLoss) and not losses["dcl"].weighted and losses["dclw"].weighted
    assert isinstance(losses["simsiam"], SimSiamLoss)
    assert build_method("simclr", torch.nn.Identity(), 64, temperature=0.2).loss.temperature == 0.2
    assert build_method("simclr", torch.nn.Identity(), 64).network.predictor is None
    # gradient clipping only for VICReg (plain SGD instead of the VICReg paper's LARS)
    assert {m: build_method(m, torch.nn.Identity(), 64).clip_grad_norm for m in METHODS} == {
        "simclr": None,
        "dcl": None,
        "dclw": None,
        "simsiam": None,
        "vicreg": 3.0,
    }
    with pytest.raises(ValueError, match="unknown SSL method"):
        build_method("byol", torch.nn.Identity(), 64)
    with pytest.raises(ValueError, match="unknown backbone"):
        resnet_backbone("resnet19")


def test_simsiam_has_predictor_and_stop_gradient():
    """The backbone's gradient equals the one with the targets ``z`` replaced by constants, and differs from the one
    without stop-gradient (so the test can fail)."""
    torch.manual_seed(0)
    method = build_method("simsiam", torch.nn.Linear(16, 32), 32)
    net = method.network
    assert isinstance(net.predictor, PredictionHead) and isinstance(net.projector, SimSiamProjectionHead)
    assert method.loss_input_keys == ("prediction", "projection")
    x1, x2 = torch.randn(8, 16), torch.randn(8, 16)
    net.eval()  # BN with running statistics: the three passes below see the same function

    def grad_of(loss_fn) -> torch.Tensor:
        net.zero_grad()
        o1, o2 = net(x1), net(x2)
        loss_fn(o1, o2).backward()
        return net.backbone.weight.grad.clone()

    full = grad_of(lambda o1, o2: method.loss(o1["prediction"], o2["prediction"], o1["projection"], o2["projection"]))
    const = grad_of(
        lambda o1, o2: method.loss(
            o1["prediction"], o2["prediction"], o1["projection"].detach(), o2["projection"].detach()
        )
    )
    torch.testing.assert_close(full, const)

    def no_stop(o1, o2):
        p1, p2, z1, z2 = o1["prediction"], o2["prediction"], o1["projection"], o2["projection"]
        return -0.5 * (F.cosine_similarity(p1, z2).mean() + F.cosine_similarity(p2, z1).mean())

    assert not torch.allclose(full, grad_of(no_stop))


def test_method_builds_on_a_3d_backbone():
    torch.manual_seed(0)
    method = build_method("simsiam", resnet_backbone("resnet10", spatial_dims=3), RESNET_FEATURES["resnet10"])
    views = [torch.randn(2, 1, 16, 16, 16), torch.randn(2, 1, 16, 16, 16)]
    loss = _step(method, views)
    loss.backward()
    assert torch.isfinite(loss) and method.network.backbone.conv1.weight.grad is not None
    assert method.network.backbone.conv1.weight.ndim == 5


def _phantom_slices(n: int, seed: int) -> torch.Tensor:
    slices = [make_phantom(i % 2, size=(32, 32, 16), seed=(seed, i))[0][:, :, 8] for i in range(n)]
    return torch.from_numpy(np.stack(slices)[:, None])


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Cheap batch augmentation: random flips, intensity scale and noise."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    scale = 1 + 0.4 * (torch.rand(x.shape[0], 1, 1, 1, generator=gen) - 0.5)
    return x * scale + 0.05 * torch.randn(x.shape, generator=gen)


def test_simsiam_few_sgd_steps_do_not_collapse():
    """Collapse (Chen & He, Sec. 4.1) shows as a vanishing per-dimension std of the L2-normalised outputs; without
    collapse it stays near ``1 / sqrt(D)``. The floor here is ``0.1 / sqrt(D)``."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    method = build_method("simsiam", resnet_backbone("resnet18", spatial_dims=2), 512, out_features=128)
    optimizer = torch.optim.SGD(method.network.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    images = _phantom_slices(16, seed=0)
    losses = []
    for _ in range(10):
        optimizer.zero_grad()
        loss = _step(method, [_augment(images, gen), _augment(images, gen)])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    method.network.eval()
    with torch.no_grad():
        out = method.network(images)
    for key in ("embedding", "projection"):
        z = F.normalize(out[key], dim=1)
        assert float(z.std(dim=0).mean()) > 0.1 / z.shape[1] ** 0.5, key
