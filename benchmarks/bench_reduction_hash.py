"""dHash of 512x512 int16 CT slices: ours (dhash_slices: to_uint8 fused into the batched dhash kernel; and
to_uint8 + dhash as two calls; the VNNI kernel where the CPU has it, and the float32 kernel it replaces, forced with
MEDSSL_NO_VNNI=1, in the same run) against to_uint8 + imagehash.dhash per slice,
with identical hashes asserted, slices/s, the ratio, the memory-bandwidth bound and a projection to the paper's
PET-CT set (541,439 slices; Wolf et al. 2024 Sec. 3.2: HASH "less than 30 minutes" on an AMD Ryzen 9 5900X).

Slices are the real lung CTs of PyRadiomics' test cases (512x512 int16), tiled to --slices.

    python benchmarks/bench_reduction_hash.py --slices 512
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time

import imagehash
import nrrd
import numpy as np
from PIL import Image

from medssl_monai.reduction import dhash, dhash_slices, hashing, to_uint8
from medssl_monai.reduction.kernels import hashing as hash_kernels
from medssl_monai.reduction.kernels import pairwise as pairwise_kernels
from medssl_monai.utils import shared_data_dir

PAPER_SLICES = 541_439


def _ct_slices(n: int) -> np.ndarray:
    root = shared_data_dir() / "pyradiomics_testcases"
    vols = [np.moveaxis(nrrd.read(str(root / f"lung{i}_image.nrrd"))[0], -1, 0) for i in (1, 2)]
    stack = np.concatenate(vols).astype(np.int16)
    return np.ascontiguousarray(np.resize(stack, (n, *stack.shape[1:])))


def _best(f, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def _kernel_in_cache(s: np.ndarray, repeats: int) -> float:
    """Seconds per call of the dHash kernel in use (VNNI or float32) on one slice, hashed 200 times in a row so that
    it stays in cache: the compute part of a slice, without memory reads or Python overhead (~25 us per call)."""
    (kernel, _), args, _ = hashing._jit_call(s[None], True, None)
    kernel(*args)
    return _best(lambda: [kernel(*args) for _ in range(200)], repeats) / 200


def _copy_bandwidth() -> float:
    src = np.ones(256 << 20, np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    t = _best(lambda: np.copyto(dst, src), 3)
    return 2 * src.nbytes / t  # bytes read + written per second


def _other_jobs() -> str:
    out = subprocess.run(["pgrep", "-f", "evaluate.json"], check=False, capture_output=True, text=True).stdout.split()
    return "yes (another engineer's evaluate.json job)" if out else "no"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=512)
    parser.add_argument("--baseline-slices", type=int, default=128, help="slices timed for the per-slice baseline")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    x = _ct_slices(args.slices)
    nb = min(args.baseline_slices, args.slices)

    def ours(threads=1):
        return dhash_slices(x, threads=threads)

    def ours_two_calls():
        return dhash(to_uint8(x))

    def baseline(k):
        return [int(str(imagehash.dhash(Image.fromarray(to_uint8(s[None])[0]))), 16) for s in x[:k]]

    def float32_kernel(threads=1):
        os.environ["MEDSSL_NO_VNNI"] = "1"
        try:
            return dhash_slices(x, threads=threads)
        finally:
            del os.environ["MEDSSL_NO_VNNI"]

    mine = ours()
    ref = baseline(nb)
    assert mine[:nb].tolist() == ref, "hashes differ from imagehash"
    assert np.array_equal(mine, ours(2)) and np.array_equal(mine, ours_two_calls()), "our paths disagree"
    assert np.array_equal(mine, float32_kernel()) and np.array_equal(mine, float32_kernel(2)), "kernels disagree"
    t_ours = _best(ours, args.repeats) / args.slices
    t_ours2 = _best(lambda: ours(2), args.repeats) / args.slices
    t_f32 = _best(float32_kernel, args.repeats) / args.slices
    t_f32_2 = _best(lambda: float32_kernel(2), args.repeats) / args.slices
    t_two = _best(ours_two_calls, args.repeats) / args.slices
    t_cached = _kernel_in_cache(x[len(x) // 2], args.repeats)
    t_base = _best(lambda: baseline(nb), max(1, args.repeats - 1)) / nb
    t_conv = _best(lambda: to_uint8(x), args.repeats) / args.slices
    bw = _copy_bandwidth()
    bytes_per_slice = x[0].nbytes  # the int16 slice must be read at least once
    bound = bytes_per_slice / (bw / 2)  # read bandwidth = half the copy traffic
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; other job running: "
        f"{_other_jobs()}; {args.slices} int16 512x512 slices (lung1/lung2 tiled); baseline on {nb}; "
        f"identical hashes: True; numba kernels: {pairwise_kernels.use_numba()}; "
        f"kernel: {'VNNI (exact integer)' if hash_kernels.vnni_available() else 'float32 (no VNNI on this CPU)'}"
    )
    print(
        f"copy bandwidth {bw / 1e9:.1f} GB/s (read+write); read bound {bound * 1e6:.1f} us/slice "
        f"({bytes_per_slice // 1024} KiB int16 read); ours is {t_ours / bound:.0f}x the bound"
    )
    print("| run | us/slice | slices/s | speed vs baseline | PET-CT 541,439 slices |\n|---|---|---|---|---|")
    for name, t in [
        ("to_uint8 + imagehash.dhash per slice (baseline)", t_base),
        ("ours: dhash_slices (conversion fused), 1 thread", t_ours),
        ("ours: dhash_slices, 2 threads", t_ours2),
        ("ours: dhash_slices, float32 kernel (MEDSSL_NO_VNNI=1), 1 thread", t_f32),
        ("ours: dhash_slices, float32 kernel (MEDSSL_NO_VNNI=1), 2 threads", t_f32_2),
        ("ours: the kernel alone on one slice held in cache (no memory reads), 1 thread", t_cached),
        ("ours: to_uint8 + dhash (two calls), 1 thread", t_two),
        ("  of which to_uint8", t_conv),
    ]:
        cores = "2 cores" if "2 threads" in name else "1 core"
        print(
            f"| {name} | {t * 1e6:.0f} | {1 / t:.0f} | {t_base / t:.2f}x | {t * PAPER_SLICES / 60:.1f} min, {cores} |"
        )


if __name__ == "__main__":
    main()
