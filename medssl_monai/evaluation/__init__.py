"""Evaluation of fixed representations: the protocol of Li et al., MICCAI 2021 ("Imbalance-Aware Self-Supervised
Learning for 3D Radiomic Representations", Sec. 3-4, Table 1, Fig. 2): linear SVM on standardised feature blocks,
stratified 5-fold cross-validation with full and 50% training labels, C chosen on a 20% inner hold-out; sensitivity,
specificity and AUC (binary), overall and minor-class accuracy (multi-class); Markdown/JSON reports, ROC and
feature-correlation plots.

``splits`` (folds, label fractions, hold-out), ``svm`` (the classifier), ``metrics``, ``protocol`` (the runner),
``report`` (results.json / results.md), ``plots`` (ROC, Fig. 2), ``tables`` (CSV reading and id alignment).
``knn``: KNN on frozen features (k = 200, Euclidean-uniform and cosine-weighted) of Chattopadhyay et al., ICIP 2023;
``probes`` (their two-layer MLP "linear" evaluation and a true linear probe), ``tsne``, ``health`` (collapse
measures), ``supervised`` (the supervised baseline). The per-paper pipelines built on these are in
:mod:`medssl_monai.apps`.
"""

from __future__ import annotations

from ._io import jsonable
from .health import effective_rank, representation_health, std_ratio
from .knn import KNN_MODES, knn_evaluate, knn_predict
from .metrics import METRIC_NAMES, classification_metrics, minority_class, positive_scores, resolve_positive_class
from .plots import correlation_coefficients, plot_correlation_density, plot_roc, save_figure
from .probes import PROBE_LABELS, FeatureProbe, build_probe, fit_linear_head, probe_evaluate, train_probe
from .protocol import Predictor, run_protocol, summarise_folds
from .report import fraction_label, predictions_csv, results_markdown, write_results
from .splits import Split, stratified_splits
from .supervised import SupervisedBaseline
from .svm import DEFAULT_C_GRID, LinearSVMClassifier, SVMResult
from .tables import align_tables, load_embedding_csv
from .tsne import plot_tsne, tsne_embedding

__all__ = [
    "DEFAULT_C_GRID",
    "KNN_MODES",
    "METRIC_NAMES",
    "PROBE_LABELS",
    "FeatureProbe",
    "LinearSVMClassifier",
    "Predictor",
    "SVMResult",
    "Split",
    "SupervisedBaseline",
    "align_tables",
    "build_probe",
    "classification_metrics",
    "correlation_coefficients",
    "effective_rank",
    "fit_linear_head",
    "fraction_label",
    "jsonable",
    "knn_evaluate",
    "knn_predict",
    "load_embedding_csv",
    "minority_class",
    "plot_correlation_density",
    "plot_roc",
    "plot_tsne",
    "positive_scores",
    "predictions_csv",
    "probe_evaluate",
    "representation_health",
    "resolve_positive_class",
    "results_markdown",
    "run_protocol",
    "save_figure",
    "std_ratio",
    "stratified_splits",
    "summarise_folds",
    "train_probe",
    "tsne_embedding",
    "write_results",
]
