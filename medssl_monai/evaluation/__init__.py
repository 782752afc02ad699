"""Evaluation of fixed representations: the protocol of Li et al., MICCAI 2021 ("Imbalance-Aware Self-Supervised
Learning for 3D Radiomic Representations", Sec. 3-4, Table 1, Fig. 2): linear SVM on standardised feature blocks,
stratified 5-fold cross-validation with full and 50% training labels, C chosen on a 20% inner hold-out; sensitivity,
specificity and AUC (binary), overall and minor-class accuracy (multi-class); Markdown/JSON reports, ROC and
feature-correlation plots.

``splits`` (folds, label fractions, hold-out), ``svm`` (the classifier), ``metrics``, ``protocol`` (the runner),
``report`` (results.json / results.md), ``plots`` (ROC, Fig. 2), ``tables`` (CSV reading and id alignment).
``knn``: KNN on frozen features (k = 200, Euclidean-uniform and cosine-weighted) of Chattopadhyay et al., ICIP 2023;
``probes`` (their two-layer MLP "linear" evaluation and a true linear probe), ``tsne``, ``small_data`` (one encoder's
evaluation), ``small_data_report`` (Tables 2-3 layout, batch-size ablation of Fig. 3).
"""

from __future__ import annotations

from .fusion import TABLE1_FEATURE_SETS, diagnostic_markdown, evaluate_feature_tables
from .health import effective_rank, representation_health, std_ratio
from .knn import KNN_MODES, knn_evaluate, knn_predict
from .metrics import METRIC_NAMES, classification_metrics, minority_class, positive_scores, resolve_positive_class
from .plots import correlation_coefficients, plot_correlation_density, plot_roc
from .probes import PROBE_LABELS, FeatureProbe, build_probe, probe_evaluate, train_probe
from .protocol import Predictor, run_protocol, summarise_folds
from .radiomics_deep import (
    PAPER_FREEZE,
    FineTuneClassifier,
    RadiomicsPipeline,
    add_weighted_f1,
    embed,
    evaluate_radiomics_deep,
    plot_label_efficiency,
    tables_markdown,
)
from .report import results_markdown, write_results
from .small_data import dataset_name, evaluate_encoder, extract_features, load_backbone, read_run_config
from .small_data_report import (
    EVALUATIONS,
    batch_size_ablation,
    load_records,
    plot_batch_size_ablation,
    small_data_markdown,
    write_combined_report,
    write_small_data_results,
)
from .splits import Split, stratified_splits
from .supervised import SupervisedBaseline
from .svm import DEFAULT_C_GRID, LinearSVMClassifier, SVMResult
from .tables import align_tables, load_embedding_csv
from .tsne import plot_tsne, tsne_embedding

__all__ = [
    "DEFAULT_C_GRID",
    "EVALUATIONS",
    "KNN_MODES",
    "METRIC_NAMES",
    "PAPER_FREEZE",
    "PROBE_LABELS",
    "TABLE1_FEATURE_SETS",
    "FeatureProbe",
    "FineTuneClassifier",
    "LinearSVMClassifier",
    "Predictor",
    "RadiomicsPipeline",
    "SVMResult",
    "Split",
    "SupervisedBaseline",
    "add_weighted_f1",
    "align_tables",
    "batch_size_ablation",
    "build_probe",
    "classification_metrics",
    "correlation_coefficients",
    "dataset_name",
    "effective_rank",
    "diagnostic_markdown",
    "embed",
    "evaluate_encoder",
    "evaluate_feature_tables",
    "evaluate_radiomics_deep",
    "extract_features",
    "knn_evaluate",
    "knn_predict",
    "load_backbone",
    "load_embedding_csv",
    "load_records",
    "minority_class",
    "plot_batch_size_ablation",
    "plot_correlation_density",
    "plot_label_efficiency",
    "plot_roc",
    "plot_tsne",
    "positive_scores",
    "probe_evaluate",
    "read_run_config",
    "representation_health",
    "resolve_positive_class",
    "results_markdown",
    "run_protocol",
    "small_data_markdown",
    "std_ratio",
    "stratified_splits",
    "summarise_folds",
    "tables_markdown",
    "train_probe",
    "tsne_embedding",
    "write_combined_report",
    "write_results",
    "write_small_data_results",
]
