"""Short 3DSiam recipe runs on AdrenalMNIST3D (the diagnosis of the 0.2.0 encoder's collapse): SimSiam steps with the
bundle's encoder, predictor, loss and augmentation, one setting changed at a time, then the eval-mode figures of
``bench_3dsiam_health.py`` on the test split, before and after re-estimating batch-norm statistics on clean volumes.

    python benchmarks/bench_3dsiam_recipe.py --steps 300 --lr 1e-2            # the 0.2.0 recipe
    python benchmarks/bench_3dsiam_recipe.py --steps 300 --lr 1e-3            # the 0.3.0 recipe
    python benchmarks/bench_3dsiam_recipe.py --steps 300 --lr 1e-2 --output_bn # BN on dense8's output (SimSiam's f)

Batches of 6 drawn without replacement from the 1,188 train volumes, Adam (weight decay 1e-4), cosine schedule over
``--steps``; the test split is not used for anything but the final figures.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from bench_3dsiam_health import REPO, embed, load_split, probe_auc

from medssl_monai.engines import recalibrate_batch_norm
from medssl_monai.evaluation import representation_health
from medssl_monai.losses import SimSiamLoss
from medssl_monai.networks import PredictionHead, SiamEncoder3D, SSLNetwork
from medssl_monai.utils import shared_data_dir


def figures(name: str, encoder, data) -> None:
    (x_tr, y_tr), (x_te, y_te) = data
    (d_tr, t_tr), (d_te, t_te) = embed(encoder, x_tr), embed(encoder, x_te)
    for part, tr, te in (("dense8", d_tr, d_te), ("trunk", t_tr, t_te)):
        h = representation_health(te)
        auc = probe_auc(tr.numpy(), y_tr, te.numpy(), y_te)
        print(f"| {name} | {part} | {h['std_ratio']:.3f} | {h['effective_rank']:.1f} | {auc:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(shared_data_dir() / "adrenalmnist3d" / "adrenalmnist3d.npz"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight_decay", type=float, default=1e-4)
    parser.add_argument("--batch_size", type=int, default=6)
    parser.add_argument("--predictor_hidden", type=int, default=64)
    parser.add_argument("--output_bn", action="store_true", help="BatchNorm1d on dense8's output")
    parser.add_argument(
        "--fixed_predictor_lr", action="store_true", help="no decay of the predictor's lr (SimSiam 4.2)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from monai.bundle import ConfigParser

    torch.manual_seed(args.seed)
    config = ConfigParser()
    config.read_config(str(REPO / "bundles" / "3dsiam" / "configs" / "train.json"))
    augment = config.get_parsed_content("train#augmentation")
    augment.set_random_state(args.seed)
    x_tr, y_tr, _ = load_split(Path(args.data), "train")
    x_te, y_te, _ = load_split(Path(args.data), "test")
    encoder = SiamEncoder3D()
    if args.output_bn:
        encoder.head.append(torch.nn.BatchNorm1d(256))
    net = SSLNetwork(encoder, predictor=PredictionHead(256, args.predictor_hidden)).to(
        memory_format=torch.channels_last_3d
    )
    groups = [{"params": encoder.parameters()}, {"params": net.predictor.parameters()}]
    opt = torch.optim.Adam(groups, lr=args.lr, weight_decay=args.weight_decay)
    cosine = lambda s: 0.5 * (1 + math.cos(math.pi * s / args.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, [cosine, (lambda s: 1.0) if args.fixed_predictor_lr else cosine])
    loss_fn, gen, order, pos, t0 = SimSiamLoss(), torch.Generator().manual_seed(args.seed), None, len(x_tr), time.time()
    for step in range(args.steps):
        if pos + args.batch_size > len(x_tr):
            order, pos = torch.randperm(len(x_tr), generator=gen), 0
        idx, pos = order[pos : pos + args.batch_size], pos + args.batch_size
        views = [
            torch.stack([torch.as_tensor(augment({"image": x_tr[i]})["image"]).float() for i in idx]).contiguous(
                memory_format=torch.channels_last_3d
            )
            for _ in range(2)
        ]
        net.train()
        o1, o2 = net(views[0]), net(views[1])
        loss = loss_fn(o1["prediction"], o2["prediction"], o1["projection"], o2["projection"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 50 == 0:
            print(f"step {step + 1}: loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
    name = f"lr {args.lr:g}{', output BN' if args.output_bn else ''}"
    name += f"{', fixed predictor lr' if args.fixed_predictor_lr else ''}, {args.steps} steps"
    print("| run | features | std ratio | effective rank | probe AUC |\n|---|---|---:|---:|---:|")
    data = ((x_tr, y_tr), (x_te, y_te))
    figures(name, encoder, data)
    batches = [
        {"image": x_tr[order[s : s + args.batch_size]]}
        for s in range(0, len(x_tr) - args.batch_size + 1, args.batch_size)
    ]
    recalibrate_batch_norm(encoder, batches[:200])
    figures(name + ", BN re-estimated on clean volumes", encoder, data)


if __name__ == "__main__":
    main()
