"""Reports of the small_data_ssl bundle: ``results.json`` / ``results.md`` in the layout of Chattopadhyay et al.
(ICIP 2023) Tables 2 (KNN) and 3 ("linear" evaluation), and the batch-size ablation of their Fig. 3.

A record is one (run, evaluation) pair::

    {"method": "simclr", "dataset": "breastmnist", "batch_size": 16, "epochs": 20, "backbone": "resnet18",
     "evaluation": "knn_euclidean", "evaluation_label": "...", "split": "test",
     "metrics": {"accuracy": 0.83, "f1_weighted": 0.82}}

Tables have one row per run (method, batch size, epochs) and one column per dataset, cells ``accuracy / weighted F1`` (the paper's format);
one table per evaluation. Records of several runs (several ``results.json``) combine into one report.
"""

from __future__ import annotations

import glob
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ...evaluation import jsonable, save_figure
from ...utils import atomic_write_text

__all__ = [
    "EVALUATIONS",
    "METRICS",
    "batch_size_ablation",
    "load_records",
    "plot_batch_size_ablation",
    "small_data_markdown",
    "write_combined_report",
    "write_small_data_results",
]

#: Metric keys and their names spelled out.
METRICS: dict[str, str] = {
    "accuracy": "accuracy",
    "f1_weighted": "weighted F1 (scikit-learn f1_score, average='weighted')",
}

#: Evaluation keys, in table order, with the table captions.
EVALUATIONS: dict[str, str] = {
    "knn_euclidean": "KNN, k = 200, Euclidean distance, uniform vote (the paper's Table 2 setting)",
    "knn_cosine": "KNN, k = 200, cosine similarity, exp(s/0.1)-weighted vote (Wu et al. 2018)",
    "mlp": "Two-layer MLP on frozen features, Adam, StepLR 25/0.5, 100 epochs (the paper's Table 3 'linear' evaluation)",
    "linear": "True linear probe (one nn.Linear) on frozen features, Adam, StepLR 25/0.5, 100 epochs",
    "supervised": "Supervised from scratch, same backbone + linear head, end to end (baseline)",
}

_METHOD_ORDER = ("dcl", "dclw", "simclr", "simsiam", "vicreg", "supervised")
_METHOD_NAMES = {
    "dcl": "DCL",
    "dclw": "DCLW",
    "simclr": "SimCLR",
    "simsiam": "SimSiam",
    "vicreg": "VICReg",
    "supervised": "Supervised from scratch",
}


def _cell(records: Sequence[dict]) -> str:
    """``accuracy / weighted F1`` of one run; over several seeds ``mean +- std`` (sample std, ddof 1) of each."""
    if not records:
        return "-"
    if len(records) == 1:
        m = records[0]["metrics"]
        return f"{m['accuracy']:.3f} / {m['f1_weighted']:.3f}"
    parts = []
    for key in ("accuracy", "f1_weighted"):
        values = np.array([r["metrics"][key] for r in records], dtype=float)
        parts.append(f"{values.mean():.3f} ± {values.std(ddof=1):.3f}")
    return " / ".join(parts)


def _run(record: dict) -> tuple:
    """A record's run: (method, batch size, epochs); its seeds are repeats of one run."""
    return record["method"], record.get("batch_size"), record.get("epochs")


