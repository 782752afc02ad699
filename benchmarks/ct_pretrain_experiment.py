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
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from medssl_monai.apps.ct_slice_reduction import run_finetune
from medssl_monai.utils import atomic_write_text, shared_data_dir

REDUCTIONS = {
    "all": ["--method", "all"],
    "every_n": ["--method", "every_n", "--n", "10"],
    "hash6": ["--method", "hash", "--threshold", "6"],
}
ORGAN_CLASSES = [1, 2, 3, 5, 6, 20, 52, 63, 86, 87, 117]
REPO = Path(__file__).resolve().parents[1]


def epoch_seconds(log: Path) -> float:
    """Training time summed over epochs from Ignite's "Epoch[N] Complete. Time taken: HH:MM:SS.fff" lines (the last
    line of each epoch: a resumed run's epochs count once)."""
    times = {}
    for m in re.finditer(r"Epoch\[(\d+)\] Complete\. Time taken: (\d+):(\d+):([\d.]+)", log.read_text(errors="ignore")):
        times[int(m[1])] = int(m[2]) * 3600 + int(m[3]) * 60 + float(m[4])
    return sum(times.values())


def bundle(config: str, *args: str, log: Path | None = None) -> None:
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        str(REPO / "bundles/ct_slice_reduction/configs" / config),
        *args,
    ]
    if log is None:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return
    with open(log, "a") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)


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
            args_ = ["--dataset_dir", str(data), "--output_dir", str(red), "--num_workers", "0", *REDUCTIONS[name]]
            bundle("reduce.json", *args_)
    for seed in args.seeds:  # seed-major: an interrupted run still has every reduction of the first seeds
        for name in args.reductions:
            red = out / "reduction" / name
            kept = json.loads((red / "summary.json").read_text())["kept"]
            run = out / "pretrain" / f"{name}_seed{seed}"
            timing = run / "timing.json"
            if not timing.exists():
                iters = kept // args.batch_size
                run.mkdir(parents=True, exist_ok=True)
                bundle(
                    "pretrain.json", "--reduction_dir", str(red), "--output_dir", str(run), "--method", "swav",
                    "--backbone", "resnet18", "--epochs", str(args.epochs), "--image_size", str(args.image_size),
                    "--batch_size", str(args.batch_size), "--lr", str(args.lr), "--seed", str(seed),
                    "--freeze_prototypes_iterations", str(iters), "--autocast_dtype", "bfloat16",
                    log=run / "pretrain.log",
                )  # fmt: skip
                seconds = epoch_seconds(run / "pretrain.log")
                info = {"train_seconds": seconds, "slices": kept, "iterations": iters * args.epochs}
                atomic_write_text(timing, json.dumps(info))
                print(f"pretrained {name} seed {seed}: {kept} slices, {seconds:.0f} s of training", flush=True)
            if args.skip_finetune:
                continue
            if not (run / "finetune" / "results.json").exists():
                run_finetune(str(run / "finetune"), str(run / "models" / "model.pt"), seeds=[seed], task=task)
                print(f"fine-tuned {name} seed {seed}", flush=True)
        scratch = out / "scratch" / f"seed{seed}"
        if not args.skip_finetune and not (scratch / "results.json").exists():
            run_finetune(str(scratch), None, seeds=[seed], task=task)
            print(f"scratch seed {seed}", flush=True)


if __name__ == "__main__":
    main()
