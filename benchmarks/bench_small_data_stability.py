"""Do the five small_data_ssl methods train without a non-finite loss? Runs ``train.json`` per method and data set and
reports, from each run's log, the last epoch's loss and the held-out (val split, eval mode) health figures.

    python benchmarks/bench_small_data_stability.py --data ../shared/data/breastmnist OTHER.npz --epochs 10 \
        [--methods simclr dcl dclw simsiam vicreg] [--extra --backbone resnet18 --image_size 28] [--out runs/stability]

``--make_slices DIR`` first writes the second 2D set used in BENCHMARKS.md: the central axial slice (index 14) of
every AdrenalMNIST3D volume (28x28, uint8), MedMNIST layout, the first 160 train volumes only (126 / 34 per class) and
the full val (98) and test (298) splits, as ``DIR/adrenalslices160.npz``; pass that file to ``--data``.

A run that stops with ``NonFiniteLossError`` is reported as such (the guard's default policy is to raise). Each run's
whole log is kept in ``<out>/<data>/<method>/train.log``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METRIC = re.compile(r"Epoch\[(\d+)\] Metrics -- (.*)")


def last_metrics(log: str) -> tuple[int, dict[str, float]]:
    found = METRIC.findall(log)
    if not found:
        return 0, {}
    epoch, text = found[-1]
    return int(epoch), {k: float(v) for k, v in re.findall(r"(\w+): ([-+\d.eE]+|nan)", text)}


def make_slices(src: Path, folder: Path, n_train: int = 160) -> Path:
    import numpy as np

    out = {}
    with np.load(src) as d:
        for split in ("train", "val", "test"):
            volumes, labels = d[f"{split}_images"], d[f"{split}_labels"]
            keep = n_train if split == "train" else len(volumes)
            out[f"{split}_images"] = volumes[:keep, volumes.shape[1] // 2].astype(np.uint8)
            out[f"{split}_labels"] = labels[:keep]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"adrenalslices{n_train}.npz"
    np.savez(path, **out)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=[])
    parser.add_argument("--make_slices", default=None, help="write the AdrenalMNIST3D slice set into this folder")
    parser.add_argument("--methods", nargs="+", default=["simclr", "dcl", "dclw", "simsiam", "vicreg"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="runs/stability")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=["--backbone", "resnet18", "--image_size", "28"])
    args = parser.parse_args()
    if args.make_slices:
        from medssl_monai.utils import shared_data_dir

        print(make_slices(shared_data_dir() / "adrenalmnist3d" / "adrenalmnist3d.npz", Path(args.make_slices)))
    print(
        "| data | method | epochs done | non-finite | last train loss | held-out std ratio | held-out eff. rank "
        "| held-out kNN bal. acc. | seconds |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|---:|")
    for data in args.data:
        for method in args.methods:
            out = Path(args.out) / Path(data).stem / method
            cmd = [
                sys.executable,
                "-m",
                "monai.bundle",
                "run",
                "--config_file",
                str(REPO / "bundles" / "small_data_ssl" / "configs" / "train.json"),
                "--method",
                method,
                "--dataset_dir",
                data,
                "--epochs",
                str(args.epochs),
                "--num_workers",
                "0",
                "--output_dir",
                str(out),
                *args.extra,
            ]
            t0 = time.time()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            log = proc.stdout + proc.stderr
            out.mkdir(parents=True, exist_ok=True)
            (out / "train.log").write_text(log)
            epoch, m = last_metrics(log)
            nonfinite = "NonFiniteLossError" in log
            fmt = lambda k: f"{m[k]:.3f}" if k in m else "-"
            print(
                f"| {Path(data).stem} | {method} | {epoch} | {'yes' if nonfinite else 'no'} | "
                f"{fmt('train_loss_epoch')} | {fmt('health_std_ratio')} | {fmt('health_effective_rank')} | "
                f"{fmt('health_knn_balanced_accuracy')} | {time.time() - t0:.0f} |",
                flush=True,
            )
            if proc.returncode and not nonfinite:
                print(log[-3000:], file=sys.stderr)


if __name__ == "__main__":
    main()
