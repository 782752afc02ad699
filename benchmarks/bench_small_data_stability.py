"""Do the five small_data_ssl methods train without a non-finite loss? Runs ``train.json`` per method and data set and
reports, from each run's log, the last epoch's loss and the held-out (val split, eval mode) health figures.

    python benchmarks/bench_small_data_stability.py --data ../shared/data/breastmnist OTHER.npz --epochs 10 \
        [--methods simclr dcl dclw simsiam vicreg] [--extra --backbone resnet18 --image_size 28] [--out runs/stability]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--methods", nargs="+", default=["simclr", "dcl", "dclw", "simsiam", "vicreg"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="runs/stability")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=["--backbone", "resnet18", "--image_size", "28"])
    args = parser.parse_args()
    print("| data | method | epochs done | non-finite | last train loss | held-out std ratio | held-out eff. rank "
          "| held-out kNN bal. acc. | seconds |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|")
    for data in args.data:
        for method in args.methods:
            out = Path(args.out) / Path(data).stem / method
            cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file",
                   str(REPO / "bundles" / "small_data_ssl" / "configs" / "train.json"), "--method", method,
                   "--dataset_dir", data, "--epochs", str(args.epochs), "--num_workers", "0", "--output_dir", str(out),
                   *args.extra]
            t0 = time.time()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            log = proc.stdout + proc.stderr
            out.mkdir(parents=True, exist_ok=True)
            (out / "train.log").write_text(log)
            epoch, m = last_metrics(log)
            nonfinite = "NonFiniteLossError" in log
            fmt = lambda k: f"{m[k]:.3f}" if k in m else "-"  # noqa: E731
            print(f"| {Path(data).stem} | {method} | {epoch} | {'yes' if nonfinite else 'no'} | "
                  f"{fmt('train_loss_epoch')} | {fmt('health_std_ratio')} | {fmt('health_effective_rank')} | "
                  f"{fmt('health_knn_balanced_accuracy')} | {time.time() - t0:.0f} |", flush=True)
            if proc.returncode and not nonfinite:
                print(log[-3000:], file=sys.stderr)


if __name__ == "__main__":
    main()
