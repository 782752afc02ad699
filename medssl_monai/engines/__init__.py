"""Ignite engines for SSL (MONAI trainer subclasses); their handlers live in :mod:`.handlers`, one per file."""

from .evaluator import EmbeddingEvaluator
from ..evaluation.health import effective_rank
from .handlers import (
    CollapseError,
    DataWaitTimer,
    EmbeddingHealth,
    EmbeddingWriter,
    EpochAverage,
    HeldOutHealth,
    ImbalanceHandler,
    PreciseBatchNorm,
    ProgressBar,
    ResumableCheckpoint,
    recalibrate_batch_norm,
    subset_batch,
)
from .radiomics_deep import RadiomicsDeepTrainer
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
