"""Ignite engines for SSL (MONAI trainer subclasses); their handlers live in :mod:`.handlers`, one per file."""

from ..evaluation.health import effective_rank
from .evaluator import EmbeddingEvaluator
from .fit import FitTrainer, fit, plain_tensor
from .handlers import (
    BestEpoch,
    CollapseError,
    DataWaitTimer,
    EmbeddingHealth,
    EmbeddingWriter,
    EpochAverage,
    FinalModelSaver,
    HeldOutHealth,
    ImbalanceHandler,
    PreciseBatchNorm,
    ProgressBar,
    ResumableCheckpoint,
    read_run_config,
    recalibrate_batch_norm,
    subset_batch,
)
from .moco import MoCoTrainer
from .nonfinite import NonFiniteLossError, NonFiniteLossGuard
from .optim import LAMB, LARS
from .rng import RandomStates, find_randomizables
from .swav import SwAVTrainer
from .trainer import SSLTrainer

__all__ = [
    "LAMB",
    "LARS",
    "BestEpoch",
    "CollapseError",
    "DataWaitTimer",
    "EmbeddingEvaluator",
    "EmbeddingHealth",
    "EmbeddingWriter",
    "EpochAverage",
    "FinalModelSaver",
    "FitTrainer",
    "HeldOutHealth",
    "ImbalanceHandler",
    "MoCoTrainer",
    "NonFiniteLossError",
    "NonFiniteLossGuard",
    "PreciseBatchNorm",
    "ProgressBar",
    "RandomStates",
    "ResumableCheckpoint",
    "SSLTrainer",
    "SwAVTrainer",
    "effective_rank",
    "find_randomizables",
    "fit",
    "plain_tensor",
    "read_run_config",
    "recalibrate_batch_norm",
    "subset_batch",
]
