"""NT-Xent (SimCLR), DCL / DCLW (Yeh et al.) and VICReg (Bardes et al.) against hand-computed values."""

import math

import pytest
import torch
from monai.losses import ContrastiveLoss
from torch.nn import functional as F

from medssl_monai.losses import (
    DCLLoss,
    NTXentLoss,
    VICRegLoss,
    covariance_loss,
    dclw_weights,
    invariance_loss,
    variance_loss,
)

C = 1 / math.sqrt(2)  # cos 45 deg


def _toy() -> tuple[torch.Tensor, torch.Tensor]:
    """B = 2, D = 2: a = (e1, e2), b = ((1, 1), e2 * 3). Cosines: a0.a1 = 0, a0.b0 = c, a0.b1 = 0, a1.b0 = c,
    a1.b1 = 1, b0.b1 = c (c = 1/sqrt 2). Unnormalised inputs check the L2 normalisation inside the losses."""
    return torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[1.0, 1.0], [0.0, 3.0]])


# ---------------------------------------------------------------- NT-Xent


def test_ntxent_hand_computed():
    tau = 0.5
    e = lambda s: math.exp(s / tau)
    anchors = [
        -math.log(e(C) / (e(0) + e(C) + e(0))),  # a0: candidates a1, b0 (positive), b1
        -math.log(e(1) / (e(0) + e(C) + e(1))),  # a1: candidates a0, b0, b1 (positive)
        -math.log(e(C) / (e(C) + e(C) + e(C))),  # b0: candidates a0 (positive), a1, b1 -> log 3
        -math.log(e(1) / (e(0) + e(1) + e(C))),  # b1: candidates a0, a1 (positive), b0
    ]
    assert anchors[2] == pytest.approx(math.log(3))
    assert float(NTXentLoss(temperature=tau)(*_toy())) == pytest.approx(sum(anchors) / 4, abs=1e-6)


def test_ntxent_orthonormal_batch_closed_form():
    """Identical orthonormal views: every anchor has one positive at cos 1 and 2(B - 1) negatives at cos 0."""
    b, tau = 5, 0.1
    z = torch.eye(b)
    expected = math.log(1 + 2 * (b - 1) * math.exp(-1 / tau))
    assert float(NTXentLoss(temperature=tau)(z, 7 * z)) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("b,d", [(2, 3), (8, 16), (13, 128)])
def test_ntxent_matches_monai_value_and_gradient(tau, b, d):
    g = torch.Generator().manual_seed(b * d)
    z_a, z_b = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    ours_a, ours_b = z_a.clone().requires_grad_(), z_b.clone().requires_grad_()
    ref_a, ref_b = z_a.clone().requires_grad_(), z_b.clone().requires_grad_()
    ours = NTXentLoss(temperature=tau)(ours_a, ours_b)
    ref = ContrastiveLoss(temperature=tau)(ref_a, ref_b)  # mean over the 2B anchors, like ours
    assert ours.item() == pytest.approx(ref.item(), abs=1e-6)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(ours_a.grad, ref_a.grad, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours_b.grad, ref_b.grad, atol=1e-6, rtol=1e-5)


def test_ntxent_default_temperature_and_symmetry():
    assert NTXentLoss().temperature == 0.5
    g = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    loss = NTXentLoss()
    torch.testing.assert_close(loss(z_a, z_b), loss(z_b, z_a))
    perm = torch.randperm(6, generator=g)  # permuting the batch (pairs kept) changes nothing
    torch.testing.assert_close(loss(z_a[perm], z_b[perm]), loss(z_a, z_b))


# ---------------------------------------------------------------- DCL / DCLW


def _dcl_anchor_terms(tau: float) -> list[tuple[float, float]]:
    """(positive similarity, log-sum-exp over the 2(B-1) = 2 negatives) per anchor of the toy batch."""
    e = lambda s: math.exp(s / tau)
    return [
        (C, math.log(e(0) + e(0))),  # a0: positive b0; negatives a1 (same view), b1 (other view)
        (1.0, math.log(e(0) + e(C))),  # a1: positive b1; negatives a0, b0
        (C, math.log(e(C) + e(C))),  # b0: positive a0; negatives b1, a1
        (1.0, math.log(e(C) + e(0))),  # b1: positive a1; negatives b0, a0
    ]


def test_dcl_hand_computed():
    tau = 0.1
    expected = sum(-s / tau + lse for s, lse in _dcl_anchor_terms(tau)) / 4
    assert float(DCLLoss(temperature=tau)(*_toy())) == pytest.approx(expected, abs=1e-5)


