"""Reduce a whole dataset of CT volumes: one task per volume over a ``concurrent.futures.Executor``, a manifest of every
slice, per-volume statistics, failures reported, optional PNG export of the kept slices.

Wolf et al., "Less is More: Selective Reduction of CT Data for Self-Supervised Pre-Training" (Computers in Biology and
Medicine 2024), Sec. 2.1: the slices of each CT volume are compared pairwise and near-duplicates are removed before
contrastive pre-training (HASH with Hamming threshold 6 worked best, Sec. 3). Reduction is per volume, so volumes are
independent tasks: a local process pool by default, a Dask cluster with ``scheduler_address``
(:func:`medssl_monai.parallel.open_executor`), or this process with ``max_workers=0``.

Outputs under ``output_dir`` (each written to a temporary name, then renamed):

* ``manifest.csv``: ``volume, slice, source, kept`` -- one row per slice of every volume that was read, in volume-id
  and slice order; ``kept`` is 1 or 0;
* ``summary.json``: the settings, totals and one record per volume (slices, kept, kept fraction, timings);
* ``errors.csv``: ``volume, source, error`` for volumes that failed (absent when none did); their slices are not in
  the manifest, and the other volumes finish;
* with ``export_png``: ``slices/<volume>/<slice:04d>.png``, the kept slices as 8-bit greyscale PNG (the intensities
  the similarity saw). A volume's PNGs are written into a hidden temporary folder renamed into place when all are
  written, so a failed volume leaves no partial folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medssl_monai.data.ct_volumes import CTVolume, discover_volumes
from medssl_monai.parallel import describe_error, map_unordered, open_executor
from medssl_monai.utils import atomic_write_csv, atomic_write_text

from . import DEFAULT_EVERY_N, DEFAULT_TARGET_FRACTION, DEFAULT_THRESHOLDS, METHODS, reduce_volume, to_uint8

__all__ = ["MANIFEST_COLUMNS", "reduce_dataset", "reduce_one_volume"]

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("volume", "slice", "source", "kept")
ERROR_COLUMNS = ("volume", "source", "error")


def reduce_one_volume(volume: CTVolume, options: dict[str, Any], png_root: str | None = None) -> dict[str, Any]:
    """Worker task: read ``volume``, scale it to 8 bit (:func:`~medssl_monai.reduction.to_uint8` with
    ``options["window"]``), reduce it (:func:`~medssl_monai.reduction.reduce_volume` with the other ``options``) and,
    with ``png_root``, export the kept slices to ``png_root/<volume id>/``. Returns the volume's manifest rows and
    statistics; raises on any problem with the volume (the caller reports it)."""
    start = time.perf_counter()
    stack = volume.load()
    loaded = time.perf_counter()
    images = to_uint8(stack.array, window=options.get("window"))
    reduce_kwargs = {key: value for key, value in options.items() if key != "window"}
    keep = np.asarray(reduce_volume(images, **reduce_kwargs), dtype=bool)
    if keep.shape != (images.shape[0],):
        raise RuntimeError(f"reduce_volume returned a mask of shape {keep.shape} for {images.shape[0]} slices.")
    reduced = time.perf_counter()
    if png_root is not None:
        export_pngs(images, keep, Path(png_root) / volume.id)
    done = time.perf_counter()
    rows = [(volume.id, k, source, int(kept)) for k, (source, kept) in enumerate(zip(stack.sources, keep))]
    return {
        "volume": volume.id,
        "kind": volume.kind,
        "path": volume.path,
        "shape": [int(s) for s in stack.array.shape],
        "slices": int(keep.size),
        "kept": int(keep.sum()),
        "kept_fraction": float(keep.mean()) if keep.size else 0.0,
        "seconds_read": round(loaded - start, 4),
        "seconds_reduce": round(reduced - loaded, 4),
        "seconds_png": round(done - reduced, 4),
        "rows": rows,
    }


def export_pngs(images: np.ndarray, keep: np.ndarray, folder: Path) -> None:
    """Write ``images[k]`` for every kept ``k`` as ``folder/<k:04d>.png`` (8-bit greyscale), all or nothing: into a
    hidden temporary folder beside ``folder``, which then replaces it."""
    from PIL import Image

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        for k in np.flatnonzero(keep):
            Image.fromarray(np.ascontiguousarray(images[k]), mode="L").save(tmp / f"{k:04d}.png")
        os.chmod(tmp, 0o755)
        _replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_folder(new: Path, target: Path) -> None:
    """Put folder ``new`` at ``target``; an existing ``target`` is moved aside first and removed after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def reduce_dataset(
    dataset_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    method: str = "hash",
    threshold: float | None = None,
    target_fraction: float | None = None,
    variant: str = "exact",
    n: int | None = None,
    window: Sequence[float] | None = None,
    export_png: bool = False,
    executor: Executor | None = None,
    max_workers: int | None = None,
    scheduler_address: str | None = None,
    progress: bool = True,
    encoder: Any = None,
    device: str = "cpu",
    threads: int = 1,
) -> dict[str, Any]:
    """Reduce every CT volume under ``dataset_dir`` (:func:`~medssl_monai.data.ct_volumes.discover_volumes`) and write
    the manifest, summary and errors (see the module docstring) into ``output_dir``. Returns the summary.

    Args:
        dataset_dir: folder of NIfTI/NRRD volumes, DICOM series folders and/or slice-image folders (or one volume file).
        output_dir: created if needed; a folder inside ``dataset_dir`` is skipped when looking for volumes.
        method: one of :data:`~medssl_monai.reduction.METHODS` (``all``, ``every_n``, ``hash``, ``ssim``, ``mi``,
            ``deep``).
        threshold: similarity threshold of the method (HASH: Hamming distance; pairs at or under it are near-duplicates);
            None: the method's entry in :data:`~medssl_monai.reduction.DEFAULT_THRESHOLDS` (HASH: 6, the paper's best).
        target_fraction: instead of a threshold, remove slices until this fraction of each volume is left (the paper's
            "until a given number of slices is left", used for its 10 % comparison, Table 14).
        variant: ``exact`` (the paper's rule, Sec. 2.1) or ``released`` (the authors' released greedy HASH loop).
        n: EveryN's step (None: the library's default).
        window: ``(low, high)`` intensity window before scaling to 8 bit (e.g. ``(-1000, 1000)`` HU); None: each slice's
            own min-max (:func:`~medssl_monai.reduction.to_uint8`).
        export_png: also write the kept slices as PNG under ``output_dir/slices/<volume>/``.
        executor, max_workers, scheduler_address: where the volumes run (:func:`~medssl_monai.parallel.open_executor`):
            a given executor, a Dask scheduler address, a local process pool of ``max_workers`` (default: CPU count)
            or, with ``max_workers=0``, this process. With a Dask cluster, ``dataset_dir`` and ``output_dir`` must be
            on a file system the workers share.
        progress: show a tqdm progress bar (volumes).
        encoder: DeepNet only: a ``torch.nn.Module`` mapping ``(B, C, H, W)`` to feature vectors (grey slices are
            repeated to its C input channels), or the path of a TorchScript file (``torch.jit.save``). The deep method always runs in this process (one volume after the
            other; the network parallelises within a volume): a model is not shipped to worker processes.
        device: DeepNet only: where the encoder runs.
        threads: numba threads within one volume for the hash, SSIM and NMI kernels (same results). Volumes are the
            usual parallel unit: keep ``workers x threads`` at most the core count; more threads help when a few
            large volumes remain.
    """
    from tqdm.auto import tqdm

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got '{method}'.")
    if method == "deep" and encoder is None:
        raise ValueError(
            "the deep method needs an encoder: a TorchScript file or a torch.nn.Module (no ImageNet weights ship or "
            "download here; see the ct_slice_reduction docs)."
        )
    if variant not in ("exact", "released"):
        raise ValueError(f"variant must be 'exact' or 'released', got '{variant}'.")
    effective_threshold, effective_target = _effective_stop(method, threshold, target_fraction)
    if variant == "released" and method not in ("all", "every_n") and effective_target is not None:
        raise ValueError("the released variant takes a threshold only, not a target_fraction.")
    if target_fraction is not None and not 0.0 < target_fraction <= 1.0:
        raise ValueError(f"target_fraction must be in (0, 1], got {target_fraction}.")
    if n is not None and n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}.")
    if window is not None:
        window = tuple(float(v) for v in window)
        if len(window) != 2 or not window[0] < window[1]:
            raise ValueError(f"window must be (low, high) with low < high, got {window}.")
    output = Path(output_dir).expanduser()
    volumes = discover_volumes(dataset_dir, exclude=[output])
    output.mkdir(parents=True, exist_ok=True)

    options: dict[str, Any] = {"method": method, "threshold": threshold, "target_fraction": target_fraction}
    options["variant"] = variant
    if threads != 1:
        options["threads"] = threads
    if n is not None:
        options["n"] = n
    if method == "deep":
        options["encoder"] = _load_encoder(encoder)
        options["device"] = device
        if executor is not None or scheduler_address or max_workers not in (None, 0):
            logger.info("The deep method runs in this process (the encoder is not shipped to workers).")
        executor, scheduler_address, max_workers = None, None, 0
    options["window"] = window
    png_root = str(output / "slices") if export_png else None
    logger.info(
        "Reducing %d volume(s) from %s: method=%s, %s, variant=%s%s -> %s",
        len(volumes),
        dataset_dir,
        method,
        _describe_stop(method, effective_threshold, effective_target, n),
        variant,
        f", window={window}" if window else "",
        output,
    )

    results: dict[str, dict] = {}
    errors: dict[str, tuple[str, str, str]] = {}
    start = time.perf_counter()
    bar = tqdm(total=len(volumes), desc=f"reduce ({method})", unit="volume", disable=not progress)
    try:
        with open_executor(executor, max_workers, scheduler_address, len(volumes)) as pool:
            tasks = [(volume, options, png_root) for volume in volumes]
            for index, result, error in map_unordered(reduce_one_volume, tasks, pool):
                volume = volumes[index]
                if error is None:
                    results[volume.id] = result
                else:
                    errors[volume.id] = (volume.id, volume.path, describe_error(error))
                    logger.error("Volume %s (%s) failed: %s", volume.id, volume.path, errors[volume.id][2])
                    if png_root is not None:  # no PNGs from an earlier run beside a manifest without the volume
                        shutil.rmtree(Path(png_root) / volume.id, ignore_errors=True)
                bar.update(1)
                if errors:
                    bar.set_postfix(failed=len(errors))
    finally:
        bar.close()
    seconds = time.perf_counter() - start

    order = [volume.id for volume in volumes]
    rows = [row for vid in order if vid in results for row in results[vid]["rows"]]
    atomic_write_csv(output / "manifest.csv", MANIFEST_COLUMNS, rows)
    errors_csv = output / "errors.csv"
    failed = [errors[vid] for vid in order if vid in errors]
    if failed:
        atomic_write_csv(errors_csv, ERROR_COLUMNS, failed)
    else:
        errors_csv.unlink(missing_ok=True)
    per_volume = [{k: v for k, v in results[vid].items() if k != "rows"} for vid in order if vid in results]
    total = sum(r["slices"] for r in per_volume)
    kept = sum(r["kept"] for r in per_volume)
    summary = {
        "dataset_dir": str(dataset_dir),
        "output_dir": str(output),
        "method": method,
        "threshold": effective_threshold,
        "target_fraction": effective_target,
        "variant": variant,
        "n": (n or DEFAULT_EVERY_N) if method == "every_n" else None,
        "window": list(window) if window else None,
        "export_png": bool(export_png),
        "volumes": len(per_volume),
        "failed": len(failed),
        "slices": total,
        "kept": kept,
        "kept_fraction": kept / total if total else 0.0,
        "seconds": round(seconds, 3),
        "per_volume": per_volume,
        "errors": [{"volume": v, "source": s, "error": e} for v, s, e in failed],
    }
    atomic_write_text(output / "summary.json", json.dumps(summary, indent=2) + "\n")
    logger.info(
        "Kept %d of %d slices (%.1f %%) in %d volume(s) in %.1f s; %d volume(s) failed. Wrote %s%s.",
        kept,
        total,
        100.0 * summary["kept_fraction"],
        len(per_volume),
        seconds,
        len(failed),
        output / "manifest.csv",
        f" and {errors_csv}" if failed else "",
    )
    if volumes and not per_volume:
        raise RuntimeError(f"every volume failed ({len(failed)}); see {errors_csv}.")
    return summary


