"""Paper 3's claim on this machine: SwAV pre-training on ALL vs EveryN vs HASH-6 reduced CT slices, then fine-tuning
on an organ-classification task from a CT that the pre-training never saw (Wolf et al. 2024, Tables 4-6 and Fig. 8).

Data (all under MEDSSL_DATA_DIR, default ../shared/data; nothing is copied into the repository):

* pre-training volumes: example_ct.nii.gz slices 0-81 (TotalSegmentator's example; slices 82-111 are the labelled
  example_ct_sm and are held out), the 20-slice example_ct_dicom series, PyRadiomics' lung1 and lung2 CTs;
  written / linked into ``<out>/data`` (a derived NIfTI for the slab, symlinks for the rest);
* downstream: example_ct_sm (= example_ct slices 82-111) with example_seg (TotalSegmentator's output, not a manual
  label): organ patches of the 11 labels present in >= 19 of its 30 slices (``organ_patch_task``), 5-fold CV
  grouped by blocks of 3 neighbouring slices.

Every step writes its result file and is skipped when the file exists, so the script resumes after an interruption::

    python benchmarks/ct_pretrain_experiment.py --out runs/ct_pretrain --seeds 0 1 2 --epochs 30
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from medssl_monai.utils import atomic_write_text, shared_data_dir

REDUCTIONS = {
    "all": ["--method", "all"],
    "every_n": ["--method", "every_n", "--n", "10"],
    "hash6": ["--method", "hash", "--threshold", "6"],
}
ORGAN_CLASSES = [1, 2, 3, 5, 6, 20, 52, 63, 86, 87, 117]
REPO = Path(__file__).resolve().parents[1]


def bundle(config: str, *args: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        str(REPO / "bundles/ct_slice_reduction/configs" / config),
        *args,
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def prepare_data(out: Path) -> Path:
    data, shared = out / "data", shared_data_dir()
    if (data / "done").exists():
        return data
    (data / "dicom").mkdir(parents=True, exist_ok=True)
    ct = nib.load(shared / "ct_examples/example_ct.nii.gz")
    slab = np.asarray(ct.dataobj)[..., :82]
    nib.save(nib.Nifti1Image(slab, ct.affine), data / "example_ct_0_81.nii.gz")
    for f in sorted((shared / "ct_examples/example_ct_dicom").iterdir()):
        (data / "dicom" / f.name).unlink(missing_ok=True)
        (data / "dicom" / f.name).symlink_to(f)
    for name in ("lung1_image.nrrd", "lung2_image.nrrd"):
        (data / name).unlink(missing_ok=True)
        (data / name).symlink_to(shared / "pyradiomics_testcases" / name)
    (data / "done").touch()
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/ct_pretrain")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.15 * 16 / 128)  # Table 8's LARS lr, linearly scaled to the batch
    parser.add_argument("--reductions", nargs="+", default=list(REDUCTIONS))
    parser.add_argument("--skip_finetune", action="store_true")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    data = prepare_data(out)
    shared = shared_data_dir()
    task = {
        "organ_task": {
            "image": str(shared / "ct_examples/example_ct_sm.nii.gz"),
            "labels": str(shared / "ct_examples/example_seg.nii.gz"),
            "classes": ORGAN_CLASSES,
        },
        "image_size": 64,
    }
    for name in args.reductions:
        red = out / "reduction" / name
        if not (red / "summary.json").exists():
            bundle(
                "reduce.json",
                "--dataset_dir",
                str(data),
                "--output_dir",
                str(red),
                "--num_workers",
                "0",
                *REDUCTIONS[name],
            )
        kept = json.loads((red / "summary.json").read_text())["kept"]
        for seed in args.seeds:
            run = out / "pretrain" / f"{name}_seed{seed}"
            timing = run / "timing.json"
            if not timing.exists():
                iters = kept // args.batch_size
                start = time.perf_counter()
                bundle(
                    "pretrain.json", "--reduction_dir", str(red), "--output_dir", str(run), "--method", "swav",
                    "--backbone", "resnet18", "--epochs", str(args.epochs), "--image_size", str(args.image_size),
                    "--batch_size", str(args.batch_size), "--lr", str(args.lr), "--seed", str(seed),
                    "--freeze_prototypes_iterations", str(iters), "--autocast_dtype", "bfloat16",
                )  # fmt: skip
                seconds = time.perf_counter() - start
                atomic_write_text(
                    timing, json.dumps({"seconds": seconds, "slices": kept, "iterations": iters * args.epochs})
                )
                print(f"pretrained {name} seed {seed}: {kept} slices, {seconds:.0f} s", flush=True)
            if args.skip_finetune:
                continue
            result = run / "finetune" / "results.json"
            if not result.exists():
                from medssl_monai.apps.ct_slice_reduction import run_finetune

                run_finetune(str(run / "finetune"), str(run / "models" / "model.pt"), seeds=[seed], task=task)
                print(f"fine-tuned {name} seed {seed}", flush=True)
    if not args.skip_finetune:
        from medssl_monai.apps.ct_slice_reduction import run_finetune

        for seed in args.seeds:
            scratch = out / "scratch" / f"seed{seed}"
            if not (scratch / "results.json").exists():
                run_finetune(str(scratch), None, seeds=[seed], task=task)
                print(f"scratch seed {seed}", flush=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))


if __name__ == "__main__":
    main()