def _group(records: Sequence[dict], run: tuple, field: str) -> dict[str, list[dict]]:
    """The records of ``run`` by their ``field`` (dataset or evaluation), each a list over seeds."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        if _run(r) == run:
            groups.setdefault(r[field], []).append(r)
    return groups


def _check_repeats(records: Sequence[dict]) -> None:
    """Several records of one (run, dataset, evaluation) must be different seeds: anything else is a mistake in the
    list of results (the same run twice), which a mean would hide."""
    seen: dict[tuple, set] = {}
    for r in records:
        key = (*_run(r), r["dataset"], r["evaluation"])
        seeds = seen.setdefault(key, set())
        seed = r.get("seed")
        if seed is None and seeds or seed in seeds:
            raise ValueError(
                f"two results for {key[0]} (batch {key[1]}, {key[2]} epochs) on {key[3]} ({key[4]}) with the same "
                f"seed {seed!r}: pass each run's results.json once (records of several seeds are averaged)."
            )
        seeds.add(seed)


def _method_key(name: str) -> tuple[int, str]:
    return (_METHOD_ORDER.index(name) if name in _METHOD_ORDER else len(_METHOD_ORDER), name)


def _run_label(method: str, batch_size: int | None, epochs: int | None, seeds: int = 1) -> str:
    parts = (
        ([f"batch {batch_size}"] if batch_size is not None else [])
        + ([f"{epochs} epoch{'s' if epochs != 1 else ''}"] if epochs else [])
        + ([f"{seeds} seeds"] if seeds > 1 else [])
    )
    name = _METHOD_NAMES.get(method, method)
    return f"{name} ({', '.join(parts)})" if parts else name


def small_data_markdown(records: Sequence[dict], title: str = "Results", notes: Sequence[str] = ()) -> str:
    """Markdown tables in the layout of the paper's Tables 2 and 3: per evaluation, rows = method (and batch size),
    columns = dataset, cells ``accuracy / weighted F1`` on the test split."""
    out = io.StringIO()
    out.write(f"# {title}\n\n")
    for note in notes:
        out.write(f"{note}\n\n")
    _check_repeats(records)
    out.write(
        "Cells: accuracy / weighted F1 on the test split; a run of several seeds shows mean ± sample std over them.\n"
    )
    datasets = sorted({r["dataset"] for r in records})
    for key, caption in EVALUATIONS.items():
        rows = [r for r in records if r["evaluation"] == key]
        if not rows:
            continue
        out.write(f"\n## {caption}\n\n")
        out.write("| Method \\ Dataset | " + " | ".join(datasets) + " |\n")
        out.write("|---|" + "---|" * len(datasets) + "\n")
        runs = sorted(
            {_run(r) for r in rows},
            key=lambda t: (_method_key(t[0]), t[1] or 0, t[2] or 0),
        )
        for method, batch, epochs in runs:
            by_set = _group(rows, (method, batch, epochs), "dataset")
            label = _run_label(method, batch, epochs, max(len(v) for v in by_set.values()))
            out.write(f"| {label} | " + " | ".join(_cell(by_set.get(d, [])) for d in datasets) + " |\n")
    for dataset in datasets:
        out.write(_summary_table(records, dataset))
    return out.getvalue()


_SHORT = {"knn_euclidean": "KNN Euclidean", "knn_cosine": "KNN cosine", "mlp": "MLP ('linear' in the paper)",
          "linear": "linear probe", "supervised": "supervised"}  # fmt: skip


def _summary_table(records: Sequence[dict], dataset: str) -> str:
    """One table for ``dataset``: rows = runs, columns = evaluations (cells accuracy / weighted F1)."""
    rows = [r for r in records if r["dataset"] == dataset]
    keys = [k for k in EVALUATIONS if any(r["evaluation"] == k for r in rows)]
    runs = sorted(
        {_run(r) for r in rows},
        key=lambda t: (_method_key(t[0]), t[1] or 0, t[2] or 0),
    )
    lines = [f"\n## Summary: {dataset}\n", "| Run | " + " | ".join(_SHORT[k] for k in keys) + " |"]
    lines.append("|---|" + "---|" * len(keys))
    for run in runs:
        by_eval = _group(rows, run, "evaluation")
        label = _run_label(*run, max(len(v) for v in by_eval.values()))
        lines.append(f"| {label} | " + " | ".join(_cell(by_eval.get(k, [])) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def write_small_data_results(
    records: Sequence[dict], header: dict, output_dir: str | os.PathLike, title: str = "Results"
) -> dict[str, Path]:
    """Write ``results.json`` (``{"header", "records"}``) and ``results.md`` into ``output_dir``, atomically."""
    out = Path(output_dir)
    doc = jsonable({"header": {**header, "metric_names": METRICS, "evaluations": EVALUATIONS}, "records": records})
    paths = {"json": out / "results.json", "markdown": out / "results.md"}
    atomic_write_text(paths["json"], json.dumps(doc, indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths["markdown"], small_data_markdown(doc["records"], title=title))
    return paths


def load_records(sources: str | os.PathLike | Iterable[str | os.PathLike | dict]) -> list[dict]:
    """Records from ``results.json`` files (paths or glob patterns, e.g. ``"runs/*/eval/results.json"``), or records
    given directly as dicts. Raises ``FileNotFoundError`` when a path or pattern matches nothing."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    records: list[dict] = []
    for source in sources:
        if isinstance(source, dict):
            records.append(source)
            continue
        paths = sorted(glob.glob(str(source))) if any(c in str(source) for c in "*?[") else [str(source)]
        if not paths or not all(Path(p).is_file() for p in paths):
            raise FileNotFoundError(f"no results.json at '{source}'.")
        for path in paths:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            if "records" not in doc:
                raise ValueError(f"'{path}' is not a small_data_ssl results.json (no 'records').")
            records.extend(doc["records"])
    return records


