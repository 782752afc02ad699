"""The supervised baseline of Li et al., MICCAI 2021 (Table 1, last row): "the same encoder backbone with a weighted
cross-entropy loss", trained from scratch on each split of the protocol.

Choices the paper leaves open (documented in the bundle's docs/README.md): a linear head on the encoder's 256-d
output; class weights ``n_fit / (n_classes * count_c)`` of the split's ``fit`` part (scikit-learn's "balanced"
rule); Adam with the paper's SSL weight decay 1e-4 and lr 1e-3; the bundle's SSL augmentation on training batches;
the epoch with the best balanced accuracy on the split's ``val`` part (20% of the training part, as the SVM uses it
to choose C) is the model evaluated on ``test``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from sklearn.metrics import balanced_accuracy_score
from torch import nn

from ..engines.fit import fit
from ..engines.handlers.best_epoch import BestEpoch
from .splits import Split

__all__ = ["SupervisedBaseline"]


class SupervisedBaseline:
    """A :data:`~medssl_monai.evaluation.Predictor` for :func:`~medssl_monai.evaluation.run_protocol`.

    Args:
        images: preprocessed inputs, one ``(C, *spatial)`` array or tensor per case (rows aligned with ``labels``).
        labels: class of each case.
        encoder: the backbone (e.g. :class:`~medssl_monai.networks.SiamEncoder3D`); every split trains a deep copy
            of it, so all splits start from the same initial weights.
        feature_dim: the encoder's output size.
        augmentation: a MONAI dict transform on ``{"image"}`` for training batches, or None.
        epochs, batch_size, lr, weight_decay: training budget and Adam settings.
        num_workers: loader processes for the augmentation of training batches.
        memory_format: ``"channels_last_3d"`` runs the network in that layout (faster on CPU, see BENCHMARKS.md).
        autocast_dtype: ``"bfloat16"`` trains under autocast (:class:`~medssl_monai.engines.FitTrainer`).
    """

    def __init__(
        self,
        images: Sequence[np.ndarray | torch.Tensor],
        labels: Sequence[int],
        encoder: nn.Module,
        feature_dim: int = 256,
        augmentation: Callable | None = None,
        epochs: int = 10,
        batch_size: int = 16,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        device: str | torch.device = "cpu",
        num_workers: int = 0,
        memory_format: str | None = None,
        autocast_dtype: str | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels.")
        self.images = [torch.as_tensor(np.asarray(x), dtype=torch.float32) for x in images]
        self.labels = np.asarray(labels).reshape(-1)
        self.classes = np.unique(self.labels)
        self.encoder, self.feature_dim, self.augmentation = encoder, feature_dim, augmentation
        self.epochs, self.batch_size, self.lr, self.weight_decay = int(epochs), int(batch_size), lr, weight_decay
        self.device, self.num_workers, self.seed, self.progress = torch.device(device), num_workers, seed, progress
        self.memory_format = getattr(torch, memory_format) if memory_format else torch.contiguous_format
        self.autocast_dtype = autocast_dtype
        self.history: list[dict] = []

    def _data(self, index: np.ndarray, train: bool) -> Dataset:
        targets = np.searchsorted(self.classes, self.labels[index])
        items = [{"image": self.images[i], "label": int(t)} for i, t in zip(index, targets)]
        return Dataset(items, transform=self.augmentation if train else None)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(x).to(self.device).contiguous(memory_format=self.memory_format)

    @torch.no_grad()
    def _predict(self, network: nn.Module, index: np.ndarray) -> np.ndarray:
        network.eval()
        loader = DataLoader(self._data(index, train=False), batch_size=self.batch_size, shuffle=False)
        probs = [torch.softmax(network(self._input(b["image"])), dim=1).cpu() for b in loader]
        return torch.cat(probs).numpy()

    def _prepare_batch(self, batchdata: dict, device, non_blocking: bool = False, **kwargs):
        """MONAI ``prepare_batch``: image in the network's memory format, label as a class-index tensor."""
        return self._input(batchdata["image"]), torch.as_tensor(batchdata["label"]).to(self.device)

    def __call__(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        fit_targets = np.searchsorted(self.classes, self.labels[split.fit])
        counts = np.bincount(fit_targets, minlength=len(self.classes))
        if (counts == 0).any():
            missing = self.classes[counts == 0].tolist()
            raise ValueError(f"fold {split.fold}: class(es) {missing} missing from the training part.")
        class_weight = torch.as_tensor(len(fit_targets) / (len(self.classes) * counts), dtype=torch.float32)
        torch.manual_seed(self.seed + split.fold)
        network = nn.Sequential(copy.deepcopy(self.encoder), nn.Linear(self.feature_dim, len(self.classes)))
        network = network.to(self.device).to(memory_format=self.memory_format)
        optimizer = torch.optim.Adam(network.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loader = DataLoader(
            self._data(split.fit, train=True),
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=len(split.fit) > self.batch_size,  # BatchNorm needs > 1 sample per batch
            num_workers=self.num_workers,
        )
        y_val = self.labels[split.val]
        best = BestEpoch(
            network,
            lambda: balanced_accuracy_score(y_val, self.classes[self._predict(network, split.val).argmax(1)]),
            name="val_bacc",
            description=f"supervised fold {split.fold} ({split.label_fraction:g})",
            progress=self.progress,
        )
        fit(
            network,
            nn.CrossEntropyLoss(weight=class_weight.to(self.device)),
            loader,
            optimizer,
            self.epochs,
            prepare_batch=self._prepare_batch,
            handlers=[best],
            device=self.device,
            autocast_dtype=self.autocast_dtype,
            description=f"supervised baseline, fold {split.fold}",
        )
        best.restore()
        probs = self._predict(network, split.test)
        self.history.append(
            {
                "fold": split.fold,
                "label_fraction": split.label_fraction,
                "best_epoch": best.best_epoch,
                "val_balanced_accuracy": best.best_score,
            }
        )
        return self.classes[probs.argmax(1)], probs