def _effective_stop(method: str, threshold: float | None, target_fraction: float | None) -> tuple:
    """``(threshold, target_fraction)`` that :func:`~medssl_monai.reduction.reduce_volume` will use: the given ones,
    else the method's :data:`~medssl_monai.reduction.DEFAULT_THRESHOLDS` entry, else the paper's 10 % target
    (:data:`~medssl_monai.reduction.DEFAULT_TARGET_FRACTION`); ``(None, None)`` for ``all`` and ``every_n``."""
    if method in ("all", "every_n"):
        return None, None
    if threshold is None and target_fraction is None:
        threshold = DEFAULT_THRESHOLDS.get(method)
        if threshold is None:
            target_fraction = DEFAULT_TARGET_FRACTION
    return threshold, target_fraction


def _describe_stop(method: str, threshold: float | None, target_fraction: float | None, n: int | None) -> str:
    if method == "every_n":
        return f"n={n if n is not None else 'default'}"
    parts = [f"threshold={threshold}"] if threshold is not None else []
    parts += [f"target_fraction={target_fraction}"] if target_fraction is not None else []
    return ", ".join(parts) or "keep all"


def _load_encoder(encoder: Any) -> Any:
    """A TorchScript file path -> the loaded module, wrapped so that its input channel count (its first convolution's)
    is visible to :func:`~medssl_monai.reduction.input_channels`; anything else (a module, None) as it is."""
    if not isinstance(encoder, (str, os.PathLike)):
        return encoder
    try:
        scripted = torch.jit.load(os.fspath(encoder), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as err:
        raise ValueError(f"cannot load the encoder '{encoder}' as TorchScript (torch.jit.save): {err}") from err
    channels = next((m.in_channels for m in scripted.modules() if isinstance(getattr(m, "in_channels", None), int)), 1)
    return _ScriptedEncoder(scripted, channels)


class _ScriptedEncoder(nn.Module):
    """A loaded TorchScript encoder with the ``in_channels`` attribute the deep similarity reads."""

    def __init__(self, module: nn.Module, in_channels: int) -> None:
        super().__init__()
        self.module = module
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)
