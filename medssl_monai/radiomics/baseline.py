"""Check our extraction against PyRadiomics' own reference values (the baselines of its test suite).

PyRadiomics ships test cases (``brain1``, ``brain2``, ``breast1``, ``lung1``, ``lung2``: ``<case>_image.nrrd`` +
``<case>_label.nrrd``) and ``baseline/baseline_<class>.csv``: one row per feature, one column per case and variant
(``<case>``, ``<case>_2d``, ``<case>_FBN`` ...). The ``diagnostics_Configuration_Settings`` and
``diagnostics_Configuration_EnabledImageTypes`` rows (``general_info_GeneralSettings`` /
``general_info_EnabledImageTypes`` in older baselines) record the settings of each column, as PyRadiomics'
``tests/testUtils.py`` reads them. Only the plain ``<case>`` columns are compared here.
"""

from __future__ import annotations

import ast
import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .extract import extract_features

__all__ = [
    "BASELINE_CASES",
    "BASELINE_CLASSES",
    "BaselineComparison",
    "FeatureAgreement",
    "compare_with_baseline",
    "read_baseline",
]

#: The feature classes whose baselines have plain ``<case>`` columns (``shape2D`` has only ``<case>_shape2D``).
BASELINE_CLASSES = ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm", "shape")
BASELINE_CASES = ("brain1", "brain2", "breast1", "lung1", "lung2")

_SETTINGS_ROWS = ("diagnostics_Configuration_Settings", "general_info_GeneralSettings")
_IMAGE_TYPE_ROWS = ("diagnostics_Configuration_EnabledImageTypes", "general_info_EnabledImageTypes")


@dataclass(frozen=True)
class FeatureAgreement:
    """One feature of one case: the reference value, ours, ``|ours - ref| / |ref|`` (absolute difference where the
    reference is 0) and whether they agree (``|ours - ref| <= atol + rtol * |ref|``, or both NaN)."""

    case: str
    feature_class: str
    feature: str
    reference: float
    value: float
    rel_diff: float
    match: bool


@dataclass
class BaselineComparison:
    """Records of every compared feature, cases that failed to extract, and the tolerance used."""

    records: list[FeatureAgreement]
    failures: list[tuple[str, str]] = field(default_factory=list)
    rtol: float = 0.0
    atol: float = 0.0

    def summary(self) -> dict[str, tuple[int, int]]:
        """``{feature_class: (compared, matched)}`` over all cases."""
        out: dict[str, list[int]] = {}
        for r in self.records:
            counts = out.setdefault(r.feature_class, [0, 0])
            counts[0] += 1
            counts[1] += int(r.match)
        return {k: (v[0], v[1]) for k, v in out.items()}

    def mismatches(self) -> list[FeatureAgreement]:
        return [r for r in self.records if not r.match]

    @property
    def all_match(self) -> bool:
        return not self.failures and bool(self.records) and all(r.match for r in self.records)


def read_baseline(
    baseline_dir: str | os.PathLike, feature_class: str
) -> tuple[dict[str, dict], dict[str, dict], dict[str, dict[str, float]]]:
    """Parse ``baseline_<feature_class>.csv``: per plain case column, its settings dict, its enabled image types and
    its reference values ``{feature name: value}`` (feature rows only; empty cells skipped)."""
    path = Path(baseline_dir) / f"baseline_{feature_class}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"baseline file '{path}' does not exist.")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    cases = [c for c in header[1:] if c in BASELINE_CASES]
    settings: dict[str, dict] = {}
    image_types: dict[str, dict] = {}
    values: dict[str, dict[str, float]] = {c: {} for c in cases}
    for row in rows[1:]:
        name = row[0]
        for case in cases:
            cell = row[header.index(case)]
            if name in _SETTINGS_ROWS and cell:
                settings[case] = ast.literal_eval(cell)
            elif name in _IMAGE_TYPE_ROWS and cell:
                image_types[case] = ast.literal_eval(cell)
            elif not name.startswith(("diagnostics_", "general_info_")) and cell != "":
                values[case][name] = float(cell)
    missing = [c for c in cases if c not in settings]
    if missing:
        raise ValueError(f"'{path}': no settings row ({' or '.join(_SETTINGS_ROWS)}) for case(s) {missing}.")
    return settings, {c: image_types.get(c, {"Original": {}}) for c in cases}, values


def compare_with_baseline(
    baseline_dir: str | os.PathLike,
    cases: Sequence[str] | None = None,
    classes: Iterable[str] = BASELINE_CLASSES,
    rtol: float = 1e-6,
    atol: float = 0.0,
    data_dir: str | os.PathLike | None = None,
    **extract_kwargs,
) -> BaselineComparison:
    """Extract the test cases with the settings recorded in the baselines and compare with the reference values.

    ``data_dir`` (default: the parent of ``baseline_dir``) holds ``<case>_image.nrrd`` / ``<case>_label.nrrd``.
    Classes whose recorded settings are equal are extracted together, through :func:`extract_features` (so
    ``cache_dir``, ``executor``, ``max_workers`` ... in ``extract_kwargs`` apply). A reference feature we do not
    compute counts as a mismatch (value NaN).
    """
    baseline_dir = Path(baseline_dir)
    data_dir = baseline_dir.parent if data_dir is None else Path(data_dir)
    extract_kwargs.setdefault("progress", False)
    groups: dict[str, dict] = {}  # one extraction per distinct (settings, image types)
    references: dict[tuple[str, str], dict[str, float]] = {}
    for feature_class in classes:
        settings, image_types, values = read_baseline(baseline_dir, feature_class)
        for case in cases or list(values):
            if case not in values:
                raise ValueError(f"baseline_{feature_class}.csv has no column '{case}'.")
            params = {"setting": settings[case], "imageType": image_types[case]}
            group = groups.setdefault(repr(params), {"params": params, "classes": set(), "cases": set()})
            group["classes"].add(feature_class)
            group["cases"].add(case)
            references[(case, feature_class)] = values[case]

    records: list[FeatureAgreement] = []
    failures: list[tuple[str, str]] = []
    for group in groups.values():
        params = {**group["params"], "featureClass": {c: None for c in sorted(group["classes"])}}
        datalist = [
            {"id": c, "image": str(data_dir / f"{c}_image.nrrd"), "mask": str(data_dir / f"{c}_label.nrrd")}
            for c in sorted(group["cases"])
        ]
        result = extract_features(datalist, params, **extract_kwargs)
        failures.extend(f for f in result.failures if f not in failures)
        ours = {case: dict(zip(result.names, result.values[i])) for i, case in enumerate(result.ids)}
        for case in sorted(group["cases"]):
            if case not in ours:
                continue
            for feature_class in sorted(group["classes"]):
                for name, ref in references.get((case, feature_class), {}).items():
                    value = float(ours[case].get(name, math.nan))
                    diff = abs(value - ref)
                    rel = diff / abs(ref) if ref != 0 else diff
                    match = (math.isnan(value) and math.isnan(ref)) or diff <= atol + rtol * abs(ref)
                    records.append(FeatureAgreement(case, feature_class, name, ref, value, rel, bool(match)))
    return BaselineComparison(records, failures, rtol, atol)
