"""Ignite engines for SSL (MONAI trainer subclasses) and their handlers."""

from .evaluator import EmbeddingEvaluator
from .handlers import (
    DataWaitTimer,
    EmbeddingHealth,
    EmbeddingWriter,
    EpochAverage,
    ProgressBar,
    ResumableCheckpoint,
    effective_rank,
)
from .imbalance import ImbalanceHandler, subset_batch
from .radiomics_deep import RadiomicsDeepTrainer
from .trainer import SSLTrainer

__all__ = [
    "DataWaitTimer",
    "EmbeddingEvaluator",
    "EmbeddingHealth",
    "EmbeddingWriter",
    "EpochAverage",
    "ImbalanceHandler",
    "ProgressBar",
    "RadiomicsDeepTrainer",
    "ResumableCheckpoint",
    "SSLTrainer",
    "effective_rank",
    "subset_batch",
]
