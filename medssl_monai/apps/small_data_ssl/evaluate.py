"""Evaluation of one pre-trained 2D encoder in the protocol of Chattopadhyay et al. (ICIP 2023, Sec. 3.2): frozen
features of the train and test splits, KNN (k = 200, both settings of :mod:`.knn`), the paper's two-layer MLP
"linear" evaluation and a true linear probe (:mod:`.probes`), accuracy and weighted F1, a t-SNE of the test
embeddings (:mod:`.tsne`), optionally the supervised-from-scratch baseline with the same backbone
(:class:`~.supervised.SupervisedBaseline`); written as ``results.json`` / ``results.md`` (:mod:`.small_data_report`).

KNN and probes are fitted on the train split and scored on the test split; the val split is used only by the
supervised baseline (epoch selection).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import nn

from ...engines import read_run_config
from ...evaluation import KNN_MODES, PROBE_LABELS, Split, knn_evaluate, plot_tsne, probe_evaluate
from ...networks import load_weights
from ...utils import atomic_write_bytes
from .report import write_small_data_results

__all__ = ["dataset_name", "evaluate_encoder", "extract_features", "load_backbone", "read_run_config"]

#: the encoder loader of this pipeline's commands (kept under its earlier name): :func:`medssl_monai.networks.load_weights`
load_backbone = load_weights

logger = logging.getLogger(__name__)


def dataset_name(dataset_dir: str | os.PathLike | None) -> str:
    """A short name for reports: ``"synthetic"`` for None; MedMNIST npz ``BreastMNIST__x.npz`` (or its folder) ->
    ``"breastmnist"``; a class-folder tree -> its folder name."""
    if dataset_dir is None:
        return "synthetic"
    path = Path(dataset_dir)
    npz = [path] if path.suffix == ".npz" else sorted(path.glob("*.npz")) if path.is_dir() else []
    if len(npz) == 1:
        return npz[0].stem.split("_")[0].lower()
    return path.name


@torch.no_grad()
def extract_features(
    network: nn.Module,
    items: Sequence[dict],
    transform: Callable[[dict], dict],
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Frozen features ``(N, D)`` (network in eval mode) and labels ``(N,)`` of ``items`` after ``transform``
    (loading and resizing, no augmentation)."""
    if not items:
        raise ValueError("no items to extract features from.")
    network.eval().to(device)
    feats, labels = [], []
    for start in range(0, len(items), batch_size):
        batch = [transform(dict(item)) for item in items[start : start + batch_size]]
        x = torch.stack([torch.as_tensor(b["image"]).float() for b in batch]).to(device)
        feats.append(network(x).float().cpu())
        labels.extend(int(b["label"]) for b in batch)
    return torch.cat(feats).numpy(), np.asarray(labels)


def _metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_weighted": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
    }


