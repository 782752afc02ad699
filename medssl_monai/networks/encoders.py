"""The 3D encoder of 3DSiam (Li et al., MICCAI 2021, Supplementary Table 4)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["Bottleneck3D", "SiamEncoder3D"]


class Bottleneck3D(nn.Module):
    """Residual bottleneck block ``[1x1x1, c; 3x3x3, c; 1x1x1, c]`` with an identity shortcut.

    Table 4 gives only the kernels and widths; batch norm after each convolution and ReLU after the first two and
    after the addition follow the ResNet bottleneck (He et al., 2016) that the table's bracket notation denotes.
    """

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(channels, channels, 1, bias=False),
            nn.BatchNorm3d(channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm3d(channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(channels, channels, 1, bias=False),
            nn.BatchNorm3d(channels),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class SiamEncoder3D(nn.Module):
    """3DSiam encoder, exactly the layers of Supplementary Table 4 (Li et al., MICCAI 2021).

    ====================  ==============================================  ============
    layer                 definition                                      96^3 input
    ====================  ==============================================  ============
    conv1                 3x3x3, 32, stride 1 (same padding)              96^3
    residual blocks 2, 3  [1x1x1 32, 3x3x3 32, 1x1x1 32] x 1 each         96^3
    max-pool 3            kernel 3, stride 3, no padding                  32^3
    conv4                 3x3x3, 64, BN, ReLU                             32^3
    max-pool 4                                                            10^3
    conv5                 3x3x3, 128, BN, ReLU                            10^3
    max-pool 5                                                            3^3
    conv6                 3x3x3, 256, BN, ReLU                            3^3
    global average pool                                                   1
    dense7                324, BN (+ ReLU)                                324
    dense8                256                                             256
    ====================  ==============================================  ============

    Any input with at least 27 voxels per axis works (27 -> 9 -> 3 -> 1). The output of dense8 is the
    256-d representation (``r`` in Eq. 1-2) that SimSiam's predictor maps and that downstream tasks use.
    The ReLU between dense7 and dense8 is our choice (the table lists "324, bn"; without a non-linearity the
    two dense layers would collapse to one affine map); SimSiam's projection MLP has the same ``fc-BN-ReLU-fc``.

    Args:
        in_channels: image channels (1 for FLAIR or CT).
        out_channels: representation size (256 in the paper).
        hidden_features: width of dense7 (324 in the paper).
        checkpoint: recompute the full-resolution layers (conv1 and both residual blocks, each its own segment) in
            the backward pass instead of storing their activations (``torch.utils.checkpoint``). At 96^3 these hold
            most of the activation memory; the cost is about one extra forward of those layers. Batch-norm running
            statistics of the recomputed blocks are updated twice per step (a known property of checkpointing).
        checkpoint_min_size: with ``checkpoint``, recompute only for inputs of at least this many voxels on every
            axis. On a 2-core CPU checkpointing made 96^3 steps 1.07x faster (less memory traffic) at half the memory,
            but 28^3 steps 0.89x slower (``BENCHMARKS.md``), so the bundle sets 64.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 256,
        hidden_features: int = 324,
        checkpoint: bool = False,
        checkpoint_min_size: int = 0,
    ) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.checkpoint_min_size = checkpoint_min_size
        self.min_size = 27
        self.full_resolution = nn.ModuleList(
            [nn.Conv3d(in_channels, 32, 3, padding=1), Bottleneck3D(32), Bottleneck3D(32)]
        )
        self.pool = nn.MaxPool3d(kernel_size=3, stride=3, padding=0)
        self.conv4 = _conv_bn_relu(32, 64)
        self.conv5 = _conv_bn_relu(64, 128)
        self.conv6 = _conv_bn_relu(128, 256)
        self.head = nn.Sequential(
            nn.Linear(256, hidden_features, bias=False),
            nn.BatchNorm1d(hidden_features),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_features, out_channels),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Convolutional trunk: the (B, 256, d, h, w) map before global pooling."""
        if x.dim() != 5:
            raise ValueError(f"SiamEncoder3D expects a (B, C, D, H, W) tensor, got shape {x.shape}.")
        if min(x.shape[2:]) < self.min_size:
            raise ValueError(
                f"SiamEncoder3D needs at least {self.min_size} voxels per spatial axis (three 3x3x3 max-pools with "
                f"stride 3), got input shape {x.shape}."
            )
        recompute = self.checkpoint and min(x.shape[2:]) >= self.checkpoint_min_size
        if recompute and self.training and torch.is_grad_enabled() and not torch.jit.is_scripting():
            x = self._full_resolution_checkpointed(x)
        else:
            for layer in self.full_resolution:
                x = layer(x)
        x = self.conv4(self.pool(x))
        x = self.conv5(self.pool(x))
        return self.conv6(self.pool(x))

    @torch.jit.unused
    def _full_resolution_checkpointed(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.full_resolution:
            x = checkpoint(layer, x, use_reentrant=False)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool3d(self.features(x), 1), 1))
