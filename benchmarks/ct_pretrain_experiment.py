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
import torch

from medssl_monai.apps.ct_slice_reduction import linear_cka, organ_patch_task, run_finetune, stage_features
from medssl_monai.networks import resnet_backbone
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
    config_file = REPO / "bundles/ct_slice_reduction/configs" / config
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(config_file), *args]
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
    parser.add_argument("--summary", action="store_true", help="only write summary.md / summary.json of what exists")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    if args.summary:
        summarize(out, args.reductions, args.seeds)
        return
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
    summarize(out, args.reductions, args.seeds)


def _organ_images() -> torch.Tensor:
    shared = shared_data_dir()
    image = np.asarray(nib.load(shared / "ct_examples/example_ct_sm.nii.gz").dataobj)
    labels = np.asarray(nib.load(shared / "ct_examples/example_seg.nii.gz").dataobj).astype(np.int64)
    return torch.from_numpy(organ_patch_task(image, labels, ORGAN_CLASSES, size=64)[0])


def summarize(out: Path, reductions: list[str], seeds: list[int]) -> dict:
    """Mean +- std over the finished seeds of each reduction (fine-tuned AUC / accuracy / F1, linear-phase AUC,
    training seconds) and linear CKA per ResNet stage between the ALL and HASH-6 encoders of one seed (on the
    downstream images, eval mode), into ``summary.json`` and ``summary.md``."""
    rows, table = {}, {}
    for name in [*reductions, "scratch"]:
        runs = []
        for seed in seeds:
            folder = out / "scratch" / f"seed{seed}" if name == "scratch" else out / "pretrain" / f"{name}_seed{seed}"
            res = folder / "results.json" if name == "scratch" else folder / "finetune" / "results.json"
            if not res.exists():
                continue
            r = json.loads(res.read_text())["runs"][0]
            timing = folder / "timing.json"
            if timing.exists():
                r.update(json.loads(timing.read_text()))
            runs.append(r)
        if runs:
            rows[name] = runs
            table[name] = {
                k: (
                    float(np.mean([r[k] for r in runs])),
                    float(np.std([r[k] for r in runs], ddof=1)) if len(runs) > 1 else 0.0,
                )
                for k in ("auc", "accuracy", "f1", "linear_auc", "linear_accuracy", "train_seconds", "slices")
                if all(k in r for r in runs)
            }
            table[name]["n"] = len(runs)
    cka = {}
    images = None
    for seed in seeds:
        a, b = (
            out / "pretrain" / f"all_seed{seed}" / "models/model.pt",
            out / "pretrain" / f"hash6_seed{seed}" / "models/model.pt",
        )
        if a.exists() and b.exists():
            images = _organ_images() if images is None else images
            feats = []
            for path in (a, b):
                net = resnet_backbone("resnet18", 2, 1)
                net.load_state_dict(torch.load(path, weights_only=True))
                feats.append(stage_features(net, images))
            cka[seed] = {k: linear_cka(feats[0][k], feats[1][k]) for k in feats[0]}
    summary = {"table": table, "cka_all_vs_hash6": cka, "runs": rows}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    lines = [
        "| pre-training data | slices | seeds | fine-tuned AUC | accuracy | macro F1 | linear-phase AUC | linear-phase acc. | training s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in table.items():

        def fmt(k, digits=3, t=t):
            return f"{t[k][0]:.{digits}f} +- {t[k][1]:.{digits}f}" if k in t else "-"

        slices = f"{t['slices'][0]:.0f}" if "slices" in t else "-"
        lines.append(
            f"| {name} | {slices} | {t['n']} | {fmt('auc')} | {fmt('accuracy')} | {fmt('f1')} | {fmt('linear_auc')} | "
            f"{fmt('linear_accuracy')} | {fmt('train_seconds', digits=0)} |"
        )
    if cka:
        stages = list(next(iter(cka.values())))
        lines += ["", "| linear CKA, ALL vs HASH-6 | " + " | ".join(stages) + " |", "|---" * (len(stages) + 1) + "|"]
        for seed, v in cka.items():
            lines.append(f"| seed {seed} | " + " | ".join(f"{v[k]:.3f}" for k in stages) + " |")
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return summary


if __name__ == "__main__":
    main()