def _save_features(path: Path, features: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    buffer = io.BytesIO()
    arrays = {f"{s}_{k}": a for s, (f, y) in features.items() for k, a in (("features", f), ("labels", y))}
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def evaluate_encoder(
    ckpt: str | os.PathLike,
    network: nn.Module,
    datalists: Mapping[str, Sequence[dict]],
    transform: Callable[[dict], dict],
    output_dir: str | os.PathLike,
    run_info: Mapping[str, Any] | None = None,
    k: int = 200,
    probe: Mapping[str, Any] | None = None,
    probes: Sequence[str] = ("mlp", "linear"),
    tsne: bool = True,
    supervised: Callable[..., Callable[[Split], tuple[np.ndarray, np.ndarray]]] | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    seed: int = 0,
) -> list[dict]:
    """Evaluate the encoder ``ckpt`` loaded into ``network``; write ``results.json``, ``results.md``,
    ``features.npz`` and ``tsne.png`` into ``output_dir``; return the records.

    Args:
        datalists: ``{"train", "val", "test"}`` labelled items (:func:`~medssl_monai.data.datalists_2d`).
        transform: loading without augmentation (the train config's ``train#loading``).
        run_info: ``method``, ``dataset``, ``batch_size``, ``epochs``, ``backbone`` put in every record.
        k: KNN neighbours (the paper: 200; clipped to the train size).
        probe: :func:`~.probes.train_probe` keyword arguments (epochs, lr, batch_size, step_size, gamma ...).
        supervised: a factory ``supervised(images=..., labels=...)`` returning a predictor of a
            :class:`~.splits.Split` (``SupervisedBaseline`` as a partial), or None to skip the baseline.
    """
    missing = [s for s in ("train", "val", "test") if not datalists.get(s)]
    if missing:
        raise ValueError(f"datalists miss the split(s) {missing}: need non-empty train, val and test.")
    out = Path(output_dir)
    load_weights(network, ckpt)
    info = {
        "method": "?",
        "dataset": "?",
        "batch_size": None,
        "epochs": None,
        "backbone": None,
        **dict(run_info or {}),
    }
    feats = {
        s: extract_features(network, datalists[s], transform, batch_size, device) for s in ("train", "val", "test")
    }
    _save_features(out / "features.npz", feats)
    (x_tr, y_tr), (x_te, y_te) = feats["train"], feats["test"]
    base = {**info, "split": "test", "n_train": len(y_tr), "n_test": len(y_te), "ckpt": str(ckpt)}
    records = []
    for mode in ("euclidean", "cosine"):
        res = knn_evaluate(x_tr, y_tr, x_te, y_te, k=k, mode=mode)
        records.append(
            {**base, "evaluation": f"knn_{mode}", "evaluation_label": KNN_MODES[mode], "k": res["k"],
             "metrics": {"accuracy": res["accuracy"], "f1_weighted": res["f1_weighted"]}}
        )  # fmt: skip
        logger.info("%s: accuracy %.3f, weighted F1 %.3f", KNN_MODES[mode], res["accuracy"], res["f1_weighted"])
    for kind in probes:
        res = probe_evaluate(x_tr, y_tr, x_te, y_te, kind=kind, seed=seed, **dict(probe or {}))
        records.append(
            {**base, "evaluation": kind, "evaluation_label": PROBE_LABELS[kind], "probe": dict(probe or {}),
             "metrics": {"accuracy": res["accuracy"], "f1_weighted": res["f1_weighted"]}}
        )  # fmt: skip
        logger.info("%s: accuracy %.3f, weighted F1 %.3f", PROBE_LABELS[kind], res["accuracy"], res["f1_weighted"])
    if tsne:
        plot_tsne(x_te, y_te, out / "tsne.png", title=f"t-SNE, {info['method']} test embeddings ({info['dataset']})")
    if supervised is not None:
        records.append(_supervised_record(supervised, datalists, transform, base, info))
    header = {"ckpt": str(ckpt), "run": info, "k": k, "probe": dict(probe or {}), "seed": seed}
    write_small_data_results(records, header, out, title=f"small_data_ssl evaluation: {info['method']}")
    return records


def _supervised_record(factory: Callable, datalists: Mapping, transform: Callable, base: dict, info: Mapping) -> dict:
    """Train the supervised baseline on train (epoch chosen on val) and score it on test."""
    images, labels, parts = [], [], {}
    for split in ("train", "val", "test"):
        start = len(images)
        for item in datalists[split]:
            d = transform(dict(item))
            images.append(torch.as_tensor(d["image"]).float())
            labels.append(int(d["label"]))
        parts[split] = np.arange(start, len(images))
    predictor = factory(images=images, labels=labels)
    split = Split(fold=0, label_fraction=1.0, fit=parts["train"], val=parts["val"], test=parts["test"])
    y_pred, _ = predictor(split)
    y_true = np.asarray(labels)[parts["test"]]
    metrics = _metrics(y_true, np.asarray(y_pred))
    logger.info("supervised from scratch: accuracy %.3f, weighted F1 %.3f", metrics["accuracy"], metrics["f1_weighted"])
    history = getattr(predictor, "history", [])
    return {
        **base,
        "method": "supervised",
        "batch_size": None,
        "epochs": getattr(predictor, "epochs", None),
        "backbone": info.get("backbone"),
        "evaluation": "supervised",
        "evaluation_label": "Supervised from scratch (same backbone + linear head, weighted CE, epoch chosen on val)",
        "best_epoch": history[-1]["best_epoch"] if history else None,
        "metrics": metrics,
    }
