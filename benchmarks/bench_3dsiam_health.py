"""What a user gets from a 3DSiam encoder on AdrenalMNIST3D: eval-mode health and a frozen linear-probe AUC, against
a randomly initialised encoder and PyRadiomics features, on the official test split (never seen in tuning).

    python benchmarks/bench_3dsiam_health.py [--ckpt bundles/3dsiam/models/model.pt ...] [--random_seeds 0 1 2]

``--ckpt`` takes encoder state dicts (``models/model.pt``) or training checkpoints (``checkpoint_epoch=N.pt``). For each
encoder: the 256-d dense8 output and the pooled conv trunk (256-d, before the dense head), both in eval mode
without augmentation, on the 298 test volumes: std ratio, effective rank, and the AUC of a logistic-regression probe
(standardised features, scikit-learn defaults, C = 1) fitted on the 1,188 train volumes. PyRadiomics: the bundle's
``radiomics.yaml`` (107 features) with the same probe. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medssl_monai.data import medmnist_datalist
from medssl_monai.evaluation import representation_health
from medssl_monai.networks import SiamEncoder3D
from medssl_monai.radiomics import extract_features
from medssl_monai.utils import shared_data_dir

REPO = Path(__file__).resolve().parents[1]


def load_split(path: Path, split: str) -> tuple[torch.Tensor, np.ndarray, list[dict]]:
    items = medmnist_datalist(path, split)
    x = torch.as_tensor(np.stack([i["image"] for i in items])).float()[:, None]
    lo, hi = x.amin((1, 2, 3, 4), keepdim=True), x.amax((1, 2, 3, 4), keepdim=True)
    x = (x - lo) / (hi - lo).clamp_min(1e-8) * 255.0  # the bundles' ScaleIntensityd(0, 255)
    return x, np.array([i["label"] for i in items]), items


@torch.no_grad()
def embed(encoder: SiamEncoder3D, x: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode (dense8 output, pooled trunk) of every volume."""
    encoder.eval()
    dense, trunk = [], []
    for s in range(0, len(x), batch):
        t = encoder.features(x[s : s + batch]).mean((2, 3, 4))
        trunk.append(t)
        dense.append(encoder.head(t))
    return torch.cat(dense), torch.cat(trunk)


def probe_auc(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> float:
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(train, y_train)
    return float(roc_auc_score(y_test, clf.predict_proba(test)[:, 1]))


def row(name: str, train: torch.Tensor, y_train, test: torch.Tensor, y_test) -> str:
    h = representation_health(test, y_test)
    auc = probe_auc(train.numpy(), y_train, test.numpy(), y_test)
    return (
        f"| {name} | {h['std_ratio']:.3f} | {h['effective_rank']:.1f} | {h['knn_balanced_accuracy']:.3f} | {auc:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(shared_data_dir() / "adrenalmnist3d" / "adrenalmnist3d.npz"))
    parser.add_argument("--ckpt", nargs="*", default=[str(REPO / "bundles" / "3dsiam" / "models" / "model.pt")])
    parser.add_argument("--random_seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--radiomics", action="store_true", help="add the PyRadiomics row (about a minute)")
    args = parser.parse_args()
    t0 = time.time()
    x_train, y_train, train_items = load_split(Path(args.data), "train")
    x_test, y_test, test_items = load_split(Path(args.data), "test")
    print("| features (eval mode, test split) | std ratio | effective rank | kNN bal. acc. (CV on test) | probe AUC |")
    print("|---|---:|---:|---:|---:|")
    encoders = [(f"random init (seed {s})", s, None) for s in args.random_seeds]
    encoders += [(Path(c).name if len(args.ckpt) == 1 else c, 0, c) for c in args.ckpt]
    for name, seed, ckpt in encoders:
        torch.manual_seed(seed)
        encoder = SiamEncoder3D()
        if ckpt:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            if "model" in state:  # a training checkpoint: the SSL network's backbone
                state = {k[len("backbone.") :]: v for k, v in state["model"].items() if k.startswith("backbone.")}
            encoder.load_state_dict(state)
        (d_tr, t_tr), (d_te, t_te) = embed(encoder, x_train), embed(encoder, x_test)
        print(row(f"{name}: dense8 (256)", d_tr, y_train, d_te, y_test), flush=True)
        print(row(f"{name}: pooled trunk (256)", t_tr, y_train, t_te, y_test), flush=True)
    if args.radiomics:
        params = REPO / "bundles" / "3dsiam" / "configs" / "radiomics.yaml"
        tr = extract_features(train_items, params, max_workers=2, progress=False)
        te = extract_features(test_items, params, max_workers=2, progress=False)
        keep = np.nanstd(tr.values, 0) > 0
        print(
            row(
                "PyRadiomics (107, constant columns dropped)",
                torch.as_tensor(tr.values[:, keep]),
                tr.labels,
                torch.as_tensor(te.values[:, keep]),
                te.labels,
            )
        )
    print(f"\n{time.time() - t0:.0f} s, torch {torch.__version__}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
