"""Downstream evaluation of Wolf et al. (2024, Sec. 2.4): a linear layer on the pre-trained encoder, trained alone for
ten epochs, then the whole model fine-tuned; Adam, lr 1e-4, batch 64 (Sec. 2.4). Reported: AUC, accuracy and F1
(mean +- std over runs in the paper; here also 95 % bootstrap confidence intervals of the pooled test predictions).

Also here: the organ-patch task used as our CT downstream task (:func:`organ_patch_task`, an OrganSMNIST-like
11-class problem built from a CT volume and its organ label map) and linear CKA between two encoders (Kornblith et
al., ICML 2019; the paper's Fig. 8).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from torch import nn
from torch.nn import functional as F

from medssl_monai.engines import fit

__all__ = ["bootstrap_ci", "finetune_protocol", "linear_cka", "organ_patch_task", "stage_features"]

logger = logging.getLogger(__name__)


def organ_patch_task(
    image: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[int],
    size: int = 64,
    min_pixels: int = 30,
    margin: float = 1.2,
    min_side: int = 16,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2D organ patches from a CT volume ``image`` (X, Y, Z) and its label map ``labels`` (same shape), like
    OrganSMNIST (Yang et al. 2023: organ bounding boxes of abdominal CT, resized, one class per organ).

    For every axial slice ``z`` and every label in ``classes`` covering at least ``min_pixels`` pixels of that slice:
    the square of side ``max(margin * longer bbox side, min_side)`` pixels centred on the organ's bounding box (clipped
    to the slice), from the slice mapped to 0..1 by its own min and max (as the pre-training slices), resized to
    ``size``. Returns ``images`` (N, 1, size, size) float32, ``targets`` (N,) class indices into ``classes``, and
    ``slices`` (N,) the slice of each patch (for grouped splits: neighbouring slices are near-duplicates).
    """
    if image.shape != labels.shape or image.ndim != 3:
        raise ValueError(f"image and labels must be 3D of one shape, got {image.shape} and {labels.shape}.")
    out, targets, slices = [], [], []
    for z in range(image.shape[2]):
        sl = image[..., z].astype(np.float32)
        lo, hi = float(sl.min()), float(sl.max())
        sl = (sl - lo) / (hi - lo) if hi > lo else np.zeros_like(sl)
        for c, label in enumerate(classes):
            mask = labels[..., z] == label
            if mask.sum() < min_pixels:
                continue
            xs, ys = np.nonzero(mask)
            side = max(int(np.ceil(margin * max(np.ptp(xs) + 1, np.ptp(ys) + 1))), min_side)
            cx, cy = (xs.min() + xs.max()) // 2, (ys.min() + ys.max()) // 2
            x0, y0 = max(cx - side // 2, 0), max(cy - side // 2, 0)
            crop = torch.from_numpy(sl[x0 : x0 + side, y0 : y0 + side].copy())[None, None]
            out.append(F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0])
            targets.append(c)
            slices.append(z)
    if not out:
        raise ValueError(f"no label of {list(classes)} covers {min_pixels} pixels of any slice.")
    return torch.stack(out).numpy(), np.asarray(targets), np.asarray(slices)


