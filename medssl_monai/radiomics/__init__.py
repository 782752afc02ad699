"""Traditional radiomics with PyRadiomics: parameter files, per-case cache, parallel map over an Executor.

:func:`extract_features` turns a datalist (``id``, ``image``, optional ``mask`` and ``label``) into a feature table,
driven by a PyRadiomics parameter file such as ``bundles/3dsiam/configs/radiomics.yaml``; :func:`extract_to_csv`
writes it as ``id, [label,] features`` (the layout of the embedding CSVs) for the bundles' evaluation.
:func:`compare_with_baseline` checks the extraction against PyRadiomics' reference values.
"""

from .baseline import (
    BASELINE_CASES,
    BASELINE_CLASSES,
    BaselineComparison,
    FeatureAgreement,
    compare_with_baseline,
    read_baseline,
)
from .cache import FeatureCache, case_key
from .extract import RadiomicsResult, extract_case, extract_features, extract_to_csv
from .images import prepare_case, read_source, source_digest
from .params import load_params, params_digest, params_json
from .table import read_feature_csv, write_feature_csv
from .views import attach_radiomics, radiomics_params

__all__ = [
    "BASELINE_CASES",
    "BASELINE_CLASSES",
    "BaselineComparison",
    "FeatureAgreement",
    "FeatureCache",
    "RadiomicsResult",
    "attach_radiomics",
    "case_key",
    "compare_with_baseline",
    "extract_case",
    "extract_features",
    "extract_to_csv",
    "load_params",
    "params_digest",
    "params_json",
    "prepare_case",
    "radiomics_params",
    "read_baseline",
    "read_feature_csv",
    "read_source",
    "source_digest",
    "write_feature_csv",
]