def test_dclw_hand_computed():
    tau, sigma = 0.1, 0.5
    p0, p1 = math.exp(C / sigma), math.exp(1 / sigma)  # positive-pair similarities c and 1
    w = [2 - 2 * p0 / (p0 + p1), 2 - 2 * p1 / (p0 + p1)]
    assert sum(w) / 2 == pytest.approx(1.0)
    torch.testing.assert_close(dclw_weights(*_toy(), sigma=sigma), torch.tensor(w))
    terms = _dcl_anchor_terms(tau)
    weights = [w[0], w[1], w[0], w[1]]  # anchors a0, a1, b0, b1: one weight per image, shared by both views
    expected = sum(-wi * s / tau + lse for wi, (s, lse) in zip(weights, terms)) / 4
    assert float(DCLLoss(temperature=tau, weighted=True, sigma=sigma)(*_toy())) == pytest.approx(expected, abs=1e-5)


def test_dcl_positive_not_in_denominator():
    """Identical orthonormal views: DCL = -1/tau + log(2(B - 1)) exactly; a positive in the denominator would give
    log(1 + 2(B - 1) e^(-1/tau)) (NT-Xent) instead."""
    b, tau = 4, 0.1
    z = torch.eye(b)
    dcl = float(DCLLoss(temperature=tau)(z, z))
    assert dcl == pytest.approx(-1 / tau + math.log(2 * (b - 1)), abs=1e-5)
    assert float(NTXentLoss(temperature=tau)(z, z)) == pytest.approx(
        math.log(1 + 2 * (b - 1) * math.exp(-1 / tau)), abs=1e-6
    )


def test_dcl_loss_is_ntxent_minus_positive_share():
    """Per anchor, NT-Xent - DCL = log(1 + e^(s+) / sum_neg e^(s-)) > 0: checks the decoupling on random data."""
    g = torch.Generator().manual_seed(3)
    z_a, z_b = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    tau = 0.2
    z = F.normalize(torch.cat([z_a, z_b]), dim=1)
    sim = z @ z.T / tau
    n = 7
    pos = torch.cat([sim.diagonal(n), sim.diagonal(-n)])
    neg = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    neg[torch.arange(2 * n), torch.cat([torch.arange(n) + n, torch.arange(n)])] = float("-inf")
    gap = torch.log1p(pos.exp() / neg.exp().sum(dim=1)).mean()
    diff = NTXentLoss(temperature=tau)(z_a, z_b) - DCLLoss(temperature=tau)(z_a, z_b)
    assert float(gap) > 0
    torch.testing.assert_close(diff, gap)


def _dclw_reference(z_a: torch.Tensor, z_b: torch.Tensor, tau: float, sigma: float, detach: bool) -> torch.Tensor:
    """Loop-by-loop DCLW; ``detach=False`` reproduces the public code of Chattopadhyay et al. (weight not detached)."""
    a, b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
    sims = (a * b).sum(dim=1)
    if detach:
        sims = sims.detach()
    w = 2 - a.shape[0] * torch.softmax(sims / sigma, dim=0)
    total = torch.zeros(())
    for anchor, other in ((a, b), (b, a)):
        for i in range(a.shape[0]):
            negatives = [anchor[i] @ anchor[j] / tau for j in range(a.shape[0]) if j != i]
            negatives += [anchor[i] @ other[j] / tau for j in range(a.shape[0]) if j != i]
            total = total - w[i] * (anchor[i] @ other[i]) / tau + torch.logsumexp(torch.stack(negatives), dim=0)
    return total / (2 * a.shape[0])


