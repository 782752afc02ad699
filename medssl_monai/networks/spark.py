"""SparK: sparse masked modelling for a convolutional encoder (Tian et al., "Designing BERT for Convolutional Networks:
Sparse and Hierarchical Masked Modeling", ICLR 2023), the masked-image-modelling method of Wolf et al. (2024, App. C,
Table 10: patch 32, mask ratio 60 %).

What is implemented, and how it relates to a "faithful sparse convolution":

* **Masking.** The image is cut into ``p x p`` patches, ``p`` the encoder's total stride (32 for a ResNet), and a random
  ``mask_ratio`` of them per image is hidden (an exact count per image, as SparK's ``mask``).
* **Sparse encoder.** SparK itself does not use a sparse-convolution library: its ``encoder.py`` runs dense
  convolutions and multiplies every convolution and pooling output by the visible mask at that resolution, and
  replaces BatchNorm by a BatchNorm over the visible positions only (``SparseBatchNorm2d``). This is exactly what
  happens here (forward hooks on every ``Conv2d`` / pooling layer, :class:`SparseBatchNorm2d` swapped in for each
  ``BatchNorm2d``), so masked positions never leak into visible features, as submanifold sparse convolution
  guarantees. Outside :class:`SparKNetwork`'s forward (no mask set) the encoder is an ordinary dense ResNet with the
  same state-dict keys: the pre-trained backbone loads into a plain MONAI ResNet.
* **Hierarchical decoder.** The four stage outputs (strides 4, 8, 16, 32) are densified: masked positions are filled
  with a learned mask token per stage, then BatchNorm and a projection (1x1 for the deepest stage, 3x3 otherwise)
  to the decoder width of that level; SparK's ``LightDecoder``: five upsampling blocks (``ConvTranspose2d`` x2, then
  ``conv3x3-BN-ReLU6-conv3x3-BN-ReLU6``), widths halving from ``decoder_width``, each stage's densified map added at its
  resolution, then a 1x1 convolution to the image channels.
* **Loss.** :class:`~medssl_monai.losses.MaskedReconstructionLoss` on the masked patches, per-patch normalised targets.

Only 2D MONAI ResNets are supported (the paper pre-trains 2D ResNets on CT slices).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["SparKNetwork", "SparseBatchNorm2d", "random_visible_mask"]


def random_visible_mask(
    batch: int, grid: tuple[int, int], mask_ratio: float, device=None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, 1, gh, gw) bool: ``round(gh * gw * (1 - mask_ratio))`` visible patches per image (at least one), chosen
    uniformly without replacement; the rest masked (at least one)."""
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}.")
    cells = grid[0] * grid[1]
    if cells < 2:
        raise ValueError(f"a {grid} patch grid cannot hide some patches and show others: use larger images.")
    keep = min(max(round(cells * (1.0 - mask_ratio)), 1), cells - 1)
    order = torch.rand(batch, cells, generator=generator, device=generator.device if generator else None).argsort(1)
    visible = torch.zeros(batch, cells, dtype=torch.bool, device=order.device)
    visible.scatter_(1, order[:, :keep], True)
    return visible.reshape(batch, 1, *grid).to(device) if device is not None else visible.reshape(batch, 1, *grid)


def _at(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The patch mask (B, 1, gh, gw) repeated up to the feature map ``size`` (a multiple of the grid)."""
    return mask.repeat_interleave(size[0] // mask.shape[2], 2).repeat_interleave(size[1] // mask.shape[3], 3)


class SparseBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` whose batch statistics and output cover only the visible positions while a mask is set
    (``self.visible``, by :class:`SparKNetwork`); an ordinary ``BatchNorm2d`` otherwise (same state-dict keys)."""

    visible: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.visible is None:
            return super().forward(x)
        m = _at(self.visible, x.shape[-2:])[:, 0]  # (B, H, W)
        flat = x.permute(0, 2, 3, 1)[m]  # (n_visible, C)
        out = torch.zeros_like(x.permute(0, 2, 3, 1))
        out[m] = F.batch_norm(
            flat,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training,
            self.momentum if self.momentum is not None else 0.0,
            self.eps,
        )
        if self.training and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        return out.permute(0, 3, 1, 2)


def _sparsify(module: nn.Module) -> list[SparseBatchNorm2d]:
    """Swap every ``BatchNorm2d`` below ``module`` for a :class:`SparseBatchNorm2d` holding the same tensors."""
    swapped = []
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, SparseBatchNorm2d):
            new = SparseBatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
            swapped.append(new)
        else:
            swapped.extend(_sparsify(child))
    return swapped


