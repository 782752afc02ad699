"""DeepNet similarity cost on CPU: ResNet-50 embeddings of 512x512 CT slices (Wolf et al. 2024 Sec. 2.1, Eq. 3)
against HASH on the same slices in the same run (the ratio), and a projection to the paper's PET-CT set
(541,439 slices; the paper: DeepNet 6 GPU-hours on an RTX 3090, HASH under 30 minutes on 12 CPU cores).

The encoder is MONAI's 2D ResNet-50 (3 input channels, pooled 2048-d features, ``feed_forward=False``) with random
weights: the paper's ImageNet weights cannot be downloaded here, and weights do not change the cost. Embedding is
O(n) per volume; the cosine matrix and the greedy reduction of a 600-slice volume are timed too (O(n^2), small).
Slices: PyRadiomics' lung CTs (512x512 int16 -> to_uint8), tiled to --slices.

    python benchmarks/bench_reduction_deep.py --slices 16 --batch 8
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from bench_reduction_hash import PAPER_SLICES, _ct_slices  # same slices as the HASH benchmark (this folder)
from monai.networks.nets import resnet50

from medssl_monai.reduction import dhash_slices, embed, pairwise_cosine, reduce_pairs, to_uint8


def _timed(f) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = f()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op threads to time")
    args = parser.parse_args()
    raw = _ct_slices(args.slices)
    x = to_uint8(raw)
    net = resnet50(spatial_dims=2, n_input_channels=3, feed_forward=False, pretrained=False).eval()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}; {args.slices} slices "
        f"512x512, batch {args.batch}; encoder MONAI ResNet-50 (2D, 3 channels, random weights)"
    )
    dhash_slices(raw[:2])  # load the kernel outside the timing
    t_hash = min(_timed(lambda: dhash_slices(raw))[0] for _ in range(3)) / args.slices
    print("| threads | DeepNet s/slice | HASH us/slice (1 thread) | DeepNet / HASH | PET-CT DeepNet, one process |")
    print("|---|---|---|---|---|")
    old = torch.get_num_threads()
    for k in args.threads:
        torch.set_num_threads(k)
        embed(x[: args.batch], net, batch_size=args.batch)  # oneDNN primitives for this shape
        t, feats = _timed(lambda: embed(x, net, batch_size=args.batch))
        per = t / args.slices
        print(f"| {k} | {per:.2f} | {t_hash * 1e6:.0f} | {per / t_hash:,.0f}x | {PAPER_SLICES * per / 3600:,.0f} h |")
    torch.set_num_threads(old)
    f600 = np.resize(feats, (600, feats.shape[1])) + np.random.default_rng(0).normal(0, 1e-3, (600, feats.shape[1]))
    t_red, _ = _timed(lambda: reduce_pairs(pairwise_cosine(f600), target_fraction=0.1))
    print(f"cosine matrix + 10 % reduction of a 600-slice volume: {t_red:.2f} s (the paper: DeepNet 6 GPU-hours)")


if __name__ == "__main__":
    main()
