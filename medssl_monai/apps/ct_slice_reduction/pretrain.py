"""The pre-training methods of Wolf et al. (2024, Sec. 2.2 and App. A-C) on 2D CT slices, each composed from a
backbone, the library's heads / networks, its loss and its compute-loss hook:

========  ======================================  =====================================  ==========================
method    network                                 loss                                   engine (hook)
========  ======================================  =====================================  ==========================
swav      :class:`~medssl_monai.networks.SwAVNetwork`  :class:`~medssl_monai.losses.SwAVLoss`     :class:`~medssl_monai.engines.SwAVTrainer`
moco      :class:`~medssl_monai.networks.MoCoNetwork`  :class:`~medssl_monai.losses.MoCoLoss`     :class:`~medssl_monai.engines.MoCoTrainer`
spark     :class:`~medssl_monai.networks.SparKNetwork` :class:`~medssl_monai.losses.MaskedReconstructionLoss` :class:`~medssl_monai.engines.SSLTrainer`
========  ======================================  =====================================  ==========================

Views (paper values scaled to ``image_size``, the side of the training images; the paper's is 224 from 512):

* SwAV (Table 8, "exactly as in the original SwAV paper"): 2 global crops of ``image_size`` (area 0.90-1.0) and 6 local
  crops of ``image_size * 96 / 224`` (area 0.10-0.33), colour jitter p 0.8 (0.4, 0.4; saturation and hue do not exist
  in grey images), Gaussian blur p 0.5, flips.
* MoCo v2 (App. B): 2 crops of ``image_size`` (area 0.2-1.0, MoCo v2's), the same jitter, blur and flips.
* SparK (Table 10): one view, random crop (area 0.67-1.0, SparK's ``input_size`` crop) and horizontal flip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from monai.transforms import Compose, EnsureTyped, RandFlipd
from torch import nn

from medssl_monai.engines import LAMB, LARS, MoCoTrainer, SSLTrainer, SwAVTrainer
from medssl_monai.losses import MaskedReconstructionLoss, MoCoLoss, SwAVLoss
from medssl_monai.networks import MoCoNetwork, SparKNetwork, SwAVNetwork
from medssl_monai.transforms import MultiViewd, RandResizedCropd, ssl_augment_2d

__all__ = [
    "PRETRAIN_METHODS",
    "PretrainMethod",
    "build_pretraining",
    "default_optimizer",
    "pretraining_trainer",
    "reduction_dir_or_demo",
]

PRETRAIN_METHODS = ("swav", "moco", "spark")
_TRAINERS = {"swav": SwAVTrainer, "moco": MoCoTrainer, "spark": SSLTrainer}


@dataclass
class PretrainMethod:
    """What ``pretrain.json`` needs: ``network`` (trained, checkpointed), ``loss``, ``views`` (a transform of
    ``{"image"}`` to the ``view_keys``), and the trainer's ``trainer_kwargs`` (``view_keys``, ``loss_input_keys``,
    method options)."""

    name: str
    network: nn.Module
    loss: nn.Module
    views: Compose
    view_keys: tuple[str, ...]
    trainer_kwargs: dict = field(default_factory=dict)


def _blur(size: int) -> tuple[float, float]:
    return (0.1, max(0.2, 2.0 * size / 224))  # SimCLR's 0.1-2.0 pixels at 224 px, scaled


def build_pretraining(
    name: str,
    backbone: nn.Module,
    feature_dim: int,
    image_size: int = 224,
    in_channels: int = 1,
    num_prototypes: int = 500,
    swav_queue_length: int = 0,
    freeze_prototypes_iterations: int = 313,
    queue_start_epoch: int = 15,
    moco_queue_length: int = 65536,
    moco_momentum: float = 0.999,
    mask_ratio: float = 0.6,
    seed: int = 0,
) -> PretrainMethod:
    """Compose pre-training method ``name`` (one of :data:`PRETRAIN_METHODS`) on ``backbone`` (module docstring);
    defaults are the paper's (Tables 8-10) where it gives them, else the original method's."""
    key = str(name).lower()
    if key not in PRETRAIN_METHODS:
        raise ValueError(f"unknown pre-training method {name!r}; choose one of {PRETRAIN_METHODS}.")
    size = int(image_size)
    if key == "swav":
        small = max(32, round(size * 96 / 224))
        global_views = ssl_augment_2d(size, scale=(0.90, 1.0), blur_sigma=_blur(size))
        local_views = ssl_augment_2d(small, scale=(0.10, 0.33), blur_sigma=_blur(small))
        keys = tuple(f"view{i}" for i in range(1, 9))
        views = Compose(
            [
                MultiViewd(global_views, view_keys=keys[:2], delete_source=False),
                MultiViewd(local_views, view_keys=keys[2:]),
                EnsureTyped(keys, track_meta=False),
            ]
        )
        network = SwAVNetwork(backbone, feature_dim, num_prototypes=num_prototypes, queue_length=swav_queue_length)
        kwargs = {"freeze_prototypes_iterations": freeze_prototypes_iterations, "queue_start_epoch": queue_start_epoch}
        return PretrainMethod(key, network, SwAVLoss(), views, keys, kwargs)
    if key == "moco":
        augment = ssl_augment_2d(size, scale=(0.2, 1.0), vertical_flip_prob=0.0, blur_sigma=_blur(size))
        keys = ("view1", "view2")
        views = Compose([MultiViewd(augment, view_keys=keys), EnsureTyped(keys, track_meta=False)])
        network = MoCoNetwork(backbone, feature_dim, queue_length=moco_queue_length, momentum=moco_momentum, seed=seed)
        return PretrainMethod(key, network, MoCoLoss(), views, keys)
    augment = Compose(
        [RandResizedCropd("image", size, scale=(0.67, 1.0)), RandFlipd("image", prob=0.5, spatial_axis=1)]
    )
    keys = ("view1",)
    views = Compose([MultiViewd(augment, view_keys=keys), EnsureTyped(keys, track_meta=False)])
    network = SparKNetwork(backbone, in_channels=in_channels, mask_ratio=mask_ratio)
    patch = network.downsample
    return PretrainMethod(
        key,
        network,
        MaskedReconstructionLoss(patch_size=patch),
        views,
        keys,
        {"loss_input_keys": ("reconstruction", "image", "visible")},
    )


def pretraining_trainer(method: PretrainMethod, **kwargs) -> SSLTrainer:
    """The method's engine (:class:`SwAVTrainer`, :class:`MoCoTrainer` or :class:`SSLTrainer`) with the method's
    views and options; ``kwargs`` are the trainer's other arguments (device, data loader, optimiser, handlers...)."""
    return _TRAINERS[method.name](
        network=kwargs.pop("network", method.network),
        loss_function=kwargs.pop("loss_function", method.loss),
        view_keys=method.view_keys,
        **method.trainer_kwargs,
        **kwargs,
    )


