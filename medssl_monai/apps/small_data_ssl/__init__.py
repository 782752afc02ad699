"""Small-data SSL (Chattopadhyay et al., ICIP 2023), the small_data_ssl bundle's pipeline: one encoder's evaluation
(KNN, MLP and linear probes, t-SNE) and the combined report (Tables 2-3, Fig. 3 ablation)."""

from .evaluate import dataset_name, evaluate_encoder, extract_features, load_backbone, read_run_config
from .report import (
    EVALUATIONS,
    METRICS,
    batch_size_ablation,
    load_records,
    plot_batch_size_ablation,
    small_data_markdown,
    write_combined_report,
    write_small_data_results,
)

__all__ = [
    "EVALUATIONS",
    "METRICS",
    "batch_size_ablation",
    "dataset_name",
    "evaluate_encoder",
    "extract_features",
    "load_backbone",
    "load_records",
    "plot_batch_size_ablation",
    "read_run_config",
    "small_data_markdown",
    "write_combined_report",
    "write_small_data_results",
]
