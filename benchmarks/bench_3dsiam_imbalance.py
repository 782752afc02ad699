"""Cost of RE and SE per training step, against the plain 3DSiam step in the same run.

One step = what ``SSLTrainer`` + ``ImbalanceHandler`` do per iteration, data loading excluded:
plain: SimSiam step on two views of batch m; RE: + feature pass (eval, no grad) on the m originals + k-means
(``reweight``) + weighted loss; SE: + feature pass on N = k * q candidates + k-means (``select``), then the step on m.
SE also makes its loader augment N instead of m samples (in the worker processes); that is not included here.

    python benchmarks/bench_3dsiam_imbalance.py --size 28 --steps 10
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from medssl_monai.imbalance import reweight, select
from medssl_monai.losses import SimSiamLoss
from medssl_monai.networks import PredictionHead, SiamEncoder3D, SSLNetwork


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--m", type=int, default=6)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--q", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    fmt = torch.channels_last_3d
    net = SSLNetwork(SiamEncoder3D(), predictor=PredictionHead(256)).train().to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
    loss_fn = SimSiamLoss()
    n = args.k * args.q
    shape = (n, 1, args.size, args.size, args.size)
    images, views = torch.rand(shape) * 255, [torch.rand(shape) * 255 for _ in range(2)]

    def features(x: torch.Tensor) -> torch.Tensor:
        net.eval()
        with torch.no_grad():
            out = net(x.contiguous(memory_format=fmt))["embedding"]
        net.train()
        return out

    def train(index: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        opt.zero_grad(set_to_none=True)
        o1, o2 = (net(v[index].contiguous(memory_format=fmt)) for v in views)
        loss_fn(o1["prediction"], o2["prediction"], o1["projection"], o2["projection"], weight=weight).backward()
        opt.step()

    first = torch.arange(args.m)
    variants = {
        "plain": lambda i: train(first),
        "RE": lambda i: train(first, reweight(features(images[first]), k=args.k, seed=i)),
        "SE": lambda i: train(select(features(images), k=args.k, m=args.m, seed=i)),
    }
    rows = {}
    for name, step in variants.items():
        step(0)  # warm-up
        t0 = time.perf_counter()
        for i in range(args.steps):
            step(i + 1)
        rows[name] = (time.perf_counter() - t0) / args.steps
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{args.size}^3, m={args.m}, N=k*q={n}, {args.steps} timed steps each")
    print("| variant | s/step | time vs plain |\n|---|---|---|")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.3f} | {seconds / rows['plain']:.2f}x |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
