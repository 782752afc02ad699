"""The Rubik's cube network (Zhuang et al., MICCAI 2019): one shared encoder per cube, two heads on their features."""

from __future__ import annotations

import torch
from torch import nn

from .heads import MLPHead

__all__ = ["RubikCubeNetwork"]


class RubikCubeNetwork(nn.Module):
    """Siamese ``M``-branch network of the Rubik's cube pretext task: encode each cube with one shared backbone,
    concatenate the ``M`` features, predict the permutation (K classes) and every cube's 180-degree turn (2M logits).

    Zhuang et al. (MICCAI 2019, Sec. 2): "the M cubes are fed into a siamese network with M branches sharing
    weights"; the concatenated features go to fully connected layers for the two tasks. Each head here is
    ``Linear-BN-ReLU-Linear`` with ``hidden_features`` units (our choice of the FC layers' width).

    ``forward(x)`` takes the cubes stacked on the channel axis, ``(B, M * C, s, s, s)``
    (:class:`~medssl_monai.transforms.RubikCubed`), and returns ``{"embedding": (B, D) mean of the cube features,
    "permutation_logits": (B, K), "rotation_logits": (B, 2M)}``. The backbone is the model that downstream tasks use
    (the bundle saves it alone, like 3DSiam's encoder).

    Args:
        backbone: cube encoder, ``(N, C, s, s, s) -> (N, feature_dim)`` (3DSiam's :class:`SiamEncoder3D`: Li et al.
            compare with the Rubik's cube task "with a same encoder").
        feature_dim: the backbone's output size.
        n_permutations: K.
        n_cubes: M (8 for 2x2x2).
        in_channels: C, image channels per cube.
        hidden_features: width of each head's hidden layer.
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int = 256,
        n_permutations: int = 100,
        n_cubes: int = 8,
        in_channels: int = 1,
        hidden_features: int = 512,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.n_cubes = n_cubes
        self.in_channels = in_channels
        width = n_cubes * feature_dim
        self.permutation_head = MLPHead(
            [(width, hidden_features, True, True), (hidden_features, n_permutations, False, False)]
        )
        self.rotation_head = MLPHead(
            [(width, hidden_features, True, True), (hidden_features, 2 * n_cubes, False, False)]
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        expected = self.n_cubes * self.in_channels
        if x.ndim != 5 or x.shape[1] != expected:
            raise ValueError(
                f"RubikCubeNetwork expects (B, {expected}, s, s, s) (M={self.n_cubes} cubes x C={self.in_channels} "
                f"channels stacked by RubikCubed), got {tuple(x.shape)}."
            )
        b = x.shape[0]
        cubes = x.reshape(b * self.n_cubes, self.in_channels, *x.shape[2:])
        features = self.backbone(cubes).reshape(b, self.n_cubes, -1)
        joint = features.flatten(1)
        return {
            "embedding": features.mean(1),
            "permutation_logits": self.permutation_head(joint),
            "rotation_logits": self.rotation_head(joint),
        }
