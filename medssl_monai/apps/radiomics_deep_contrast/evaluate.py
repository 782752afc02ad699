"""Evaluation of Zhao & Yang (MICCAI 2021, Sec. 3.3-3.4, Tables 1-2, Fig. 2) on one labelled data set, every method on
the same stratified (patient-grouped where a patient key exists) k-fold splits of :func:`~.splits.stratified_splits`:

* **Linear classification** (Table 1): the frozen pre-trained network's embeddings (deep view, radiomics view and
  both concatenated) with a linear classifier: :class:`~.svm.LinearSVMClassifier` (standardised, C on the inner
  hold-out). The paper trains "a fully connected layer behind the generated embeddings"; a linear SVM is the same
  model family with a convex fit (no epochs to choose).
* **Tumour classification** (Table 2): the radiomics method (scaling, feature selection, linear SVM, C by inner
  hold-out), a ResNet alone from scratch, the hybrid network from scratch and the pre-trained hybrid fine-tuned
  (:class:`FineTuneClassifier`). Paper: SGD, lr 3e-3 divided by 10 at 70% of the epochs (100 epochs).
* **Label efficiency** (Fig. 2): the same with 5, 20, 50 and 100% of each fold's training labels (nested subsets, the
  test folds unchanged), plotted as weighted F1 against the label fraction.

Metrics: accuracy and weighted F1 (support-weighted mean of the per-class F1, scikit-learn ``average="weighted"``)
per test fold, mean ± sample std over folds, plus the value pooled over the test folds; the protocol's own metrics
(sensitivity, specificity, AUC, balanced accuracy ...) are kept in ``results.json``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ...engines import BestEpoch, fit
from ...evaluation import (
    LinearSVMClassifier,
    Split,
    fraction_label,
    jsonable,
    predictions_csv,
    run_protocol,
    summarise_folds,
)
from ...networks.radiomics_deep import (
    HybridClassifier,
    ImageClassifier,
    RadiomicsDeepNetwork,
    RadiomicsMLP,
    Standardize,
    deep_branch,
)
from ...utils import atomic_write_bytes, atomic_write_csv, atomic_write_text

__all__ = [
    "PAPER_FREEZE",
    "FineTuneClassifier",
    "RadiomicsPipeline",
    "add_weighted_f1",
    "embed",
    "evaluate_radiomics_deep",
    "plot_label_efficiency",
    "tables_markdown",
]

logger = logging.getLogger(__name__)

#: Parameters kept frozen when fine-tuning the pre-trained hybrid (Sec. 3.4: "the best results were obtained without
#: fine-tuning the last group of convolutions layers in ResNet-50 and the last two layers in fully connected network
#: for processing radiomics handcrafted features"): ResNet ``layer4`` and the radiomics MLP's 2nd and 3rd linear
#: layers (``mlp.layers.3`` + its BatchNorm ``.4``, and ``.6``). Prefixes of :class:`HybridClassifier` parameter names.
PAPER_FREEZE = (
    "network.image_branch.backbone.layer4.",
    "network.radiomics_branch.mlp.layers.3.",
    "network.radiomics_branch.mlp.layers.4.",
    "network.radiomics_branch.mlp.layers.6.",
)

#: Row names of the report (Tables 1-2 of the paper).
LINEAR_ROWS = {
    "Ours, both views (linear)": ("deep", "radiomics"),
    "Ours, deep view (linear)": ("deep",),
    "Ours, radiomics view (linear)": ("radiomics",),
}
RADIOMICS_ROW = "Radiomics method"
SCRATCH_ROW = "Hybrid network (scratch)"
FINETUNE_ROW = "Hybrid network (fine-tune)"


def _weighted_f1(y_true, y_pred) -> float:
    return float(f1_score(y_true, y_pred, average="weighted", zero_division=0))


def add_weighted_f1(records: list[dict]) -> list[dict]:
    """Add ``metrics["f1_weighted"]`` (per fold, mean, std, pooled) to each :func:`run_protocol` record, computed
    from its per-fold predictions. Returns the records (changed in place)."""
    for r in records:
        folds = [_weighted_f1(p["y_true"], p["y_pred"]) for p in r["predictions"]]
        entry = summarise_folds(folds)
        entry["pooled"] = _weighted_f1(
            np.concatenate([p["y_true"] for p in r["predictions"]]),
            np.concatenate([p["y_pred"] for p in r["predictions"]]),
        )
        r["metrics"]["f1_weighted"] = entry
    return records


def _cell(metric: Mapping | None) -> str:
    if metric is None or metric.get("mean") is None or not math.isfinite(metric["mean"]):
        return "n/a"
    std = metric.get("std")
    text = f"{100 * metric['mean']:.1f}"
    return text if std is None or not math.isfinite(std) else f"{text} ± {100 * std:.1f}"


def tables_markdown(records: list[dict], header: Mapping) -> str:
    """Markdown in the layout of the paper's Table 1 (linear classification), Table 2 (tumour classification, full
    labels) and the Fig. 2 label-efficiency numbers (weighted F1 per label fraction)."""
    by_key = {(r["feature_set"], r["label_fraction"]): r for r in records}
    fractions = sorted({r["label_fraction"] for r in records}, reverse=True)
    full = fractions[0]
    names = list(dict.fromkeys(r["feature_set"] for r in records))
    linear = [n for n in names if n in LINEAR_ROWS]
    others = [n for n in names if n not in LINEAR_ROWS]
    k = header["n_splits"]
    grouped = " grouped by patient," if header.get("grouped") else ""
    lines = [
        f"# Radiomics-deep feature correspondence: evaluation ({k}-fold CV,{grouped} n = {header['n_samples']})",
        "",
        f"## Table 1: linear classification on the frozen embeddings ({fraction_label(full)})",
        "",
        "| Self-supervised method | Accuracy (%) | F1 score (weighted) (%) |",
        "|---|---:|---:|",
    ]
    for n in linear:
        m = by_key[(n, full)]["metrics"]
        lines.append(f"| {n} | {_cell(m['accuracy'])} | {_cell(m['f1_weighted'])} |")
    lines += [
        "",
        f"## Table 2: tumour classification ({fraction_label(full)})",
        "",
        "| Method | Accuracy (%) | F1 score (weighted) (%) |",
        "|---|---:|---:|",
    ]
    for n in others:
        m = by_key[(n, full)]["metrics"]
        lines.append(f"| {n} | {_cell(m['accuracy'])} | {_cell(m['f1_weighted'])} |")
    lines += [
        "",
        "## Fig. 2: weighted F1 (%) against the fraction of training labels",
        "",
        "| Method | " + " | ".join(fraction_label(f) for f in fractions) + " |",
        "|---|" + "---:|" * len(fractions),
    ]
    for n in names:
        cells = [_cell(by_key[(n, f)]["metrics"]["f1_weighted"]) if (n, f) in by_key else "" for f in fractions]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += [
        "",
        (
            f"Mean ± sample standard deviation (ddof=1) over the {k} test folds, in %. Classes: "
            + ", ".join(f"{c['name']} {c['count']}" for c in header["classes"])
            + ". Linear rows: linear SVM on the standardised frozen embeddings, C by balanced accuracy on a "
            f"{header['inner_holdout']:.0%} hold-out of each fold's training part. Radiomics method: the same SVM "
            f"after keeping the {header.get('select_k')} features with the largest ANOVA F. Deep rows: "
            f"{header.get('finetune', {}).get('epochs')} epochs of SGD, the epoch with the best weighted F1 on the "
            "hold-out kept. Label fractions subsample each class of the training part (nested); the test folds never "
            f"change. Seed {header['seed']}. Pooled values, sensitivity, specificity and AUC are in results.json."
        ),
    ]
    return "\n".join(lines) + "\n"


def plot_label_efficiency(records: list[dict], path: str | os.PathLike, metric: str = "f1_weighted") -> None:
    """Fig. 2 of the paper: ``metric`` (mean ± std over folds) against the label fraction, one line per method."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name in dict.fromkeys(r["feature_set"] for r in records):
        rows = sorted((r for r in records if r["feature_set"] == name), key=lambda r: r["label_fraction"])
        x = [100 * r["label_fraction"] for r in rows]
        mean = np.array([r["metrics"][metric]["mean"] for r in rows], dtype=float) * 100
        std = np.nan_to_num(np.array([r["metrics"][metric]["std"] for r in rows], dtype=float)) * 100
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xticks([5, 20, 50, 100], labels=["5%", "20%", "50%", "100%"])
    ax.set_xlabel("training labels")
    ax.set_ylabel("weighted F1 (%)")
    ax.set_title("Label efficiency (Zhao & Yang 2021, Fig. 2)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


@torch.no_grad()
def embed(
    network: RadiomicsDeepNetwork, images: torch.Tensor, radiomics: torch.Tensor, batch_size: int = 64, device="cpu"
) -> dict[str, np.ndarray]:
    """The frozen network's L2-normalised embeddings ``{"deep", "radiomics"}`` of every case (eval mode)."""
    network = network.to(device).eval()
    out: dict[str, list] = {}
    for s in range(0, len(images), batch_size):
        res = network(images[s : s + batch_size].to(device), radiomics[s : s + batch_size].to(device))
        for key, value in res.items():
            out.setdefault(key, []).append(value.cpu())
    return {key: torch.cat(v).numpy() for key, v in out.items()}


def export_embeddings(
    items: Sequence[Mapping],
    preprocessing: Callable[[dict], dict],
    network: RadiomicsDeepNetwork,
    output_dir: str | os.PathLike,
    filename: str = "embeddings.csv",
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Path:
    """Embed every case (items with ``radiomics``, as for :func:`evaluate_radiomics_deep`) with the frozen network in
    eval mode and write ``<output_dir>/<filename>``: ``id, [label,] deep_0 .. deep_{D-1}, radiomics_0 ..``, the
    L2-normalised deep and radiomics embeddings (their concatenation is Table 1's "deep + radiomics" feature).
    Cases whose preprocessing fails are listed in ``<stem>_errors.csv`` and left out; files are written atomically."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    good, images, errors = [], [], []
    for item in tqdm(items, desc="preprocess", disable=not progress):
        try:
            images.append(torch.as_tensor(np.asarray(preprocessing(dict(item))["image"]), dtype=torch.float32))
            good.append(item)
        except Exception as err:  # noqa: BLE001 - a bad case is reported, the others finish
            errors.append((str(item.get("id")), f"{type(err).__name__}: {err}"))
    if errors:
        atomic_write_csv(out / f"{Path(filename).stem}_errors.csv", ("id", "error"), errors)
    if not good:
        raise ValueError(f"no case could be preprocessed ({len(errors)} failed; see {Path(filename).stem}_errors.csv).")
    radiomics = torch.as_tensor(np.stack([np.asarray(it["radiomics"], dtype=np.float32) for it in good]))
    emb = embed(network, torch.stack(images), radiomics, device=device)
    labelled = all(it.get("label") is not None for it in good)
    dims = {key: emb[key].shape[1] for key in ("deep", "radiomics")}
    header = ["id", *(["label"] if labelled else [])]
    header += [f"{key}_{i}" for key in ("deep", "radiomics") for i in range(dims[key])]
    rows = [
        [str(it["id"]), *([it["label"]] if labelled else []), *emb["deep"][n].tolist(), *emb["radiomics"][n].tolist()]
        for n, it in enumerate(good)
    ]
    path = out / filename
    atomic_write_csv(path, header, rows)
    logger.info("Wrote %d embeddings to %s (%d case(s) failed).", len(rows), path, len(errors))
    return path


class RadiomicsPipeline:
    """The radiomics method of Table 2 as a :data:`~.protocol.Predictor`: standardise, keep the ``select_k`` most
    discriminative features (ANOVA F on the fitting rows), linear SVM with C by the inner hold-out."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, select_k: int = 50, seed: int = 0) -> None:
        self.features, self.labels = np.asarray(features, dtype=float), np.asarray(labels)
        self.svm = LinearSVMClassifier(select_k=select_k, random_state=seed)

    def __call__(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        result = self.svm.fit_predict(self.features, self.labels, split)
        return result.y_pred, result.scores


class FineTuneClassifier:
    """A deep classifier trained on each split (a :data:`~.protocol.Predictor`): ``build(num_classes)`` returns a fresh
    model called as ``model(image, radiomics) -> logits`` (:class:`HybridClassifier`, :class:`ImageClassifier`).

    Training (Zhao & Yang, Sec. 3.2): SGD (``momentum``, ``weight_decay``), lr ``lr`` divided by 10 after
    ``decay_at`` of the epochs, cross-entropy, ``augmentation`` (a MONAI dict transform on ``{"image"}``, e.g. the
    random crop + resize back) on training batches. Parameters whose name starts with a ``freeze`` prefix are not
    updated. ``fit_standardize``: the model's :class:`Standardize` modules are fitted on the split's training rows
    (models trained from scratch; a pre-trained model keeps the scaling of its pre-training data).
    ``class_weight="balanced"`` weighs the cross-entropy by ``n_fit / (n_classes * count_c)`` of the split's fit part
    (scikit-learn's rule; the paper does not weigh its loss). The epoch with the
    best weighted F1 on ``split.val`` is the model that predicts ``split.test``.
    """

    def __init__(
        self,
        images: torch.Tensor,
        radiomics: torch.Tensor,
        labels: np.ndarray,
        build: Callable[[int], nn.Module],
        name: str = "model",
        epochs: int = 100,
        batch_size: int = 32,
        lr: float = 3e-3,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        decay_at: float = 0.7,
        freeze: Sequence[str] = (),
        fit_standardize: bool = False,
        class_weight: str | None = None,
        augmentation: Callable | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        if class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}.")
        self.class_weight = class_weight
        self.images, self.radiomics = images, radiomics
        self.labels = np.asarray(labels)
        self.classes = np.unique(self.labels)
        self.targets = torch.as_tensor(np.searchsorted(self.classes, self.labels))
        self.build, self.name = build, name
        self.epochs, self.batch_size, self.lr = int(epochs), int(batch_size), float(lr)
        self.momentum, self.weight_decay, self.decay_at = momentum, weight_decay, decay_at
        self.freeze, self.fit_standardize = tuple(freeze), fit_standardize
        self.augmentation, self.device, self.seed, self.progress = augmentation, torch.device(device), seed, progress
        self.history: list[dict] = []

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        if self.augmentation is None:
            return images
        return torch.stack([torch.as_tensor(self.augmentation({"image": x})["image"]) for x in images])

    @torch.no_grad()
    def _predict(self, model: nn.Module, index: np.ndarray) -> np.ndarray:
        model.eval()
        probs = []
        for s in range(0, len(index), 2 * self.batch_size):
            rows = torch.as_tensor(np.array(index[s : s + 2 * self.batch_size]))
            logits = model(self.images[rows].to(self.device), self.radiomics[rows].to(self.device))
            probs.append(torch.softmax(logits, dim=1).cpu())
        return torch.cat(probs).numpy()

    def __call__(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        torch.manual_seed(self.seed + split.fold)
        model = self.build(len(self.classes)).to(self.device)
        if self.fit_standardize:
            for module in model.modules():
                if isinstance(module, Standardize):
                    module.fit(self.radiomics[torch.as_tensor(np.array(split.train))].numpy())
        frozen = 0
        for pname, param in model.named_parameters():
            if any(pname.startswith(p) for p in self.freeze):
                param.requires_grad_(False)
                frozen += param.numel()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        milestone = max(1, round(self.decay_at * self.epochs))
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [milestone], gamma=0.1)
        weight = None
        if self.class_weight == "balanced":  # n_fit / (n_classes * count_c) of the split's fit part
            counts = torch.bincount(self.targets[np.array(split.fit)], minlength=len(self.classes)).float()
            weight = (len(split.fit) / (len(self.classes) * counts.clamp(min=1))).to(self.device)
        fit_rows = np.array(split.fit)
        loader = DataLoader(  # rows of the fit part; the last partial batch is dropped (BatchNorm)
            fit_rows,
            batch_size=self.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(self.seed * 1000 + split.fold),
            drop_last=len(fit_rows) > self.batch_size,
        )
        y_val = self.labels[split.val]
        start = time.perf_counter()

        def prepare(rows, device=None, non_blocking=False, **kwargs):
            rows = torch.as_tensor(rows)
            image = self._augment(self.images[rows]).to(self.device)
            return image, self.targets[rows].to(self.device), (self.radiomics[rows].to(self.device),), {}

        best = BestEpoch(
            model,
            lambda: _weighted_f1(y_val, self.classes[self._predict(model, split.val).argmax(1)]),
            name="val_f1",
            description=f"{self.name} fold {split.fold} ({split.label_fraction:g})",
            progress=self.progress,
        )
        fit(
            model,
            nn.CrossEntropyLoss(weight=weight),
            loader,
            optimizer,
            self.epochs,
            prepare_batch=prepare,
            lr_scheduler=scheduler,
            handlers=[best],
            device=self.device,
            description=f"{self.name} fine-tuning, fold {split.fold}",
        )
        best.restore()
        probs = self._predict(model, split.test)
        self.history.append(
            {
                "method": self.name,
                "fold": split.fold,
                "label_fraction": split.label_fraction,
                "best_epoch": best.best_epoch,
                "val_f1_weighted": best.best_score,
                "frozen_parameters": frozen,
                "seconds": time.perf_counter() - start,
            }
        )
        return self.classes[probs.argmax(1)], probs


def _groups(items: Sequence[Mapping], group_keys: Sequence[str]) -> tuple[np.ndarray | None, str | None]:
    for key in group_keys:
        if all(item.get(key) is not None for item in items):
            return np.asarray([str(item[key]) for item in items]), key
    return None, None


def evaluate_radiomics_deep(
    items: Sequence[Mapping],
    preprocessing: Callable[[dict], dict],
    network: RadiomicsDeepNetwork,
    output_dir: str | os.PathLike,
    *,
    backbone: str = "resnet50",
    in_channels: int = 10,
    hidden_features: Sequence[int] = (512, 256),
    embedding_dim: int = 128,
    augmentation: Callable | None = None,
    finetune_epochs: int = 100,
    batch_size: int = 32,
    lr: float = 3e-3,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    class_weight: str | None = None,
    freeze: Sequence[str] = PAPER_FREEZE,
    select_k: int = 50,
    methods: Sequence[str] | None = None,
    label_fractions: Sequence[float] = (1.0, 0.5, 0.2, 0.05),
    n_splits: int = 5,
    group_keys: Sequence[str] = ("patient", "group"),
    class_names: Mapping | Sequence[str] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> list[dict]:
    """Run the evaluation above and write ``results.json``, ``results.md`` (Tables 1-2, Fig. 2 numbers),
    ``predictions.csv``, ``label_efficiency.png`` and ``analysis.json`` (per-split fine-tuning history, timings) into
    ``output_dir``.

    Args:
        items: labelled cases with ``radiomics`` (raw feature vector, :func:`~medssl_monai.radiomics.attach_radiomics`)
            and ``label``; an item key in ``group_keys`` (all items having it) groups the folds by patient.
        preprocessing: a dict transform giving each case's deep-view input ``image`` (e.g. the 2.5D stack).
        network: the pre-trained :class:`RadiomicsDeepNetwork` (weights loaded); not modified.
        backbone, in_channels, hidden_features, embedding_dim: architecture of the from-scratch models (the same as
            the pre-trained one).
        methods: the rows to run, by name (default all): the linear rows, "Radiomics method", "ResNet",
            "Hybrid network (scratch)", "Hybrid network (fine-tune)".
        Other arguments: see :class:`FineTuneClassifier`, :class:`RadiomicsPipeline` and :func:`run_protocol`.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    unlabelled = [str(it.get("id")) for it in items if it.get("label") is None]
    if unlabelled:
        raise ValueError(f"{len(unlabelled)} case(s) have no label (first: {unlabelled[:5]}): evaluation needs labels.")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    prepared = [preprocessing(dict(item)) for item in tqdm(items, desc="preprocess", disable=not progress)]
    images = torch.stack([torch.as_tensor(np.asarray(p["image"]), dtype=torch.float32) for p in prepared])
    radiomics = torch.as_tensor(np.stack([np.asarray(it["radiomics"], dtype=np.float32) for it in items]))
    labels = np.asarray([it["label"] for it in items])
    ids = [str(it["id"]) for it in items]
    groups, group_key = _groups(items, group_keys)
    timings["preprocess_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    emb = embed(network, images, radiomics, device=device)
    timings["embed_s"] = time.perf_counter() - t0
    resnet_name = {"resnet18": "ResNet-18", "resnet50": "ResNet-50"}.get(backbone, backbone)
    wanted = set(methods) if methods is not None else None

    def use(name: str) -> bool:
        return wanted is None or name in wanted or (name == resnet_name and "ResNet" in wanted)

    feature_sets = {row: [emb[k] for k in keys] for row, keys in LINEAR_ROWS.items() if use(row)}
    n_features = radiomics.shape[1]

    def hybrid(num_classes: int) -> nn.Module:
        net = RadiomicsDeepNetwork(
            deep_branch(backbone, in_channels, embedding_dim),
            RadiomicsMLP(n_features, embedding_dim, hidden_features),
        )
        return HybridClassifier(net, num_classes, embedding_dim)

    def finetuned(num_classes: int) -> nn.Module:
        return HybridClassifier(copy.deepcopy(network), num_classes, embedding_dim)

    def resnet(num_classes: int) -> nn.Module:
        return ImageClassifier(backbone, in_channels, num_classes)

    common = {
        "epochs": finetune_epochs,
        "batch_size": batch_size,
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "class_weight": class_weight,
        "augmentation": augmentation,
        "device": device,
        "seed": seed,
        "progress": progress,
    }
    predictors: dict[str, Callable] = {}
    if use(RADIOMICS_ROW):
        predictors[RADIOMICS_ROW] = RadiomicsPipeline(radiomics.numpy(), labels, select_k, seed)
    if use(resnet_name):
        predictors[resnet_name] = FineTuneClassifier(images, radiomics, labels, resnet, resnet_name, **common)
    if use(SCRATCH_ROW):
        predictors[SCRATCH_ROW] = FineTuneClassifier(
            images, radiomics, labels, hybrid, SCRATCH_ROW, fit_standardize=True, **common
        )
    if use(FINETUNE_ROW):
        predictors[FINETUNE_ROW] = FineTuneClassifier(
            images, radiomics, labels, finetuned, FINETUNE_ROW, freeze=freeze, **common
        )
    timed = {name: _timed(fn, name, timings) for name, fn in predictors.items()}

    t0 = time.perf_counter()
    records = run_protocol(
        feature_sets,
        labels,
        extra_predictors=timed,
        positive_class="majority",
        class_names=class_names,
        n_splits=n_splits,
        label_fractions=label_fractions,
        seed=seed,
        ids=ids,
        groups=groups,
        progress=progress,
    )
    timings["protocol_s"] = time.perf_counter() - t0
    add_weighted_f1(records)

    classes, counts = np.unique(labels, return_counts=True)
    header: dict[str, Any] = {
        "protocol": "Zhao & Yang, MICCAI 2021: linear classification (Table 1), tumour classification (Table 2), "
        "label efficiency (Fig. 2) on the same stratified k-fold splits",
        "n_samples": len(labels),
        "classes": [
            {"value": c, "name": str(c if class_names is None else _name(class_names, c, i)), "count": int(k)}
            for i, (c, k) in enumerate(zip(classes.tolist(), counts.tolist()))
        ],
        "n_splits": n_splits,
        "grouped": group_key is not None,
        "group_key": group_key,
        "label_fractions": sorted({r["label_fraction"] for r in records}, reverse=True),
        "inner_holdout": 0.2,
        "seed": seed,
        "select_k": select_k,
        "radiomics_features": n_features,
        "backbone": backbone,
        "in_channels": in_channels,
        "finetune": {
            "epochs": finetune_epochs,
            "batch_size": batch_size,
            "optimizer": "SGD",
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "class_weight": class_weight,
            "lr_decay": "x0.1 at 70% of the epochs",
            "frozen_prefixes": list(freeze),
            "model_selection": "epoch with the best weighted F1 on the inner hold-out",
        },
        "metrics": "accuracy and f1_weighted (Table 1-2 of the paper); the rest as in run_protocol",
        "std": "sample standard deviation over folds (ddof=1)",
        "linear_rows": {row: list(keys) for row, keys in LINEAR_ROWS.items() if row in feature_sets},
        "extra_predictors": list(predictors),
    }
    lean = [{k: v for k, v in r.items() if k != "predictions"} for r in records]
    document = jsonable({"header": header, "records": lean})
    atomic_write_text(out / "results.json", json.dumps(document, indent=2, allow_nan=False) + "\n")
    atomic_write_text(out / "results.md", tables_markdown(lean, document["header"]))
    atomic_write_text(out / "predictions.csv", predictions_csv(records, ids))
    plot_label_efficiency(records, out / "label_efficiency.png")
    history = [h for p in predictors.values() for h in getattr(p, "history", [])]
    atomic_write_text(
        out / "analysis.json",
        json.dumps(jsonable({"timings": timings, "finetune_history": history}), indent=2) + "\n",
    )
    return records


def _name(class_names: Mapping | Sequence[str], value: Any, position: int) -> str:
    return str(class_names[value] if isinstance(class_names, Mapping) else class_names[position])


def _timed(fn: Callable, name: str, timings: dict[str, float]) -> Callable:
    def run(split: Split):
        start = time.perf_counter()
        try:
            return fn(split)
        finally:
            key = f"{name}_s"
            timings[key] = timings.get(key, 0.0) + time.perf_counter() - start

    return run
