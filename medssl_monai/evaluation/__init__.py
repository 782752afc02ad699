"""Evaluation of fixed representations: the protocol of Li et al., MICCAI 2021 ("Imbalance-Aware Self-Supervised
Learning for 3D Radiomic Representations", Sec. 3-4, Table 1, Fig. 2): linear SVM on standardised feature blocks,
stratified 5-fold cross-validation with full and 50% training labels, C chosen on a 20% inner hold-out; sensitivity,
specificity and AUC (binary), overall and minor-class accuracy (multi-class); Markdown/JSON reports, ROC and
feature-correlation plots.

``splits`` (folds, label fractions, hold-out), ``svm`` (the classifier), ``metrics``, ``protocol`` (the runner),
``report`` (results.json / results.md), ``plots`` (ROC, Fig. 2), ``tables`` (CSV reading and id alignment).
``knn``: KNN on frozen features (k = 200, Euclidean-uniform and cosine-weighted) of Chattopadhyay et al., ICIP 2023.
"""

from __future__ import annotations

from .fusion import TABLE1_FEATURE_SETS, diagnostic_markdown, evaluate_feature_tables
from .knn import KNN_MODES, knn_evaluate, knn_predict
from .metrics import METRIC_NAMES, classification_metrics, minority_class, positive_scores, resolve_positive_class
from .plots import correlation_coefficients, plot_correlation_density, plot_roc
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
from .splits import Split, stratified_splits
from .supervised import SupervisedBaseline
from .svm import DEFAULT_C_GRID, LinearSVMClassifier, SVMResult
from .tables import align_tables, load_embedding_csv

__all__ = [
    "DEFAULT_C_GRID",
    "KNN_MODES",
    "METRIC_NAMES",
    "PAPER_FREEZE",
    "TABLE1_FEATURE_SETS",
    "FineTuneClassifier",
    "LinearSVMClassifier",
    "Predictor",
    "RadiomicsPipeline",
    "SVMResult",
    "Split",
    "SupervisedBaseline",
    "add_weighted_f1",
    "align_tables",
    "classification_metrics",
    "correlation_coefficients",
    "diagnostic_markdown",
    "embed",
    "evaluate_feature_tables",
    "evaluate_radiomics_deep",
    "knn_evaluate",
    "knn_predict",
    "load_embedding_csv",
    "minority_class",
    "plot_correlation_density",
    "plot_label_efficiency",
    "plot_roc",
    "positive_scores",
    "resolve_positive_class",
    "results_markdown",
    "run_protocol",
    "stratified_splits",
    "summarise_folds",
    "tables_markdown",
    "write_results",
]
