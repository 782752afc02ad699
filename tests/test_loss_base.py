"""The loss base (SSLLoss): every loss takes RE's per-sample weights, one temperature check, DDP gather (gloo)."""

from __future__ import annotations

import pytest
import torch
from conftest import spawn_gloo

from medssl_monai.losses import (
    DCLLoss,
    NTXentLoss,
    RadiomicsDeepNCELoss,
    RubikCubeLoss,
    SimSiamLoss,
    SSLLoss,
    VICRegLoss,
    check_positive,
    weighted_mean,
)


def _inputs(name: str, b: int = 6, seed: int = 0) -> tuple[tuple, dict]:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    if name == "simsiam":
        return (r(b, 8), r(b, 8), r(b, 8), r(b, 8)), {}
    if name == "rubik":
        return (r(b, 5), r(b, 16)), {"permutation": torch.arange(b) % 5, "rotation": (r(b, 16) > 0).float()}
    if name == "radiomics_deep":
        index = torch.arange(b)
        negatives = torch.stack([torch.tensor([j for j in range(b + 4) if j != i][:3]) for i in range(b)])
        return (r(b, 8), r(b, 8), r(b + 4, 8), r(b + 4, 8), index, negatives), {}
    return (r(b, 8), r(b, 8)), {}


LOSSES = {
    "simsiam": SimSiamLoss(),
    "ntxent": NTXentLoss(),
    "dcl": DCLLoss(),
    "dclw": DCLLoss(weighted=True),
    "vicreg": VICRegLoss(),
    "rubik": RubikCubeLoss(),
    "radiomics_deep": RadiomicsDeepNCELoss(),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_takes_per_sample_weights(name):
    loss_fn = LOSSES[name]
    assert isinstance(loss_fn, SSLLoss)
    inputs, targets = _inputs(name)
    plain = loss_fn(*inputs, **targets)
    torch.testing.assert_close(loss_fn(*inputs, weight=torch.full((6,), 2.5), **targets), plain)
    per_sample = loss_fn.per_sample(*inputs, **targets)
    assert per_sample.shape == (6,)
    extra = loss_fn.batch_term(*inputs)
    torch.testing.assert_close(per_sample.mean() + (0 if extra is None else extra), plain)
    one_hot = torch.zeros(6)
    one_hot[2] = 1.0
    expected = per_sample[2] + (0 if extra is None else extra)
    torch.testing.assert_close(loss_fn(*inputs, weight=one_hot, **targets), expected)
    with pytest.raises(ValueError, match="weight"):
        loss_fn(*inputs, weight=torch.ones(5), **targets)


def test_vicreg_weights_touch_only_the_invariance_term():
    loss_fn = VICRegLoss()
    z_a, z_b = _inputs("vicreg")[0]
    w = torch.tensor([1.0, 0.0, 3.0, 0.0, 0.0, 2.0])
    t = loss_fn.terms(z_a, z_b)
    inv = (z_a - z_b).square().mean(1)
    expected = 25 * (w * inv).sum() / w.sum() + 25 * t["variance"] + t["covariance"]
    torch.testing.assert_close(loss_fn(z_a, z_b, weight=w), expected)


def test_weighted_mean_and_check_positive():
    torch.testing.assert_close(weighted_mean(torch.tensor([1.0, 3.0]), torch.tensor([3.0, 1.0])), torch.tensor(1.5))
    with pytest.raises(ValueError, match="non-negative"):
        weighted_mean(torch.ones(2), torch.tensor([1.0, -1.0]))
    assert check_positive("tau", 0.1) == 0.1
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="tau must be positive"):
            check_positive("tau", bad)
    for make in (lambda: NTXentLoss(temperature=0), lambda: DCLLoss(sigma=-1), lambda: RadiomicsDeepNCELoss(0)):
        with pytest.raises(ValueError, match="must be positive"):
            make()


def _gather_worker(rank: int, world: int, init: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        z_a, z_b = _inputs("ntxent", b=8, seed=1)[0]
        rows = slice(rank * 4, rank * 4 + 4)
        a, b = z_a[rows].clone().requires_grad_(), z_b[rows].clone().requires_grad_()
        weight = torch.arange(1.0, 9.0)[rows]
        loss = NTXentLoss(gather_distributed=True)(a, b, weight=weight)
        loss.backward()
        local = NTXentLoss()(z_a[rows], z_b[rows])
        torch.save({"loss": loss.item(), "grad": a.grad.clone(), "local": local.item()}, f"{out}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_gather_distributed_gives_the_global_batch_loss_and_gradient(tmp_path):
    """Two gloo processes, 4 samples each: with gather, each rank's loss is the 8-sample loss, and each rank's
    gradient is world x the global gradient of its rows (DDP's average then gives the exact global gradient)."""
    z_a, z_b = _inputs("ntxent", b=8, seed=1)[0]
    a, b = z_a.clone().requires_grad_(), z_b.clone().requires_grad_()
    full = NTXentLoss()(a, b, weight=torch.arange(1.0, 9.0))
    full.backward()
    spawn_gloo(_gather_worker, tmp_path)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert result["loss"] == pytest.approx(full.item(), rel=1e-5)
        assert abs(result["local"] - full.item()) > 1e-3  # without gather each rank sees another loss
        torch.testing.assert_close(result["grad"], 2 * a.grad[rank * 4 : rank * 4 + 4], rtol=1e-4, atol=1e-6)
