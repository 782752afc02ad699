"""What a user gets from a bundle's shipped encoder (``models/model.pt``): eval-mode health and a frozen linear probe on
real held-out data, against randomly initialised encoders of the same architecture (issue 20).

    python benchmarks/bench_shipped_models.py --bundle small_data_ssl          # BreastMNIST: train -> test
    python benchmarks/bench_shipped_models.py --bundle radiomics_deep_contrast # AdrenalMNIST3D: train -> test
    python benchmarks/bench_shipped_models.py --bundle ct_slice_reduction      # organ patches of the shared CT

small_data_ssl and radiomics_deep_contrast embed through the bundle's own ``inference.json`` (what a user runs, in
eval mode, no augmentation), once on the train split and once on the test split, and fit a logistic-regression probe
(standardised features, scikit-learn defaults) on train, scored by ROC AUC on test. ct_slice_reduction has no labelled
split of its own: the organ patches of ``ct_examples`` (the fine-tuning task of its docs, 64 px) are embedded with the
backbone and scored by macro one-vs-rest AUC of the same probe under 5-fold CV grouped by slice block. Health: std
ratio (std of the L2-normalised embedding x sqrt(D); ~1 healthy, ~0 collapsed) and effective rank, on the test
embeddings. Random encoders: seeds 0, 1, 2 (``--random_seeds``). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medssl_monai.evaluation import representation_health
from medssl_monai.utils import shared_data_dir

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # ct_pretrain_experiment: the organ classes of its task


def _probe() -> object:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))


def _read(csv_path: Path, columns: str = "f") -> tuple[np.ndarray, np.ndarray]:
    header, *rows = csv.reader(csv_path.open())
    cols = [i for i, h in enumerate(header) if h.startswith(columns) and h[len(columns) :].lstrip("_").isdigit()]
    x = np.array([[float(r[i]) for i in cols] for r in rows])
    y = np.array([int(float(r[header.index("label")])) for r in rows])
    return x, y


def _inference(bundle: str, ckpt: Path, out: Path, overrides: dict) -> Path:
    configs = REPO / "bundles" / bundle / "configs"
    wf = ConfigWorkflow(
        config_file=str(configs / "inference.json"),
        workflow_type="infer",
        logging_file=False,
        **{"ckpt": str(ckpt), "output_dir": str(out), "device": "cpu", **overrides},
    )
    wf.initialize()
    wf.run()
    wf.finalize()
    return out / "embeddings.csv"


def _random_ckpt(bundle: str, overrides: dict, seed: int, folder: Path) -> Path:
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / bundle / "configs" / "inference.json"))
    for key, value in overrides.items():
        parser[key] = value
    torch.manual_seed(seed)
    path = folder / f"random_seed{seed}.pt"
    torch.save(parser.get_parsed_content("network_def").state_dict(), path)
    return path


def _row(name: str, train: tuple, test: tuple) -> str:
    health = representation_health(torch.as_tensor(test[0]))
    clf = _probe().fit(*train)
    auc = roc_auc_score(test[1], clf.predict_proba(test[0])[:, 1])
    return f"| {name} | {health['std_ratio']:.3f} | {health['effective_rank']:.1f} | {auc:.3f} |"


def split_bundle(
    bundle: str, overrides: dict, split_key: tuple, columns: str, seeds, tmp: Path, ckpt: str | None = None
) -> list[str]:
    """Embed train and test through inference.json for the shipped (or ``ckpt``) and random encoders; one row each."""
    key, train_value, test_value = split_key
    shipped = Path(ckpt) if ckpt else REPO / "bundles" / bundle / "models" / "model.pt"
    rows = []
    encoders = [(str(ckpt) if ckpt else "shipped models/model.pt", shipped)]
    # the config's other entries may need an existing ckpt while the random network is built
    encoders += [
        (f"random init (seed {s})", _random_ckpt(bundle, {**overrides, "ckpt": str(shipped)}, s, tmp)) for s in seeds
    ]
    for name, path in encoders:
        parts = []
        for split, value in (("train", train_value), ("test", test_value)):
            out = tmp / f"{path.stem}_{split}"
            parts.append(_read(_inference(bundle, path, out, {**overrides, key: value}), columns))
        rows.append(_row(name, parts[0], parts[1]))
    return rows


def ct_bundle(seeds) -> list[str]:
    from ct_pretrain_experiment import ORGAN_CLASSES

    from medssl_monai.apps.ct_slice_reduction.finetune import load_task

    shared = shared_data_dir()
    organ_task = {
        "image": str(shared / "ct_examples/example_ct_sm.nii.gz"),
        "labels": str(shared / "ct_examples/example_seg.nii.gz"),
        "classes": ORGAN_CLASSES,
    }
    images, targets, groups = load_task(organ_task=organ_task, image_size=64)  # the fine-tuning task, 64 px
    x = torch.from_numpy(images).float()
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / "ct_slice_reduction" / "configs" / "inference.json"))
    nets = [("shipped models/model.pt", parser.get_parsed_content("network"))]  # the config's own weight loading
    for s in seeds:
        torch.manual_seed(s)
        nets.append((f"random init (seed {s})", parser.get_parsed_content("network_def", lazy=False)))
    rows = []
    for name, net in nets:
        with torch.no_grad():
            z = torch.cat([net.eval()(x[i : i + 64]) for i in range(0, len(x), 64)]).numpy()
        health = representation_health(torch.as_tensor(z))
        prob = cross_val_predict(_probe(), z, targets, groups=groups, cv=GroupKFold(5), method="predict_proba")
        auc = roc_auc_score(targets, prob, multi_class="ovr", average="macro")
        rows.append(f"| {name} | {health['std_ratio']:.3f} | {health['effective_rank']:.1f} | {auc:.3f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--bundle", required=True, choices=["small_data_ssl", "radiomics_deep_contrast", "ct_slice_reduction"]
    )
    parser.add_argument("--random_seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--radiomics_cache", default=None, help="radiomics_deep_contrast: a radiomics cache to reuse")
    parser.add_argument("--ckpt", default=None, help="another encoder than the shipped one (split bundles)")
    args = parser.parse_args()
    shared = shared_data_dir()
    with tempfile.TemporaryDirectory() as tmp:
        if args.bundle == "small_data_ssl":
            overrides = {"dataset_dir": str(shared / "breastmnist"), "backbone": "resnet18", "image_size": 28}
            rows = split_bundle(
                args.bundle, overrides, ("splits", ["train"], ["test"]), "f", args.random_seeds, Path(tmp), args.ckpt
            )
        elif args.bundle == "radiomics_deep_contrast":
            overrides = {
                "dataset_dir": str(shared / "adrenalmnist3d" / "adrenalmnist3d.npz"), "backbone": "resnet18",
                "slice_axis": 0, "spatial_size": [32, 32], "log_sigma": [1, 2, 3],
                **({"radiomics_cache": args.radiomics_cache} if args.radiomics_cache else {}),
            }  # fmt: skip
            rows = split_bundle(
                args.bundle, overrides, ("split", "train", "test"), "deep", args.random_seeds, Path(tmp), args.ckpt
            )
        else:
            rows = ct_bundle(args.random_seeds)
    print(f"\n{args.bundle}: eval mode, no augmentation\n")
    print("| encoder | std ratio | effective rank | probe AUC |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
