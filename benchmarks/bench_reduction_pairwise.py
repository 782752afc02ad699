"""Pairwise SSIM / NMI reduction of one volume: ours (medssl_monai.reduction) against the naive approach
(scikit-image per pair), identical keep-sets required, and the ratio.

The naive similarity is timed on a sample of pairs (--naive-pairs) and extrapolated to all n(n-1)/2 pairs; its
keep-set is computed from the naive similarity of all pairs only when n <= --naive-full (otherwise the check
compares our float64 matrix with the naive one on the sampled pairs, and our keep-set with the one of that
matrix). Ours is ``reduce_volume`` end to end (SSIM: float32 screening with an error bound and float64
recomputation of the pairs whose order it leaves open; NMI: the exact kernel). Slices: the lung CTs of PyRadiomics' test cases
(512x512 int16 -> to_uint8), resized by tiling to n slices; --size crops the slices to size x size.

    python benchmarks/bench_reduction_pairwise.py --method ssim --n 100 300 600
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time

import nrrd
import numpy as np
from skimage.metrics import normalized_mutual_information, structural_similarity

from medssl_monai.reduction import pairwise_nmi, pairwise_ssim, reduce_pairs, reduce_volume, to_uint8
from medssl_monai.reduction.kernels import pairwise as pairwise_kernels
from medssl_monai.reduction.similarity import screen_ssim
from medssl_monai.utils import shared_data_dir

PAPER = {"ssim": "421 GPU-hours", "mi": "312 GPU-hours"}  # Wolf et al. 2024 Sec. 3.2, PET-CT, RTX 3090


def _slices(n: int, size: int) -> np.ndarray:
    root = shared_data_dir() / "pyradiomics_testcases"
    vols = [np.moveaxis(nrrd.read(str(root / f"lung{i}_image.nrrd"))[0], -1, 0) for i in (1, 2)]
    stack = to_uint8(np.concatenate(vols))
    c0 = (stack.shape[1] - size) // 2
    stack = stack[:, c0 : c0 + size, c0 : c0 + size]
    return np.ascontiguousarray(np.resize(stack, (n, size, size)))


def _naive(method: str):
    if method == "ssim":
        return lambda a, b: structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
    return lambda a, b: normalized_mutual_information(a, b, bins=256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=["ssim", "mi"], default="ssim")
    parser.add_argument("--n", type=int, nargs="+", default=[100, 300, 600])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--naive-pairs", type=int, default=100)
    parser.add_argument("--naive-full", type=int, default=0, help="largest n for a full naive keep-set")
    parser.add_argument("--target-fraction", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1, help="numba threads for ours (volumes are the usual unit)")
    args = parser.parse_args()

    def ours_fn(x):
        return reduce_volume(x, args.method, target_fraction=args.target_fraction, threads=args.threads)

    fn = pairwise_ssim if args.method == "ssim" else pairwise_nmi  # our exact matrix, for the value checks
    warm = _slices(5, args.size)  # compile / load every numba kernel outside the timing
    ours_fn(warm)
    if args.method == "ssim":
        screen_ssim(warm, threads=args.threads)[2](0, 1)  # the float64 refinement (maybe not needed on 5 slices)
    naive = _naive(args.method)
    other = "yes" if subprocess.run(["pgrep", "-f", "evaluate.json"], check=False, capture_output=True).stdout else "no"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; other job running: {other}; method {args.method}; "
        f"slices {args.size}x{args.size} uint8; reduction to {args.target_fraction:.0%} (paper Sec. 3.2); "
        f"numba kernels: {pairwise_kernels.use_numba()}, threads {args.threads}"
    )
    print("| n | pairs | ours s | naive s | speed | identical keep-set | check |\n|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n in args.n:
        x = _slices(n, args.size)
        t0 = time.perf_counter()
        keep = ours_fn(x)
        t_ours = time.perf_counter() - t0
        sim = fn(x, threads=args.threads)  # not timed: ours as a matrix, compared with the naive values
        ii, jj = np.triu_indices(n, 1)
        pairs = len(ii)
        if n <= args.naive_full:
            t0 = time.perf_counter()
            ref = np.eye(n) * (1.0 if args.method == "ssim" else 2.0)
            for i, j in zip(ii, jj):
                ref[i, j] = ref[j, i] = naive(x[i], x[j])
            t_naive = time.perf_counter() - t0
            same = bool(np.array_equal(keep, reduce_pairs(ref, target_fraction=args.target_fraction)))
            check, naive_txt = f"full, max |diff| {np.abs(ref - sim).max():.1e}", f"{t_naive:.1f}"
        else:
            pick = rng.choice(pairs, size=min(args.naive_pairs, pairs), replace=False)
            t0 = time.perf_counter()
            vals = np.array([naive(x[ii[p]], x[jj[p]]) for p in pick])
            t_naive = (time.perf_counter() - t0) / len(pick) * pairs
            diff = np.abs(vals - sim[ii[pick], jj[pick]]).max()
            same = f"{np.array_equal(keep, reduce_pairs(sim, target_fraction=args.target_fraction))} (vs our float64 matrix)"
            check = f"{len(pick)} sampled pairs, max |diff| {diff:.1e}"
            naive_txt = f"{t_naive:.0f} (extrapolated)"
        print(f"| {n} | {pairs} | {t_ours:.1f} | {naive_txt} | {t_naive / t_ours:.1f}x | {same} | {check} |")
        per_pair = t_ours / pairs
    print(f"ours per pair (last n): {per_pair * 1e3:.2f} ms; paper on PET-CT: {PAPER[args.method]}")


if __name__ == "__main__":
    main()
