"""Wolf et al. (2024), "Less is More": pre-training on reduced CT slices (SwAV, MoCo v2, SparK) and the fine-tuning
protocol. The reduction itself is the library package :mod:`medssl_monai.reduction`."""

from .finetune import (
    bootstrap_ci,
    finetune_protocol,
    linear_cka,
    load_task,
    organ_patch_task,
    run_finetune,
    stage_features,
)
from .pretrain import (
    PRETRAIN_METHODS,
    PretrainMethod,
    build_pretraining,
    default_optimizer,
    pretraining_trainer,
    reduction_dir_or_demo,
)

__all__ = [
    "PRETRAIN_METHODS",
    "PretrainMethod",
    "bootstrap_ci",
    "build_pretraining",
    "default_optimizer",
    "finetune_protocol",
    "linear_cka",
    "load_task",
    "organ_patch_task",
    "pretraining_trainer",
    "reduction_dir_or_demo",
    "run_finetune",
    "stage_features",
]