class _UpBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.ConvTranspose2d(cin, cin, kernel_size=4, stride=2, padding=1, bias=True),
            nn.Conv2d(cin, cin, 3, padding=1, bias=False),
            nn.BatchNorm2d(cin),
            nn.ReLU6(inplace=True),
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class SparKNetwork(nn.Module):
    """Masked encoder + densify + light U-Net decoder around a 2D MONAI ResNet ``backbone`` (module docstring).

    ``forward(x)`` -> ``{"embedding": pooled features of the masked input, "reconstruction": (B, C, H, W),
    "image": x, "visible": (B, 1, H/p, W/p)}``; the trainer passes ``reconstruction, image, visible`` to
    :class:`~medssl_monai.losses.MaskedReconstructionLoss`.

    Args:
        backbone: a MONAI ``ResNet`` (``layer1`` ... ``layer4``), 2D, ``feed_forward=False``.
        in_channels: image channels (the reconstruction's).
        mask_ratio: fraction of patches hidden (0.6; Wolf et al., Table 10; SparK's default).
        decoder_width: channels of the first decoder block (SparK: 768 for ResNet-50; 256 here for ResNet-18/50 on
            a CPU), halved at each of the five blocks.
        downsample: the encoder's total stride = mask patch size (32 for a ResNet with the standard stem).
    """

    def __init__(
        self,
        backbone: nn.Module,
        in_channels: int = 1,
        mask_ratio: float = 0.6,
        decoder_width: int = 256,
        downsample: int = 32,
    ) -> None:
        super().__init__()
        if not all(hasattr(backbone, f"layer{i}") for i in range(1, 5)):
            raise ValueError("SparKNetwork needs a MONAI ResNet backbone (layer1 ... layer4).")
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}.")
        self.backbone = backbone
        self.mask_ratio = float(mask_ratio)
        self.downsample = int(downsample)
        self._sparse_bn = _sparsify(backbone)
        self._visible: torch.Tensor | None = None
        self._features: list[torch.Tensor] = []
        for module in backbone.modules():
            if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
                module.register_forward_hook(self._mask_output)
        for i in range(1, 5):
            getattr(backbone, f"layer{i}").register_forward_hook(self._keep_feature)
        with torch.no_grad():
            was = backbone.training
            backbone.eval()
            probe = torch.zeros(1, in_channels, downsample * 2, downsample * 2)
            self._features = []
            backbone(probe)
            stage_channels = [f.shape[1] for f in self._features]
            backbone.train(was)
            self._features = []
        widths = [decoder_width // 2**i for i in range(5)]  # decoder widths at strides 32, 16, 8, 4, 2
        deepest_first = stage_channels[::-1]
        self.mask_tokens = nn.ParameterList([nn.Parameter(torch.zeros(1, c, 1, 1)) for c in deepest_first])
        for token in self.mask_tokens:
            nn.init.trunc_normal_(token, std=0.02, a=-0.02, b=0.02)
        self.densify = nn.ModuleList(
            nn.Sequential(nn.BatchNorm2d(c), nn.Conv2d(c, widths[i], 1 if i == 0 else 3, padding=0 if i == 0 else 1))
            for i, c in enumerate(deepest_first)
        )
        self.decoder = nn.ModuleList(_UpBlock(widths[i], widths[i + 1] if i < 4 else widths[4]) for i in range(5))
        self.head = nn.Conv2d(widths[4], in_channels, kernel_size=1)

    def _mask_output(self, module: nn.Module, args, output: torch.Tensor):
        if self._visible is None:
            return None
        return output * _at(self._visible, output.shape[-2:]).to(output.dtype)

    def _keep_feature(self, module: nn.Module, args, output: torch.Tensor) -> None:
        self._features.append(output)

    def forward(self, x: torch.Tensor, visible: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        if h % self.downsample or w % self.downsample:
            raise ValueError(f"SparK needs image sides that are multiples of {self.downsample}, got {(h, w)}.")
        if visible is None:
            visible = random_visible_mask(x.shape[0], (h // self.downsample, w // self.downsample), self.mask_ratio)
        visible = visible.to(x.device)
        self._visible, self._features = visible, []
        for bn in self._sparse_bn:
            bn.visible = visible
        try:
            embedding = self.backbone(x * _at(visible, (h, w)).to(x.dtype))
            features = self._features[::-1]  # deepest first
        finally:
            self._visible, self._features = None, []
            for bn in self._sparse_bn:
                bn.visible = None
        y = 0
        for i, block in enumerate(self.decoder):
            if i < len(features):
                f = features[i]
                m = _at(visible, f.shape[-2:]).to(f.dtype)
                f = f * m + self.mask_tokens[i].to(f.dtype) * (1 - m)  # densify: mask token where nothing was seen
                y = y + self.densify[i](f)
            y = block(y)
        return {"embedding": embedding, "reconstruction": self.head(y), "image": x, "visible": visible}
