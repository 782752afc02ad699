"""Ignite engines for SSL (MONAI trainer subclasses) and their handlers."""

from .handlers import (
    DataWaitTimer,
    EmbeddingHealth,
    EpochAverage,
    EmbeddingWriter,
    ProgressBar,
    ResumableCheckpoint,
    effective_rank,
)
from .evaluator import EmbeddingEvaluator
from .trainer import SSLTrainer

__all__ = [
    "SSLTrainer",
    "EmbeddingEvaluator",
    "DataWaitTimer",
    "EmbeddingHealth",
    "EpochAverage",
    "EmbeddingWriter",
    "ProgressBar",
    "ResumableCheckpoint",
    "effective_rank",
]
