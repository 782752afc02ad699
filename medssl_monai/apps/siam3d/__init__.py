"""3DSiam (Li et al., MICCAI 2021), the 3dsiam bundle's pipeline: the whole protocol (:func:`run_table1`), Table 1 on
feature tables (SVM fusion rows,
the supervised and Rubik's cube baselines, Fig. 2 density, Suppl. Table 3 diagnostic)."""

from .protocol import pretrain_and_embed, run_table1
from .table1 import TABLE1_FEATURE_SETS, diagnostic_markdown, evaluate_feature_tables

__all__ = [
    "TABLE1_FEATURE_SETS",
    "diagnostic_markdown",
    "evaluate_feature_tables",
    "pretrain_and_embed",
    "run_table1",
]
