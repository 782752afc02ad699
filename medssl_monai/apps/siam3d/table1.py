"""Table 1 of Li et al., MICCAI 2021 from feature files: radiomics and SSL embeddings fused, evaluated with the
protocol of :func:`~medssl_monai.evaluation.run_protocol`, plus the supervised baseline, the Fig. 2 correlation
density and the Supplementary Table 3 batch-composition diagnostic. The bundle's ``evaluate.json`` calls
:func:`evaluate_feature_tables` after pre-training, embedding and radiomics extraction.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...evaluation import align_tables, jsonable, load_embedding_csv, plot_correlation_density, run_protocol
from ...imbalance import batch_ratio_diagnostic
from ...utils import atomic_write_text

__all__ = ["TABLE1_FEATURE_SETS", "diagnostic_markdown", "evaluate_feature_tables"]

logger = logging.getLogger(__name__)

#: The rows of the paper's Table 1 (feature set -> feature tables, each standardised on its own, then concatenated).
TABLE1_FEATURE_SETS: dict[str, list[str]] = {
    "Trad. radiomics": ["radiomics"],
    "Rubik's cube": ["rubik"],
    "3DSiam": ["none"],
    "3DSiam+SE": ["se"],
    "3DSiam+RE": ["re"],
    "Trad.+3DSiam": ["radiomics", "none"],
    "Trad.+3DSiam+SE": ["radiomics", "se"],
    "Trad.+3DSiam+RE": ["radiomics", "re"],
}


def _labelled(datalist: Sequence[Mapping]) -> tuple[list[str], np.ndarray]:
    unlabelled = [str(item.get("id", i)) for i, item in enumerate(datalist) if item.get("label") is None]
    if unlabelled:
        raise ValueError(
            f"{len(unlabelled)} case(s) have no label (first: {unlabelled[:5]}); the evaluation needs a class per case "
            "(MedMNIST labels, a 'label' in the JSON datalist, or labels.csv in the image folder)."
        )
    return [str(item["id"]) for item in datalist], np.asarray([item["label"] for item in datalist])


def diagnostic_markdown(result: Mapping, source: str) -> str:
    """Supplementary Table 3 layout: minority:majority ratio of random and SE batches for each k."""

    def ratio(r: float) -> str:
        return f"1:{1 / r:.2f}" if r > 0 else "0"

    lines = [
        (
            f"SE batch composition (Li et al., Suppl. Table 3) on {source}: {result['n_batches']} candidate batches "
            f"per k; classes {result['classes']}, minority {result['minority']}, majority {result['majority']} "
            f"(data {ratio(result['data_ratio'])})."
        ),
        "",
        "| k | N = k*q | m | random batch (min:maj) | SE batch (min:maj) | minority share random | minority share SE |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['k']} | {row['N']} | {row['m']} | {ratio(row['random_ratio'])} | {ratio(row['se_ratio'])} | "
            f"{row['random_minority_share']:.3f} | {row['se_minority_share']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def evaluate_feature_tables(
    tables: Mapping[str, str | os.PathLike],
    datalist: Sequence[Mapping],
    output_dir: str | os.PathLike,
    feature_sets: Mapping[str, Sequence[str]] | None = None,
    supervised: Callable[..., Callable] | None = None,
    preprocessing: Callable[[dict], dict] | None = None,
    density: Mapping[str, str] | None = None,
    diagnostic_table: str | None = None,
    diagnostic: Mapping[str, Any] | None = None,
    positive_class: Any = "majority",
    class_names: Mapping | Sequence[str] | None = None,
    n_splits: int = 5,
    label_fractions: Sequence[float] = (1.0, 0.5),
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """Run the Table 1 protocol on feature CSVs and write every output into ``output_dir``.

    Args:
        tables: table name -> CSV ``id,[label,]f0,...`` (radiomics: :func:`~medssl_monai.radiomics.extract_to_csv`;
            embeddings: the bundle's ``inference.json``).
        datalist: the cases with ``id`` and ``label`` (labels come from here, never from the tables). Cases missing
            from a table (failed extraction) are left out of every row, so all rows use the same cases; they are
            logged and listed in ``analysis.json``.
        feature_sets: row name -> table names (default :data:`TABLE1_FEATURE_SETS`); rows whose tables are not all
            in ``tables`` are skipped with a warning.
        supervised: ``supervised(images=..., labels=...)`` returns the supervised baseline's predictor (a partial of
            :class:`~medssl_monai.evaluation.SupervisedBaseline`); ``images`` are ``preprocessing(item)["image"]`` of
            the evaluated cases. Row name "Supervised".
        density: curve name -> table name for the Fig. 2 correlation density (``correlation_density.png``).
        diagnostic_table: table whose features feed :func:`~medssl_monai.imbalance.batch_ratio_diagnostic`
            (``imbalance_diagnostic.json`` / ``.md``); ``diagnostic`` holds its keyword arguments.
        positive_class, class_names, n_splits, label_fractions, seed: see :func:`run_protocol`.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids, labels = _labelled(datalist)
    loaded = {name: load_embedding_csv(path) for name, path in tables.items()}
    present = set(ids)
    for row_ids, _, _ in loaded.values():
        present &= set(row_ids)
    excluded = [i for i in ids if i not in present]
    if excluded:
        logger.warning(
            "%d case(s) are missing from some feature table and are left out: %s", len(excluded), excluded[:10]
        )
    keep = [k for k, i in enumerate(ids) if i in present]
    ids, labels = [ids[k] for k in keep], labels[keep]
    aligned = align_tables({name: (row_ids, values) for name, (row_ids, _, values) in loaded.items()}, ids)

    rows = {}
    for row, names in (feature_sets or TABLE1_FEATURE_SETS).items():
        if all(n in aligned for n in names):
            rows[row] = [aligned[n] for n in names]
        else:
            logger.warning(
                "feature set %r skipped: table(s) %s not given.", row, [n for n in names if n not in aligned]
            )
    predictors = {}
    if supervised is not None:
        if preprocessing is None:
            raise ValueError("the supervised baseline needs `preprocessing` to turn cases into images.")
        images = [preprocessing(dict(datalist[k]))["image"] for k in keep]
        predictors["Supervised"] = supervised(images=images, labels=labels)

    records = run_protocol(
        rows,
        labels,
        extra_predictors=predictors,
        positive_class=positive_class,
        class_names=class_names,
        n_splits=n_splits,
        label_fractions=label_fractions,
        seed=seed,
        ids=ids,
        output_dir=out,
        progress=progress,
        title="Li et al., MICCAI 2021: linear SVM on fixed features, stratified k-fold cross-validation; the pooled "
        "values count each sample once, as the paper's Table 1 does",
    )
    extras: dict[str, Any] = {"excluded_cases": excluded}
    sections = []
    if density:
        summary = plot_correlation_density({c: aligned[t] for c, t in density.items()}, out / "correlation_density.png")
        extras["correlation_density"] = summary
        sections.append(
            "Pairwise Pearson correlation of feature dimensions (Li et al., Fig. 2; `correlation_density.png`):\n\n"
            "| representation | mean abs r | median abs r | constant dims |\n|---|---|---|---|\n"
            + "".join(
                f"| {c} | {s['mean_abs_r']:.3f} | {s['median_abs_r']:.3f} | {s['n_constant']} |\n"
                for c, s in summary.items()
            )
        )
    if diagnostic_table is not None:
        result = batch_ratio_diagnostic(
            aligned[diagnostic_table], labels, seed=seed, progress=progress, **dict(diagnostic or {})
        )
        extras["imbalance_diagnostic"] = result
        text = diagnostic_markdown(result, f"features of table '{diagnostic_table}'")
        atomic_write_text(out / "imbalance_diagnostic.md", text)
        sections.append(text)
    history = getattr(predictors.get("Supervised"), "history", None)
    if history:
        extras["supervised_model_selection"] = history
    atomic_write_text(out / "analysis.json", json.dumps(jsonable(extras), indent=2) + "\n")
    if sections:
        results_md = out / "results.md"
        atomic_write_text(results_md, results_md.read_text(encoding="utf-8") + "\n" + "\n".join(sections))
    return records
