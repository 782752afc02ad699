"""Layer-wise adaptive optimisers that PyTorch does not ship, for the pre-training recipes of Wolf et al. (2024):
LARS for SwAV (Table 8; Caron et al. use apex's ``LARC`` around SGD) and LAMB for SparK (Table 10; Tian et al.).

Both scale each parameter tensor's step by a trust ratio ``||w|| / ||update||`` so that a layer moves by a bounded
fraction of its norm whatever its gradient scale.
"""

from __future__ import annotations

import torch

__all__ = ["LAMB", "LARS"]


class _LayerwiseOptimizer(torch.optim.Optimizer):
    """``step`` calls :meth:`update` on every parameter tensor that has a gradient."""

    def update(self, p: torch.Tensor, group: dict, state: dict) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, group, self.state[p])
        return loss


class LARS(_LayerwiseOptimizer):
    """SGD with momentum and layer-wise adaptive rate scaling, as apex's ``LARC(SGD, clip=False)`` that SwAV uses
    (You et al., "Large Batch Training of Convolutional Networks", 2017, Eq. 6-7)::

        g <- g + wd w;   g <- eta ||w|| / (||g_raw|| + wd ||w|| + eps) * g;   v <- m v + g;   w <- w - lr v

    ``eta`` is the trust coefficient (0.001, apex / SwAV); a tensor with zero weight or gradient norm keeps ratio 1.

    Args:
        params: parameters or groups.
        lr: 0.15 (Wolf et al., Table 8, batch 128).
        momentum: 0.9 (SwAV).
        weight_decay: 1e-6 (Wolf et al., Table 8).
        trust_coefficient: ``eta``.
        eps: 1e-8.
    """

    def __init__(self, params, lr: float = 0.15, momentum: float = 0.9, weight_decay: float = 1e-6,
                 trust_coefficient: float = 0.001, eps: float = 1e-8) -> None:  # fmt: skip
        if lr <= 0 or momentum < 0 or weight_decay < 0 or trust_coefficient <= 0:
            raise ValueError(f"invalid LARS settings lr={lr}, momentum={momentum}, weight_decay={weight_decay}.")
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eps": eps}
        defaults["trust_coefficient"] = trust_coefficient
        super().__init__(params, defaults)

    def update(self, p: torch.Tensor, group: dict, state: dict) -> None:
        g = p.grad
        w_norm, g_norm = p.norm(), g.norm()
        wd = group["weight_decay"]
        ratio = torch.where(
            (w_norm > 0) & (g_norm > 0),
            group["trust_coefficient"] * w_norm / (g_norm + wd * w_norm + group["eps"]),
            torch.ones_like(w_norm),
        )
        d = (g + wd * p) * ratio
        if group["momentum"] > 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d.clone()
            else:
                buf.mul_(group["momentum"]).add_(d)
            d = buf
        p.add_(d, alpha=-group["lr"])


class LAMB(_LayerwiseOptimizer):
    """Adam with a layer-wise trust ratio (You et al., "Large Batch Optimization for Deep Learning: Training BERT in
    76 minutes", ICLR 2020, Alg. 2), the optimiser of SparK::

        m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  r = m_hat / (sqrt(v_hat) + eps) + wd w
        w <- w - lr * (||w|| / ||r||) * r      (ratio 1 when either norm is 0)

    with bias-corrected ``m_hat``, ``v_hat``.

    Args:
        params: parameters or groups.
        lr: peak 2.5e-5 (Wolf et al., Table 10, batch 32: SparK's 2e-4 x 32 / 256).
        betas: (0.9, 0.95) (SparK).
        eps: 1e-6.
        weight_decay: 0.04 (SparK's starting value; it ramps to 0.2, not reproduced here).
    """

    def __init__(self, params, lr: float = 2.5e-5, betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-6,
                 weight_decay: float = 0.04) -> None:  # fmt: skip
        if lr <= 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or weight_decay < 0:
            raise ValueError(f"invalid LAMB settings lr={lr}, betas={betas}, weight_decay={weight_decay}.")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    def update(self, p: torch.Tensor, group: dict, state: dict) -> None:
        b1, b2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(b1).add_(p.grad, alpha=1 - b1)
        v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
        m_hat = m / (1 - b1 ** state["step"])
        v_hat = v / (1 - b2 ** state["step"])
        r = m_hat / (v_hat.sqrt() + group["eps"]) + group["weight_decay"] * p
        w_norm, r_norm = p.norm(), r.norm()
        ratio = torch.where((w_norm > 0) & (r_norm > 0), w_norm / r_norm, torch.ones_like(w_norm))
        p.add_(r * ratio, alpha=-group["lr"])
