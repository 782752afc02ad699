"""Milliseconds per volume of the 3dsiam augmentation chain (bundles/3dsiam/configs/train.json, train#augmentation),
one view, against a named baseline in the same run: MONAI's RandAffined alone (the chain's first, costliest step).

    python benchmarks/bench_3dsiam_augment.py --sizes 32 96 --repeats 20
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
from monai.bundle import ConfigParser

CONFIG = Path(__file__).resolve().parents[1] / "bundles" / "3dsiam" / "configs" / "train.json"


def _ms(transform, size: int, repeats: int) -> float:
    sample = {"image": torch.rand(1, size, size, size) * 255}
    transform(dict(sample))  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        transform(dict(sample))
    return (time.perf_counter() - t0) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 96])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    config = ConfigParser()
    config.read_config(CONFIG)
    config["bundle_root"] = str(CONFIG.parents[1])
    chain = config.get_parsed_content("train#augmentation")
    chain.set_random_state(0)
    affine = chain.transforms[0]
    print(
        f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch threads {torch.get_num_threads()}"
    )
    print("| input | full chain ms/volume | RandAffine alone ms/volume | chain / affine |")
    print("|---|---|---|---|")
    for size in args.sizes:
        full = _ms(chain, size, args.repeats)
        alone = _ms(affine, size, args.repeats)
        print(f"| {size}^3 | {full:.1f} | {alone:.1f} | {full / alone:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
