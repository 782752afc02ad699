"""Reports of :func:`~.protocol.run_protocol`: ``results.json``, ``results.md`` in the layout of Li et al., MICCAI 2021,
Table 1 (rows: feature sets then other methods; columns: metrics per label fraction) and ``predictions.csv``."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

from ._io import atomic_write_text, jsonable
from .metrics import METRIC_NAMES

__all__ = ["TABLE_METRICS", "fraction_label", "predictions_csv", "results_markdown", "write_results"]

#: Metrics shown in the Markdown tables (Table 1 of the paper, plus AUC for the binary task).
TABLE_METRICS = {"binary": ("sensitivity", "specificity", "auc"), "multi-class": ("accuracy", "minor_class_accuracy")}


def fraction_label(fraction: float) -> str:
    """``"full labels"`` for 1, ``"50% labels"`` for 0.5."""
    return "full labels" if fraction >= 1.0 else f"{fraction * 100:g}% labels"


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f}"


def _table(records: list[dict], metrics: Sequence[str], fractions: list[float], cell) -> list[str]:
    names = list(dict.fromkeys(r["feature_set"] for r in records))
    by_key = {(r["feature_set"], r["label_fraction"]): r for r in records}
    columns = [(f, m) for f in fractions for m in metrics]
    head = [f"{METRIC_NAMES[m]} ({fraction_label(f)})" for f, m in columns]
    lines = ["| Method | " + " | ".join(head) + " |", "|---|" + "---:|" * len(columns)]
    best = {}
    for f, m in columns:
        shown = [_pct(cell(by_key[(n, f)]["metrics"][m])[0]) for n in names if (n, f) in by_key]
        values = [float(v) for v in shown if v != "n/a"]
        best[(f, m)] = f"{max(values):.1f}" if len(names) > 1 and values else None
    for n in names:
        cells = []
        for f, m in columns:
            if (n, f) not in by_key:
                cells.append("")
                continue
            value, text = cell(by_key[(n, f)]["metrics"][m])
            cells.append(f"**{text}**" if _pct(value) == best[(f, m)] else text)
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


def _mean_std(metric: dict) -> tuple[float, str]:
    mean, std = metric["mean"], metric["std"]
    text = _pct(mean) if std is None or not math.isfinite(std) else f"{_pct(mean)} ± {_pct(std)}"
    return mean, text


def _pooled(metric: dict) -> tuple[float, str]:
    return metric.get("pooled"), _pct(metric.get("pooled"))


def _class_text(header: dict) -> str:
    return ", ".join(f"{c['name']} {c['count']}" for c in header["classes"])


def results_markdown(records: list[dict], header: dict) -> str:
    """Markdown report: the Table 1 layout with mean ± std over folds (in %), the same table pooled over the test
    folds (the paper's counting) and the C chosen in each fold."""
    task = header["task"]
    metrics = TABLE_METRICS[task]
    fractions = header["label_fractions"]
    k = header["n_splits"]
    lines = [f"# Linear evaluation: stratified {k}-fold cross-validation", ""]
    lines += _table(records, metrics, fractions, _mean_std)
    lines.append("")
    caption = (
        f"Mean ± sample standard deviation (ddof=1) over the {k} test folds, in %. "
        f"n = {header['n_samples']} ({_class_text(header)}). "
    )
    if task == "binary":
        pos = header["positive_class"]
        others = [c["name"] for c in header["classes"] if c["value"] != pos["value"]]
        role = ""
        if header.get("minor_class"):
            role = " (majority class)" if header["minor_class"]["value"] != pos["value"] else " (minority class)"
        caption += (
            f"Positive class: {pos['name']}{role}; sensitivity is the recall of {pos['name']}, specificity the "
            f"recall of {others[0]}, AUC from the {pos['name']} decision score. "
        )
    else:
        caption += f"Minor-class accuracy is the recall of {header['minor_class']['name']}. "
    grid = ", ".join(f"{c:g}" for c in header["C_grid"])
    caption += (
        f"Linear SVM ({header['classifier']}); C from {{{grid}}} by balanced accuracy on a stratified "
        f"{header['inner_holdout']:.0%} hold-out of each fold's training part, then refitted on the whole training "
        f"part. Label fractions subsample each class of the training part (nested). Seed {header['seed']}."
    )
    if header.get("extra_predictors"):
        caption += f" {', '.join(header['extra_predictors'])}: evaluated on the same splits."
    lines += [caption, "", f"## Pooled over the {k} test folds", ""]
    lines += _table(records, metrics, fractions, _pooled)
    lines += [
        "",
        (
            "Each sample counted once over the test folds (in %), the counting of the paper's Table 1 (e.g. "
            "specificity = correctly classified minor-class cases / all of them). A pooled AUC ranks scores of "
            "different fold models together."
        ),
        "",
        "## C chosen per fold",
        "",
        "| Method | " + " | ".join(fraction_label(f) for f in fractions) + " |",
        "|---|" + "---|" * len(fractions),
    ]
    by_key = {(r["feature_set"], r["label_fraction"]): r for r in records}
    for name in dict.fromkeys(r["feature_set"] for r in records):
        cells = []
        for f in fractions:
            chosen = by_key[(name, f)]["chosen_C"] if (name, f) in by_key else []
            cells.append(", ".join("-" if c is None else f"{c:g}" for c in chosen))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def predictions_csv(records: list[dict], ids: Sequence[str] | None) -> str:
    classes = records[0]["classes"] if records else []
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    id_col = ["id"] if ids is not None else []
    writer.writerow(
        ["feature_set", "label_fraction", "fold", "index", *id_col, "y_true", "y_pred"]
        + [f"score_{c}" for c in classes]
    )
    for r in records:
        for p in r["predictions"]:
            scores = p["scores"] or [[""] * len(classes)] * len(p["test_index"])
            for i, t, q, s in zip(p["test_index"], p["y_true"], p["y_pred"], scores):
                case = [ids[i]] if ids is not None else []
                writer.writerow([r["feature_set"], r["label_fraction"], p["fold"], i, *case, t, q, *s])
    return buffer.getvalue()


def write_results(
    records: list[dict], header: dict, output_dir: str | os.PathLike, ids: Sequence[str] | None = None
) -> dict[str, Path]:
    """Write ``results.json`` (``{"header", "records"}``, records without their per-sample predictions; NaN as
    null), ``results.md`` (:func:`results_markdown`) and ``predictions.csv`` (one row per test prediction) into
    ``output_dir``, each to a temporary file renamed into place. Returns the paths."""
    out = Path(output_dir)
    lean = [{k: v for k, v in r.items() if k != "predictions"} for r in records]
    paths = {"json": out / "results.json", "markdown": out / "results.md", "predictions": out / "predictions.csv"}
    document = jsonable({"header": header, "records": lean})
    atomic_write_text(paths["json"], json.dumps(document, indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths["markdown"], results_markdown(lean, jsonable(header)))
    atomic_write_text(paths["predictions"], predictions_csv(records, ids))
    return paths
