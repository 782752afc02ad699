"""PyRadiomics extraction over AdrenalMNIST3D cases: serial (baseline) against the local process pool, and a
re-run from the per-case cache, in the same run; identical feature tables are checked.

    python benchmarks/bench_radiomics.py --cases 300 --workers 2
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from medssl_monai.data import medmnist_datalist
from medssl_monai.radiomics import extract_features
from medssl_monai.utils import shared_data_dir

YAML = Path(__file__).resolve().parents[1] / "bundles" / "3dsiam" / "configs" / "radiomics.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    items = medmnist_datalist(shared_data_dir() / "adrenalmnist3d" / "adrenalmnist3d.npz", "train", limit=args.cases)
    rows, tables = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [
            ("serial (baseline)", {"max_workers": 0}),
            (f"process pool, {args.workers} workers", {"max_workers": args.workers, "cache_dir": Path(tmp) / "c"}),
            ("re-run from cache", {"max_workers": args.workers, "cache_dir": Path(tmp) / "c"}),
        ]
        for name, kwargs in runs:
            t0 = time.perf_counter()
            result = extract_features(items, YAML, progress=False, **kwargs)
            seconds = time.perf_counter() - t0
            assert not result.failures, result.failures[:3]
            tables[name] = result.values
            rows.append((name, seconds))
    reference = next(iter(tables.values()))
    same = all(np.array_equal(reference, v, equal_nan=True) for v in tables.values())
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.cases} AdrenalMNIST3D 28^3 cases, "
        f"{reference.shape[1]} features; identical tables: {same}"
    )
    print("| run | seconds | cases/s | speed vs serial |\n|---|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {args.cases / seconds:.1f} | {rows[0][1] / seconds:.2f}x |")


if __name__ == "__main__":
    main()
