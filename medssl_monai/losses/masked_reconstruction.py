"""SparK's masked-patch reconstruction loss (Tian et al., "Designing BERT for Convolutional Networks: Sparse and
Hierarchical Masked Modeling", ICLR 2023, Sec. 3.4; their ``spark.py``), the masked-image-modelling method of Wolf et
al. (2024, App. C).

The image ``x`` (B, C, H, W) is cut into ``p x p`` patches (``p`` = the encoder's total stride, 32 for a ResNet). With
``m`` (B, 1, H/p, W/p) the mask of VISIBLE patches (1 seen by the encoder, 0 masked), the loss is the mean squared
error over the MASKED patches only, against per-patch normalised targets (MAE's ``norm_pix_loss``, which SparK uses)::

    t_j = (x_j - mean(x_j)) / sqrt(var(x_j) + 1e-6)        (x_j: the p*p*C values of patch j)
    l_b = sum_{j masked} mean((r_bj - t_bj)^2) / #masked_b

The variance is the unbiased one, as in SparK's code.
"""

from __future__ import annotations

import torch

from .base import SSLLoss

__all__ = ["MaskedReconstructionLoss", "patchify"]


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, L, p*p*C) patches in row-major order (``H`` and ``W`` multiples of ``p``)."""
    b, c, h, w = x.shape
    if h % patch_size or w % patch_size:
        raise ValueError(f"image size {(h, w)} is not a multiple of the patch size {patch_size}.")
    gh, gw = h // patch_size, w // patch_size
    x = x.reshape(b, c, gh, patch_size, gw, patch_size)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, gh * gw, patch_size * patch_size * c)


class MaskedReconstructionLoss(SSLLoss):
    """``loss(reconstruction, image, visible)`` -> scalar (see the module docstring).

    Args:
        patch_size: ``p``, the side of a mask patch in pixels (32: a ResNet's total stride; Wolf et al., Table 10).
        normalize_target: per-patch normalised targets (SparK's default, True).
        eps: added to the patch variance.
    """

    def __init__(self, patch_size: int = 32, normalize_target: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        if patch_size < 1:
            raise ValueError(f"patch_size must be positive, got {patch_size}.")
        self.patch_size = int(patch_size)
        self.normalize_target = bool(normalize_target)
        self.eps = eps

    def per_sample(self, reconstruction: torch.Tensor, image: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        if reconstruction.shape != image.shape or image.ndim != 4:
            raise ValueError(
                f"reconstruction and image must be (B, C, H, W) of one shape, got {tuple(reconstruction.shape)}, "
                f"{tuple(image.shape)}."
            )
        pred = patchify(reconstruction, self.patch_size)
        target = patchify(image, self.patch_size)
        if self.normalize_target:
            target = (target - target.mean(dim=-1, keepdim=True)) / (target.var(dim=-1, keepdim=True) + self.eps).sqrt()
        masked = 1.0 - visible.reshape(visible.shape[0], -1).to(pred)
        if masked.shape[1] != pred.shape[1]:
            raise ValueError(f"visible has {masked.shape[1]} patches per image, the image {pred.shape[1]}.")
        if bool((masked.sum(dim=1) == 0).any()):
            raise ValueError("every image needs at least one masked patch to reconstruct.")
        per_patch = (pred - target.detach()).pow(2).mean(dim=-1)
        return (per_patch * masked).sum(dim=1) / masked.sum(dim=1)
