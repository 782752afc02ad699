"""The kept CT slices of a reduction (``reduce.json`` / :func:`medssl_monai.reduction.run.reduce_dataset`) as 2D
training images.

The reduction folder holds ``manifest.csv`` (``volume, slice, source, kept``) and ``summary.json`` (the dataset folder
and the HU window it used). :func:`load_manifest_slices` re-reads each volume once
(:mod:`medssl_monai.data.ct_volumes`), maps its slices to 0..255 exactly as the reduction saw them
(:func:`medssl_monai.reduction.to_uint8`, the same window), keeps the slices marked ``kept`` and resizes them, so that
pre-training sees what the reduction chose: Wolf et al. (2024, Sec. 2) pre-train on the reduced slices exported as
8-bit images.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .ct_volumes import discover_volumes

__all__ = ["load_manifest_slices"]

logger = logging.getLogger(__name__)


def load_manifest_slices(
    reduction_dir: str | os.PathLike,
    image_size: int = 224,
    dataset_dir: str | os.PathLike | None = None,
    kept_only: bool = True,
) -> list[dict]:
    """One item ``{"image": (1, S, S) float32 in [0, 1], "id": "<volume>#<k>", "volume": id, "slice": k}`` per kept slice (every slice with
    ``kept_only=False``), in manifest order.

    Args:
        reduction_dir: the reduction's output folder (``manifest.csv`` and ``summary.json``), or the manifest itself.
        image_size: side ``S`` of the square training images (bilinear, anti-aliased resize of the whole slice;
            Wolf et al. resize to 224 for fine-tuning and crop 224 from 512 for pre-training).
        dataset_dir: where the volumes are, if they moved since the reduction (default: ``summary.json``'s).
        kept_only: only the slices the reduction kept.

    Raises ``FileNotFoundError`` for a missing manifest or summary, ``ValueError`` when no slice is selected or a
    volume of the manifest is no longer in the dataset folder.
    """
    from medssl_monai.reduction import to_uint8  # the reduction's 8-bit mapping, imported lazily (numba kernels)

    folder = Path(reduction_dir)
    manifest = folder if folder.suffix == ".csv" else folder / "manifest.csv"
    summary_path = manifest.parent / "summary.json"
    for path in (manifest, summary_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"reduction output '{path}' does not exist: run reduce.json first and pass its --output_dir."
            )
    summary = json.loads(summary_path.read_text())
    window = tuple(summary["window"]) if summary.get("window") else None
    wanted: dict[str, list[int]] = defaultdict(list)
    with manifest.open(newline="") as f:
        for row in csv.DictReader(f):
            if not kept_only or int(row["kept"]) == 1:
                wanted[row["volume"]].append(int(row["slice"]))
    if not wanted:
        raise ValueError(f"the manifest {manifest} selects no slice.")
    root = Path(dataset_dir) if dataset_dir is not None else Path(summary["dataset_dir"])
    volumes = {v.id: v for v in discover_volumes(root, exclude=[manifest.parent])}
    missing = sorted(set(wanted) - set(volumes))
    if missing:
        raise ValueError(f"volumes {missing[:5]} of {manifest} are not in {root} (pass dataset_dir).")
    items = []
    for vid in sorted(wanted):
        stack = volumes[vid].load()
        images = to_uint8(stack.array, window)
        index = np.asarray(wanted[vid])
        if index.max() >= len(images):
            raise ValueError(f"{manifest} lists slice {index.max()} of {vid}, which has {len(images)} slices.")
        x = torch.from_numpy(images[index].astype(np.float32) / 255.0)[:, None]
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
        items.extend(
            {"image": img.clamp(0, 1).numpy(), "id": f"{vid}#{int(k)}", "volume": vid, "slice": int(k)}
            for img, k in zip(x, index)
        )
    logger.info("Loaded %d slices of %d volume(s) from %s.", len(items), len(wanted), manifest)
    return items