def bootstrap_ci(
    metric: Callable[[np.ndarray], float], n: int, rounds: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(index)`` over ``rounds`` resamples of ``n`` test cases."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        try:
            values.append(metric(rng.integers(0, n, n)))
        except ValueError:  # a resample without some class
            continue
    lo, hi = np.nanpercentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def _metrics(y: np.ndarray, prob: np.ndarray, seed: int) -> dict:
    classes = np.arange(prob.shape[1])

    def auc(idx):
        yy = y[idx]
        if len(np.unique(yy)) < 2:
            raise ValueError("one class")
        present = np.unique(yy)
        p = prob[idx][:, present]
        p = p / p.sum(1, keepdims=True)
        if len(present) == 2:
            return roc_auc_score(yy == present[1], p[:, 1])
        return roc_auc_score(yy, p, multi_class="ovr", average="macro", labels=present)

    def acc(idx):
        return float(np.mean(prob[idx].argmax(1) == y[idx]))

    def f1(idx):
        return float(f1_score(y[idx], prob[idx].argmax(1), average="macro", labels=classes, zero_division=0))

    every = np.arange(len(y))
    result = {}
    for name, fn in (("auc", auc), ("accuracy", acc), ("f1", f1)):
        result[name] = float(fn(every))
        result[f"{name}_ci"] = bootstrap_ci(fn, len(y), seed=seed)
    return result


def finetune_protocol(
    images: np.ndarray,
    targets: np.ndarray,
    groups: np.ndarray,
    build_backbone: Callable[[], nn.Module],
    feature_dim: int,
    state_dict: dict | None = None,
    linear_epochs: int = 10,
    full_epochs: int = 20,
    lr: float = 1e-4,
    batch_size: int = 64,
    n_folds: int = 5,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict:
    """Grouped stratified ``n_folds``-fold fine-tuning: for each fold a fresh backbone (``build_backbone()``, with
    ``state_dict`` loaded: the pre-trained encoder; None: from scratch) plus a linear layer; the layer alone for
    ``linear_epochs``, then everything for ``full_epochs`` (Adam, ``lr``, ``batch_size``; Wolf et al. Sec. 2.4).
    Test predictions of the folds are pooled; returns AUC (one-vs-rest macro for several classes), accuracy and
    macro F1, each with a 95 % bootstrap interval, plus the linear-phase metrics (``linear_*``).
    """
    x = torch.as_tensor(images, dtype=torch.float32)
    y = torch.as_tensor(targets, dtype=torch.long)
    n_classes = int(y.max()) + 1
    prob = {"linear": np.zeros((len(y), n_classes)), "full": np.zeros((len(y), n_classes))}
    folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    device = torch.device(device)
    for fold, (train, test) in enumerate(folds.split(np.zeros(len(y)), targets, groups)):
        torch.manual_seed(seed * 1000 + fold)
        backbone = build_backbone()
        if state_dict is not None:
            backbone.load_state_dict(state_dict)
        model = nn.Sequential(backbone, nn.Linear(feature_dim, n_classes)).to(device)
        generator = torch.Generator().manual_seed(seed * 1000 + fold)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x[train], y[train]), batch_size=batch_size, shuffle=True, generator=generator
        )
        for phase, epochs in (("linear", linear_epochs), ("full", full_epochs)):
            if epochs < 1:
                continue
            backbone.requires_grad_(phase == "full")
            # the model trains in train mode: during the linear phase the frozen encoder's BatchNorm statistics adapt
            params = [p for p in model.parameters() if p.requires_grad]
            fit(
                model,
                nn.CrossEntropyLoss(),
                loader,
                torch.optim.Adam(params, lr=lr),
                epochs,
                prepare_batch=lambda b, device=None, non_blocking=False, **_: (b[0].to(device), b[1].to(device)),
                device=device,
                description=f"fine-tuning ({phase}, fold {fold})",
            )
            model.eval()
            with torch.no_grad():
                prob[phase][test] = torch.softmax(model(x[test].to(device)), 1).cpu().numpy()
    result = {f"linear_{k}": v for k, v in _metrics(targets, prob["linear"], seed).items()} if linear_epochs else {}
    result.update(_metrics(targets, prob["full"], seed) if full_epochs else {})
    return result


