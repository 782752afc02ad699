"""MONAI ResNet backbones that return pooled features, in 2D or 3D (He et al., CVPR 2016).

Chattopadhyay et al. (ICIP 2023, Sec. 3.1) pre-train "a randomly initialized ResNet50 encoder". MONAI's
:class:`monai.networks.nets.ResNet` with ``feed_forward=False`` has no classifier: its output is the globally
average-pooled last feature map, ``(B, 512)`` for ResNet-10/18/34 and ``(B, 2048)`` for ResNet-50/101/152.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from monai.networks import nets
from torch import nn

__all__ = ["RESNET_FEATURES", "load_weights", "resnet_backbone"]

RESNET_FEATURES = {
    "resnet10": 512,
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "resnet101": 2048,
    "resnet152": 2048,
}


def resnet_backbone(
    name: str = "resnet50", spatial_dims: int = 2, in_channels: int = 1, conv1_stride: int = 2, **kwargs
) -> nn.Module:
    """A randomly initialised MONAI ResNet without classifier: ``(B, C, *spatial) -> (B, RESNET_FEATURES[name])``.

    ``conv1_stride=2`` (with the default 7-wide first convolution and max-pool) is the standard ResNet stem of He et
    al. and torchvision; MONAI's own default is 1 (four times the compute of every later layer). Pass
    ``conv1_stride=1, no_max_pool=True`` for a CIFAR-style stem on very small images. Other ``kwargs`` go to MONAI.
    Grey inputs are native: ``in_channels=1``.
    """
    if name not in RESNET_FEATURES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(RESNET_FEATURES)}.")
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
    return getattr(nets, name)(
        spatial_dims=spatial_dims,
        n_input_channels=in_channels,
        conv1_t_stride=conv1_stride,
        feed_forward=False,
        **kwargs,
    )


def read_checkpoint(ckpt: str | os.PathLike, mmap: bool = False) -> Any:
    """``torch.load(ckpt, weights_only=True)`` on the CPU, with one clear error for a missing file (FileNotFoundError)
    and for a truncated, corrupt or foreign one (ValueError naming the file; torch raises anything from
    ``UnpicklingError`` to ``IndexError`` there). The package's one way to read a model file. ``mmap``: map the
    tensors instead of reading them (to look at a few shapes without loading the weights)."""
    path = Path(ckpt)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(
            f"checkpoint '{path}' cannot be read ({type(err).__name__}: {first}): it is truncated, corrupt or not a "
            "PyTorch state dict; pass a models/model.pt or checkpoints/checkpoint_epoch=N.pt written by this package."
        ) from err


def load_weights(network: nn.Module, ckpt: str | os.PathLike) -> nn.Module:
    """Load ``ckpt`` (``torch.load(weights_only=True)``) into ``network`` and return it: a state dict
    (``models/model.pt``) or a training checkpoint (``checkpoints/checkpoint_epoch=N.pt``, whose ``model`` entry is
    taken; an SSL network's ``backbone.*`` weights when ``network`` is the backbone), so any saved epoch can be used.
    A clear ``ValueError`` when the architecture differs (wrong ``--backbone``, ``--channels`` ...)."""
    state = read_checkpoint(ckpt)
    if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]  # a training checkpoint (checkpoint_epoch=N.pt): the trained network's weights
    if any(k.startswith("backbone.") for k in state):  # SSLNetwork weights: keep the backbone, drop the heads
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"checkpoint '{ckpt}' does not fit the evaluation backbone ({type(network).__name__}); use the training "
            f"run's settings (--backbone, --channels ...). {str(err).splitlines()[0]}"
        ) from err
    return network
