"""DeepNet similarity (Wolf et al. 2024, Sec. 2.1, Eq. 3): cosine similarity of encoder outputs.

The paper uses torchvision's ResNet-50 pre-trained on ImageNet. Any ``torch.nn.Module`` mapping (B, C, H, W) to
features works here: a bundle's pre-trained encoder, or MONAI's ResNet-50 with weights the user supplies.
ImageNet weights are not downloaded by this package (and cannot be on machines without internet access).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._checks import check_stack

__all__ = ["embed", "input_channels", "pairwise_cosine"]


def input_channels(encoder: nn.Module) -> int:
    """Channels the encoder expects: ``encoder.in_channels`` if set, else that of its first conv layer, else 1."""
    c = getattr(encoder, "in_channels", None)
    if isinstance(c, int):
        return c
    for m in encoder.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return int(m.in_channels)
    return 1


@torch.no_grad()
def embed(
    images: np.ndarray, encoder: nn.Module, batch_size: int = 32, device: str | torch.device = "cpu"
) -> np.ndarray:
    """(N, D) float32 features of uint8 (N, H, W) slices: grey -> float in [0, 1], one channel, repeated to the
    encoder's channel count (:func:`input_channels`, e.g. 3 for an ImageNet ResNet); outputs are flattened."""
    x = check_stack(images, dtype=np.uint8)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    channels = input_channels(encoder)
    was_training = encoder.training
    encoder.eval()
    feats = []
    try:
        for start in range(0, len(x), batch_size):
            b = torch.from_numpy(x[start : start + batch_size]).to(device).float().div_(255.0).unsqueeze(1)
            if channels != 1:
                b = b.expand(-1, channels, -1, -1)
            out = encoder(b)
            if isinstance(out, (tuple, list)):
                out = out[-1]
            feats.append(out.reshape(len(b), -1).float().cpu())
    finally:
        encoder.train(was_training)
    return torch.cat(feats).numpy()


def pairwise_cosine(features: np.ndarray) -> np.ndarray:
    """(N, N) cosine similarity of (N, D) features, float64 (zero vectors have similarity 0 to everything)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) == 0:
        raise ValueError(f"features must have shape (N, D) with N >= 1, got {f.shape}.")
    if np.isnan(f).any():
        raise ValueError("features contain NaN.")
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    f = f / np.where(norms == 0, 1.0, norms)
    return np.clip(f @ f.T, -1.0, 1.0)
