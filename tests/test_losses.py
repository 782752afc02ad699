import math

import pytest
import torch

from medssl_monai.losses import SimSiamLoss, negative_cosine_similarity
from medssl_monai.networks import PredictionHead, SSLNetwork


def test_identical_vectors_give_minus_one():
    v = torch.randn(5, 8)
    assert float(SimSiamLoss()(v, v, v, v)) == pytest.approx(-1.0, abs=1e-6)


def test_orthogonal_vectors_give_zero():
    e1, e2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    assert float(SimSiamLoss()(e1, e1, e2, e2)) == pytest.approx(0.0, abs=1e-7)


def test_hand_computed_value():
    p1, p2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    z1, z2 = torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 1.0]])
    # S(p1, z2) = -cos(45 deg); S(p2, z1) = -cos(45 deg)
    expected = 0.5 * -math.sqrt(0.5) + 0.5 * -math.sqrt(0.5)
    assert float(SimSiamLoss()(p1, p2, z1, z2)) == pytest.approx(expected, abs=1e-6)
    assert float(negative_cosine_similarity(torch.tensor([3.0, 4.0]), torch.tensor([4.0, -3.0]))) == 0.0


def test_symmetric_in_views():
    g = torch.Generator().manual_seed(0)
    p1, p2, z1, z2 = (torch.randn(6, 16, generator=g) for _ in range(4))
    loss = SimSiamLoss()
    torch.testing.assert_close(loss(p1, p2, z1, z2), loss(p2, p1, z2, z1))


def test_stop_gradient_on_targets():
    z1 = torch.randn(4, 8, requires_grad=True)
    z2 = torch.randn(4, 8, requires_grad=True)
    p1 = torch.randn(4, 8, requires_grad=True)
    p2 = torch.randn(4, 8, requires_grad=True)
    SimSiamLoss()(p1, p2, z1, z2).backward()
    assert z1.grad is None and z2.grad is None
    assert p1.grad is not None and p1.grad.abs().sum() > 0


def test_encoder_gets_gradient_only_through_predictor_branch():
    """The encoder's gradient equals the one obtained with the targets replaced by constants (no gradient through the
    target branch), and differs from the gradient without stop-gradient (so the test can fail)."""
    torch.manual_seed(0)
    backbone = torch.nn.Linear(10, 8)
    net = SSLNetwork(backbone, predictor=PredictionHead(8, 4)).train()
    x1, x2 = torch.randn(6, 10), torch.randn(6, 10)
    o1, o2 = net(x1), net(x2)
    SimSiamLoss()(o1["prediction"], o2["prediction"], o1["projection"], o2["projection"]).backward()
    grad_full = backbone.weight.grad.clone()

    net.zero_grad()
    o1, o2 = net(x1), net(x2)
    t1, t2 = o1["projection"].detach(), o2["projection"].detach()  # targets computed as constants
    loss = 0.5 * -torch.nn.functional.cosine_similarity(o1["prediction"], t2).mean()
    loss = loss + 0.5 * -torch.nn.functional.cosine_similarity(o2["prediction"], t1).mean()
    loss.backward()
    torch.testing.assert_close(grad_full, backbone.weight.grad)

    net.zero_grad()
    o1, o2 = net(x1), net(x2)
    no_sg = -0.5 * torch.nn.functional.cosine_similarity(o1["prediction"], o2["projection"]).mean()
    no_sg = no_sg - 0.5 * torch.nn.functional.cosine_similarity(o2["prediction"], o1["projection"]).mean()
    no_sg.backward()
    assert not torch.allclose(grad_full, backbone.weight.grad)


def test_uniform_weights_equal_unweighted():
    g = torch.Generator().manual_seed(1)
    args = [torch.randn(7, 5, generator=g) for _ in range(4)]
    loss = SimSiamLoss()
    torch.testing.assert_close(loss(*args, weight=torch.full((7,), 3.0)), loss(*args))


def test_weighted_reduction_formula():
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # per-sample losses -1 and 0
    w = torch.tensor([3.0, 1.0])
    assert float(SimSiamLoss()(p, p, z, z, weight=w)) == pytest.approx((3 * -1 + 1 * 0) / 4)


def test_bad_inputs():
    loss = SimSiamLoss()
    v = torch.randn(3, 4)
    with pytest.raises(ValueError, match="same shape|one shape"):
        loss(v, v, v, torch.randn(3, 5))
    with pytest.raises(ValueError, match="entries"):
        loss(v, v, v, v, weight=torch.ones(2))
    with pytest.raises(ValueError, match="non-negative"):
        loss(v, v, v, v, weight=torch.tensor([1.0, -1.0, 1.0]))