def batch_size_ablation(
    records: Sequence[dict], evaluation: str = "knn_euclidean", metric: str = "accuracy", dataset: str | None = None
) -> dict[str, dict[int, float]]:
    """``{method: {batch_size: value}}`` of ``metric`` under ``evaluation`` (one dataset: ``dataset`` or the only one).

    Records of several seeds of one (method, batch size) are averaged. Raises ``ValueError`` when the records hold
    several datasets and none is chosen, a (method, batch size) pair twice with the same seed, or nothing matches."""
    rows = [r for r in records if r["evaluation"] == evaluation and r.get("batch_size") is not None]
    sets = sorted({r["dataset"] for r in rows})
    if dataset is None and len(sets) > 1:
        raise ValueError(f"records hold several datasets {sets}: pass dataset=.")
    rows = [r for r in rows if dataset is None or r["dataset"] == dataset]
    if not rows:
        raise ValueError(f"no records with evaluation {evaluation!r} and a batch size (dataset {dataset!r}).")
    _check_repeats([{**r, "epochs": None} for r in rows])
    values: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        values.setdefault(r["method"], {}).setdefault(int(r["batch_size"]), []).append(float(r["metrics"][metric]))
    table = {m: {bs: float(np.mean(v)) for bs, v in sorted(per.items())} for m, per in values.items()}
    return dict(sorted(table.items(), key=lambda kv: _method_key(kv[0])))


def plot_batch_size_ablation(
    records: Sequence[dict] | str | os.PathLike | Iterable[str],
    path: str | os.PathLike,
    evaluation: str = "knn_euclidean",
    metric: str = "accuracy",
    dataset: str | None = None,
) -> dict[str, dict[int, float]]:
    """The paper's Fig. 3: ``metric`` (in %) against batch size, one line per method, saved as the PNG ``path``.

    ``records`` are record dicts or ``results.json`` paths/patterns (:func:`load_records`). Returns the plotted
    table (:func:`batch_size_ablation`)."""
    recs = (
        load_records(records)
        if not (isinstance(records, Sequence) and records and isinstance(records[0], dict))
        else list(records)
    )
    table = batch_size_ablation(recs, evaluation, metric, dataset)
    fig = Figure(figsize=(5, 4))
    ax = fig.add_subplot(1, 1, 1)
    sizes = sorted({bs for per in table.values() for bs in per})
    for method, per in table.items():
        xs = sorted(per)
        ax.plot(xs, [100 * per[x] for x in xs], marker="o", label=_METHOD_NAMES.get(method, method))
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.set_xlabel("pre-training batch size")
    ax.set_ylabel(f"{METRICS.get(metric, metric)} (%)")
    name = dataset or next(iter({r["dataset"] for r in recs if r["evaluation"] == evaluation}), "")
    ax.set_title(f"{EVALUATIONS.get(evaluation, evaluation).split(',')[0]}: {metric} vs batch size ({name})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return table


def write_combined_report(
    results: str | os.PathLike | Iterable[str | os.PathLike],
    output_dir: str | os.PathLike,
    ablation: bool = False,
    title: str = "Results",
    ablation_evaluations: Sequence[str] = ("knn_euclidean",),
) -> dict[str, Any]:
    """Combine several runs' ``results.json`` into ``<output_dir>/results.md`` + ``results.json``, and with
    ``ablation`` the batch-size plots ``<output_dir>/batch_size_ablation_<evaluation>.png`` (accuracy; the paper's
    Fig. 3 is ``knn_euclidean``) and their values in ``batch_size_ablation.json``."""
    records = load_records(results)
    paths: dict[str, Any] = write_small_data_results(records, {"sources": jsonable(results)}, output_dir, title)
    if ablation:
        tables = {}
        for evaluation in ablation_evaluations:
            path = Path(output_dir) / f"batch_size_ablation_{evaluation}.png"
            tables[evaluation] = plot_batch_size_ablation(records, path, evaluation=evaluation)
            paths[f"ablation_{evaluation}"] = path
        paths["ablation_table"] = tables
        atomic_write_text(Path(output_dir) / "batch_size_ablation.json", json.dumps(jsonable(tables), indent=2) + "\n")
    return paths