def test_dclw_gradient_does_not_flow_through_weight():
    g = torch.Generator().manual_seed(5)
    z_a, z_b = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    tau, sigma = 0.1, 0.5
    grads = {}
    for name, fn in {
        "ours": lambda a, b: DCLLoss(tau, weighted=True, sigma=sigma)(a, b),
        "detached": lambda a, b: _dclw_reference(a, b, tau, sigma, detach=True),
        "not_detached": lambda a, b: _dclw_reference(a, b, tau, sigma, detach=False),
    }.items():
        a, b = z_a.clone().requires_grad_(), z_b.clone().requires_grad_()
        loss = fn(a, b)
        loss.backward()
        grads[name] = (loss.item(), a.grad, b.grad)
    assert grads["ours"][0] == pytest.approx(grads["detached"][0], abs=1e-5)
    assert grads["ours"][0] == pytest.approx(grads["not_detached"][0], abs=1e-5)  # same value ...
    torch.testing.assert_close(grads["ours"][1], grads["detached"][1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(grads["ours"][2], grads["detached"][2], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(grads["ours"][1], grads["not_detached"][1], atol=1e-4)  # ... different gradient
    weights = dclw_weights(z_a.requires_grad_(), z_b)
    assert not weights.requires_grad and weights.grad_fn is None


def test_dcl_defaults_and_symmetry():
    loss = DCLLoss()
    assert (loss.temperature, loss.weighted, loss.sigma) == (0.1, False, 0.5)
    g = torch.Generator().manual_seed(1)
    z_a, z_b = torch.randn(5, 9, generator=g), torch.randn(5, 9, generator=g)
    for weighted in (False, True):
        fn = DCLLoss(weighted=weighted)
        torch.testing.assert_close(fn(z_a, z_b), fn(z_b, z_a))
        torch.testing.assert_close(fn(3 * z_a, z_b), fn(z_a, z_b))  # scale-free: normalised inside


def test_dclw_uniform_similarities_give_dcl():
    """Equal positive similarities give w = 1 for every image, so DCLW equals DCL."""
    z = torch.eye(4)
    torch.testing.assert_close(dclw_weights(z, z), torch.ones(4))
    rot = torch.tensor([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    z_b = torch.eye(4) * 0.6 + rot * 0.8  # each positive pair at cos 0.6
    torch.testing.assert_close(DCLLoss(weighted=True)(z, z_b), DCLLoss()(z, z_b))


# ---------------------------------------------------------------- VICReg


def _vicreg_toy() -> tuple[torch.Tensor, torch.Tensor]:
    """Z_a columns (0, 1, 2) and (0, 0, 2): variances 1 and 4/3, covariance 1. Z_b = Z_a / 2."""
    z_a = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 2.0]], dtype=torch.float64)
    return z_a, z_a / 2


def test_vicreg_terms_hand_computed():
    z_a, z_b = _vicreg_toy()
    eps = 1e-4
    inv = 0.25 * (0 + 0 + 1 + 0 + 4 + 4) / 6  # mean of (z_a / 2)^2
    v_a = 0.0  # sqrt(1 + eps) and sqrt(4/3 + eps) both exceed 1
    v_b = ((1 - math.sqrt(0.25 + eps)) + (1 - math.sqrt(1 / 3 + eps))) / 2
    c_a = 2 * 1.0**2 / 2  # two off-diagonal entries equal to 1, over D = 2
    c_b = 2 * 0.25**2 / 2
    assert float(invariance_loss(z_a, z_b)) == pytest.approx(inv)
    assert float(variance_loss(z_a, eps)) == pytest.approx(v_a)
    assert float(variance_loss(z_b, eps)) == pytest.approx(v_b)
    assert float(covariance_loss(z_a)) == pytest.approx(c_a)
    assert float(covariance_loss(z_b)) == pytest.approx(c_b)
    terms = VICRegLoss().terms(z_a, z_b)
    assert float(terms["invariance"]) == pytest.approx(inv)
    assert float(terms["variance"]) == pytest.approx((v_a + v_b) / 2)  # averaged over the branches
    assert float(terms["covariance"]) == pytest.approx(c_a + c_b)  # summed over the branches
    total = 25 * inv + 25 * (v_a + v_b) / 2 + 1 * (c_a + c_b)
    assert float(VICRegLoss()(z_a, z_b)) == pytest.approx(total)
    assert float(VICRegLoss(2.0, 3.0, 4.0)(z_a, z_b)) == pytest.approx(2 * inv + 3 * (v_a + v_b) / 2 + 4 * (c_a + c_b))


def test_vicreg_collapse_variance_is_averaged_not_summed():
    """Two collapsed (constant) branches: the variance term is 1 - sqrt(eps), not twice that (paper 2's code)."""
    z = torch.ones(8, 16)
    terms = VICRegLoss().terms(z, z)
    assert float(terms["variance"]) == pytest.approx(1 - math.sqrt(1e-4))
    assert float(terms["invariance"]) == 0.0 and float(terms["covariance"]) == 0.0


def test_vicreg_unbiased_statistics():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(10, 6, generator=g, dtype=torch.float64)
    cov = torch.cov(z.T)  # divides by N - 1
    off = cov - torch.diag(cov.diagonal())
    assert float(covariance_loss(z)) == pytest.approx(float(off.square().sum() / 6))
    std = cov.diagonal().add(1e-4).sqrt()
    assert float(variance_loss(z)) == pytest.approx(float(torch.relu(1 - std).mean()))


@pytest.mark.parametrize("d", [1, 3, 64])
def test_losses_are_dimension_free(d):
    g = torch.Generator().manual_seed(d)
    z_a = torch.randn(4, d, generator=g, requires_grad=True)
    z_b = torch.randn(4, d, generator=g)
    for loss in (NTXentLoss(), DCLLoss(), DCLLoss(weighted=True), VICRegLoss()):
        value = loss(z_a, z_b)
        assert value.ndim == 0 and torch.isfinite(value)
        (grad,) = torch.autograd.grad(value, z_a)
        assert torch.isfinite(grad).all()


def test_bad_inputs():
    v = torch.randn(3, 4)
    for loss in (NTXentLoss(), DCLLoss(), VICRegLoss()):
        with pytest.raises(ValueError, match="one shape"):
            loss(v, torch.randn(3, 5))
        with pytest.raises(ValueError, match="one shape"):
            loss(v.reshape(3, 2, 2), v.reshape(3, 2, 2))
    with pytest.raises(ValueError, match="at least 2"):
        DCLLoss()(v[:1], v[:1])
    with pytest.raises(ValueError, match="at least 2"):
        VICRegLoss()(v[:1], v[:1])
    with pytest.raises(ValueError, match="positive"):
        NTXentLoss(temperature=0)
    with pytest.raises(ValueError, match="positive"):
        DCLLoss(sigma=-1)