def default_optimizer(method: str, params, lr: float | None = None, weight_decay: float | None = None):
    """The paper's optimiser of ``method`` (Wolf et al., Tables 8-10): SwAV LARS (lr 0.15, weight decay 1e-6), MoCo v2
    SGD (lr 1e-4, momentum 0.9, no weight decay given), SparK LAMB (peak lr 2.5e-5). ``lr`` / ``weight_decay``
    override the paper's values (None keeps them)."""
    key = str(method).lower()
    if key == "swav":
        return LARS(params, lr=lr or 0.15, weight_decay=1e-6 if weight_decay is None else weight_decay)
    if key == "moco":
        return torch.optim.SGD(params, lr=lr or 1e-4, momentum=0.9, weight_decay=weight_decay or 0.0)
    if key == "spark":
        return LAMB(params, lr=lr or 2.5e-5, weight_decay=0.04 if weight_decay is None else weight_decay)
    raise ValueError(f"unknown pre-training method {method!r}; choose one of {PRETRAIN_METHODS}.")


def reduction_dir_or_demo(reduction_dir: str | None, output_dir: str, synthetic: dict) -> str:
    """``reduction_dir`` when given; else the demo: write synthetic CT volumes (``synthetic`` kwargs of
    :func:`~medssl_monai.data.write_synthetic_ct_folder`) to ``<output_dir>/synthetic_data`` and reduce them with HASH
    at the paper's threshold into ``<output_dir>/reduction``, whose folder is returned."""
    if reduction_dir:
        return str(reduction_dir)
    from medssl_monai.data import write_synthetic_ct_folder
    from medssl_monai.reduction.run import reduce_dataset

    data = write_synthetic_ct_folder(os.path.join(output_dir, "synthetic_data"), **synthetic)
    out = os.path.join(output_dir, "reduction")
    return str(reduce_dataset(data, out, method="hash", max_workers=0, progress=False)["output_dir"])
