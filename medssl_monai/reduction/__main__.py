"""Command line: ``python -m medssl_monai.reduction DIR --method hash --threshold 6 --output-dir OUT`` (also installed as
``medssl-reduce-slices``). Reduces every CT volume under DIR (Wolf et al. 2024, Sec. 2.1) with
:func:`medssl_monai.reduction.run.reduce_dataset` and writes ``manifest.csv``, ``summary.json`` and, for failed volumes,
``errors.csv`` into the output folder. Exit status 0 when every volume succeeded, 1 when some failed, 2 when none did."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

__all__ = ["main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The CLI's options (see ``--help``)."""
    from medssl_monai.reduction import METHODS

    parser = argparse.ArgumentParser(
        prog="python -m medssl_monai.reduction",
        description="Remove near-duplicate CT slices before contrastive pre-training (Wolf et al. 2024).",
    )
    parser.add_argument("dataset_dir", help="folder of NIfTI/NRRD volumes, DICOM series folders or slice images")
    parser.add_argument("--output-dir", "-o", required=True, help="where manifest.csv, summary.json ... go")
    parser.add_argument("--method", default="hash", choices=METHODS, help="similarity method (default: hash)")
    parser.add_argument("--threshold", type=float, default=None, help="default: the method's default (HASH: 6)")
    parser.add_argument("--target-fraction", type=float, default=None, help="keep this fraction of each volume instead")
    parser.add_argument("--variant", default="exact", choices=("exact", "released"), help="HASH rule (default: exact)")
    parser.add_argument("--n", type=int, default=None, help="EveryN: keep every n-th slice")
    parser.add_argument(
        "--window", type=float, nargs=2, metavar=("LOW", "HIGH"), help="intensity window, e.g. -1000 1000"
    )
    parser.add_argument("--export-png", action="store_true", help="write kept slices to OUT/slices/<volume>/NNNN.png")
    parser.add_argument("--workers", type=int, default=None, help="local processes (default: CPU count; 0: in-process)")
    parser.add_argument(
        "--threads", type=int, default=1, help="numba threads per volume for hash/ssim/mi (default 1; same results)"
    )
    parser.add_argument("--scheduler-address", default=None, help="Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--encoder", default=None, help="deep method: TorchScript encoder file")
    parser.add_argument("--device", default="cpu", help="deep method: torch device (default: cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the reduction; returns the exit status."""
    from medssl_monai.reduction.run import reduce_dataset

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(name)s - %(levelname)s - %(message)s")
    try:
        summary = reduce_dataset(
            args.dataset_dir,
            args.output_dir,
            method=args.method,
            threshold=args.threshold,
            target_fraction=args.target_fraction,
            variant=args.variant,
            n=args.n,
            window=args.window,
            export_png=args.export_png,
            max_workers=args.workers,
            scheduler_address=args.scheduler_address,
            progress=not args.no_progress,
            encoder=args.encoder,
            device=args.device,
            threads=args.threads,
        )
    except (ValueError, RuntimeError) as err:
        logging.getLogger("medssl_monai.reduction").error("%s", err)
        return 2
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