@torch.no_grad()
def stage_features(backbone: nn.Module, images: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Globally average-pooled outputs of a MONAI ResNet's stem and four stages on ``images``, eval mode."""
    names = ("act", "layer1", "layer2", "layer3", "layer4")
    store: dict[str, list] = {n: [] for n in names}
    hooks = [
        getattr(backbone, n).register_forward_hook(lambda m, a, o, n=n: store[n].append(o.float().mean((2, 3))))
        for n in names
    ]
    was = backbone.training
    backbone.eval()
    try:
        for s in range(0, len(images), batch_size):
            backbone(images[s : s + batch_size])
    finally:
        for h in hooks:
            h.remove()
        backbone.train(was)
    return {n: torch.cat(v) for n, v in store.items()}


def linear_cka(a: torch.Tensor, b: torch.Tensor) -> float:
    """Linear CKA of two representations (N, D1), (N, D2) of the same N inputs (Kornblith et al., ICML 2019, Eq. 5):
    ``||B^T A||_F^2 / (||A^T A||_F ||B^T B||_F)`` on column-centred ``A``, ``B``; 1 for representations equal up to
    rotation and isotropic scaling."""
    a = (a - a.mean(0)).double()
    b = (b - b.mean(0)).double()
    num = (b.T @ a).norm() ** 2
    den = (a.T @ a).norm() * (b.T @ b).norm()
    return float(num / den) if den > 0 else float("nan")


def load_task(
    dataset_dir: str | None = None,
    organ_task: dict | None = None,
    image_size: int = 64,
    channels: int = 1,
    synthetic: dict | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``images`` (N, C, S, S) in [0, 1], ``targets`` (N,), ``groups`` (N,) of a downstream task:

    * ``organ_task={"image": CT path, "labels": label-map path, "classes": [...]}``: :func:`organ_patch_task` (groups:
      blocks of three neighbouring slices);
    * ``dataset_dir``: a labelled 2D set (MedMNIST npz such as OrganSMNIST, or class folders;
      :func:`medssl_monai.data.datalists_2d`), every split pooled for the protocol's own folds (one group per image);
    * neither: the package's synthetic 2D classes (``synthetic`` kwargs), so that the workflow runs anywhere.
    """
    from monai.transforms import Compose, EnsureTyped, Resized

    from medssl_monai.data import datalists_2d
    from medssl_monai.transforms import LoadImage2Dd

    if organ_task is not None:
        import nibabel as nib

        for key in ("image", "labels", "classes"):
            if key not in organ_task:
                raise ValueError(f"organ_task needs '{key}' (got keys {sorted(organ_task)}).")
        image = np.asarray(nib.load(organ_task["image"]).dataobj)
        labels = np.asarray(nib.load(organ_task["labels"]).dataobj).astype(np.int64)
        images, targets, slices = organ_patch_task(image, labels, organ_task["classes"], size=image_size)
        return images, targets, slices // 3
    lists = datalists_2d(dataset_dir, seed=seed, channels=channels, synthetic=synthetic)
    items = [item for split in ("train", "val", "test") for item in lists[split]]
    load = Compose(
        [
            LoadImage2Dd("image", channels=channels),
            Resized("image", spatial_size=(image_size, image_size), mode="bilinear", anti_aliasing=True),
            EnsureTyped("image", track_meta=False),
        ]
    )
    images = np.stack([np.asarray(load(dict(item))["image"], dtype=np.float32) for item in items])
    classes, targets = np.unique([item["label"] for item in items], return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"the downstream task has one class only ({classes.tolist()}); it needs at least two.")
    return images, targets, np.arange(len(items))


def run_finetune(
    output_dir: str,
    pretrained: str | None = None,
    backbone: str = "resnet18",
    in_channels: int = 1,
    seeds: Sequence[int] = (0,),
    task: dict | None = None,
    **protocol,
) -> dict:
    """Fine-tune ``pretrained`` (a backbone ``state_dict`` file, e.g. ``pretrain.json``'s ``models/model.pt``; None:
    from scratch) on the task of :func:`load_task` (``task`` kwargs) for each seed, and write ``results.json``
    (per seed and mean +- std over seeds) to ``output_dir``; ``protocol`` goes to :func:`finetune_protocol`."""
    import json
    from pathlib import Path

    from medssl_monai.networks import RESNET_FEATURES, load_weights, resnet_backbone
    from medssl_monai.utils import atomic_write_text

    task = {**(task or {})}
    images, targets, groups = load_task(**task)
    state = None
    if pretrained:
        if not Path(pretrained).is_file():
            raise FileNotFoundError(f"pretrained weights '{pretrained}' do not exist: run pretrain.json first.")
        state = load_weights(resnet_backbone(backbone, 2, in_channels), pretrained).state_dict()
    runs = []
    for seed in seeds:
        result = finetune_protocol(
            images,
            targets,
            groups,
            lambda: resnet_backbone(backbone, 2, in_channels),
            RESNET_FEATURES[backbone],
            state_dict=state,
            seed=int(seed),
            **protocol,
        )
        logger.info("seed %s: %s", seed, {k: round(v, 4) for k, v in result.items() if not k.endswith("_ci")})
        runs.append({"seed": int(seed), **result})
    summary = {}
    for key in runs[0]:
        if key != "seed" and not key.endswith("_ci"):
            values = np.array([r[key] for r in runs])
            summary[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    out = {
        "pretrained": pretrained,
        "backbone": backbone,
        "samples": len(targets),
        "classes": int(targets.max()) + 1,
        "runs": runs,
        "summary": summary,
    }
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(output_dir) / "results.json", json.dumps(out, indent=2) + "\n")
    return out
