"""Ignite handlers, one per file, each attachable from a bundle config (``attach(engine)``)."""

from .best_epoch import BestEpoch
from .data_wait_timer import DataWaitTimer
from .embedding_health import EmbeddingHealth
from .embedding_writer import EmbeddingWriter
from .epoch_average import EpochAverage
from .final_model import FinalModelSaver
from .held_out_health import CollapseError, HeldOutHealth
from .imbalance import ImbalanceHandler, subset_batch
from .precise_bn import PreciseBatchNorm, recalibrate_batch_norm
from .progress_bar import ProgressBar
from .resumable_checkpoint import ResumableCheckpoint, read_run_config

__all__ = [
    "BestEpoch",
    "CollapseError",
    "DataWaitTimer",
    "EmbeddingHealth",
    "EmbeddingWriter",
    "EpochAverage",
    "FinalModelSaver",
    "HeldOutHealth",
    "ImbalanceHandler",
    "PreciseBatchNorm",
    "ProgressBar",
    "ResumableCheckpoint",
    "read_run_config",
    "recalibrate_batch_norm",
    "subset_batch",
]
