"""3DSiam SimSiam step: throughput, FLOP rate and peak memory by memory layout, activation checkpointing and bf16
autocast (the network under ``torch.autocast("cpu", torch.bfloat16)``, the loss in float32, as ``SSLTrainer``
with ``autocast_dtype="bfloat16"`` does).

Each (size, variant) runs in its own subprocess so that peak RSS (``ru_maxrss``) belongs to that variant alone.
The baseline of every ratio is the default (contiguous) layout at the same size, measured in the same run.
The address space of each subprocess is capped (``--mem-cap-gib``) so that a variant that needs more memory than
the machine has fails with "out of memory" instead of taking the machine down.

    python benchmarks/bench_3dsiam_step.py --sizes 28 64 96 --batch 6 --steps 3

FLOPs per step are counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products, forward
and backward); the same run times a large fp32 and bf16 matrix product (``--gemm``) as the machine's reference rate.
Every variant trains on the same two fixed views from the same initialisation, so its losses step by step are
comparable: ``loss diff`` is the largest absolute difference to the default variant's losses.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

VARIANTS = {
    "default": {"memory_format": None, "checkpoint": False},
    "channels_last_3d": {"memory_format": "channels_last_3d", "checkpoint": False},
    "checkpoint": {"memory_format": None, "checkpoint": True},
    "channels_last_3d+checkpoint": {"memory_format": "channels_last_3d", "checkpoint": True},
    "channels_last_3d+bf16": {"memory_format": "channels_last_3d", "checkpoint": False, "autocast": "bfloat16"},
}


def _child(size: int, batch: int, steps: int, variant: str) -> dict:
    import contextlib

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from medssl_monai.losses import SimSiamLoss
    from medssl_monai.networks import PredictionHead, SiamEncoder3D, SSLNetwork

    torch.manual_seed(0)
    cfg = VARIANTS[variant]
    net = SSLNetwork(SiamEncoder3D(checkpoint=cfg["checkpoint"]), predictor=PredictionHead(256)).train()
    fmt = getattr(torch, cfg["memory_format"]) if cfg["memory_format"] else torch.contiguous_format
    net.to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
    loss_fn = SimSiamLoss()
    views = [torch.rand(batch, 1, size, size, size).contiguous(memory_format=fmt) * 255 for _ in range(2)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    dtype = cfg.get("autocast")
    autocast = (lambda: torch.autocast("cpu", dtype=getattr(torch, dtype))) if dtype else contextlib.nullcontext
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            o1, o2 = net(views[0]), net(views[1])
        o1, o2 = ({k: v.float() for k, v in o.items()} for o in (o1, o2))
        loss = loss_fn(o1["prediction"], o2["prediction"], o1["projection"], o2["projection"])
        loss.backward()
        opt.step()
        losses.append(float(loss))

    with FlopCounterMode(display=False) as counter:
        step()  # warm-up (oneDNN primitive creation), FLOPs counted
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - t0) / steps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "losses": losses,
        "gflop_per_step": counter.get_total_flops() / 1e9,
        "s_per_step": seconds,
        "volumes_per_s": batch / seconds,
        "peak_rss_gib": peak / 2**20,
        "rss_before_step_gib": rss0 / 2**20,
    }


def _run_child(size, batch, steps, variant, cap_gib) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--sizes",
        str(size),
        "--batch",
        str(batch),
        "--steps",
        str(steps),
    ]

    def limit():
        cap = int(cap_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, preexec_fn=limit)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        oom = "memory" in proc.stderr.lower() or "alloc" in proc.stderr.lower()
        return {"error": f"out of memory (> {cap_gib} GiB address space)" if oom else tail}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[28, 64, 96])
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--mem-cap-gib", type=float, default=21.0)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.sizes[0], args.batch, args.steps, args.child)))
        return

    import torch

    print(
        f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}; batch {args.batch}, two views"
    )
    gemm = {}
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(2048, 2048, dtype=dt), torch.randn(2048, 2048, dtype=dt)
        a @ b
        t0 = time.perf_counter()
        for _ in range(5):
            a @ b
        gemm[name] = 5 * 2 * 2048**3 / (time.perf_counter() - t0) / 1e9
    print(f"# reference: 2048^2 matrix product {gemm['fp32']:.0f} GFLOP/s fp32, {gemm['bf16']:.0f} GFLOP/s bf16")
    print(
        "| input | variant | s/step | volumes/s | speed vs default | GFLOP/step | GFLOP/s | % of fp32 GEMM rate "
        "| loss diff vs default | peak RSS GiB | memory vs default |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        steps = args.steps if size < 96 else max(1, args.steps - 1)
        base = None
        for variant in args.variants:
            r = _run_child(size, args.batch, steps, variant, args.mem_cap_gib)
            if "error" in r:
                print(f"| {size}^3 | {variant} | - | - | - | - | - | - | - | {r['error']} | - |", flush=True)
                continue
            if variant == "default":
                base = r
            speed = f"{r['volumes_per_s'] / base['volumes_per_s']:.2f}x" if base else "n/a"
            mem = f"{r['peak_rss_gib'] / base['peak_rss_gib']:.2f}x" if base else "n/a"
            rate = r["gflop_per_step"] / r["s_per_step"]
            diff = max(abs(a - b) for a, b in zip(r["losses"], base["losses"])) if base else float("nan")
            print(
                f"| {size}^3 | {variant} | {r['s_per_step']:.2f} | {r['volumes_per_s']:.2f} | {speed} | "
                f"{r['gflop_per_step']:.1f} | {rate:.0f} | {100 * rate / gemm['fp32']:.0f} % | {diff:.4f} | "
                f"{r['peak_rss_gib']:.2f} | {mem} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
