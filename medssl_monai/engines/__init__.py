"""Ignite engines for SSL (MONAI trainer subclasses) and their handlers."""

from .evaluator import EmbeddingEvaluator
from .handlers import (
    DataWaitTimer,
    EmbeddingHealth,
    EmbeddingWriter,
    EpochAverage,
    ProgressBar,
    ResumableCheckpoint,
)
from .health import CollapseError, HeldOutHealth
from ..evaluation.health import effective_rank
from .imbalance import ImbalanceHandler, subset_batch
from .radiomics_deep import RadiomicsDeepTrainer
from .precise_bn import PreciseBatchNorm, recalibrate_batch_norm
from .nonfinite import NonFiniteLossError, NonFiniteLossGuard, raise_if_nonfinite
from .trainer import SSLTrainer

__all__ = [
    "CollapseError",
    "DataWaitTimer",
    "EmbeddingEvaluator",
    "EmbeddingHealth",
    "EmbeddingWriter",
    "EpochAverage",
    "HeldOutHealth",
    "ImbalanceHandler",
    "NonFiniteLossError",
    "NonFiniteLossGuard",
    "PreciseBatchNorm",
    "ProgressBar",
    "RadiomicsDeepTrainer",
    "ResumableCheckpoint",
    "SSLTrainer",
    "effective_rank",
    "raise_if_nonfinite",
    "recalibrate_batch_norm",
    "subset_batch",
]
