"""PyRadiomics feature extraction over a datalist: per-case cache, parallel map over a ``concurrent.futures.Executor``.

PyRadiomics: van Griethuysen et al., "Computational Radiomics System to Decode the Radiographic Phenotype", Cancer
Research 77(21) 2017. The 3dsiam bundle fuses these features with its SSL embedding (Li et al., MICCAI 2021).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medssl_monai.parallel import describe_error, map_unordered, open_executor

from .cache import FeatureCache, case_key
from .images import prepare_case
from .params import load_params, make_extractor, params_json
from .table import write_feature_csv

__all__ = ["RadiomicsResult", "extract_case", "extract_features", "extract_to_csv"]

logger = logging.getLogger(__name__)


@dataclass
class RadiomicsResult:
    """Features of the cases that succeeded, in datalist order, and the cases that failed.

    ``values[i, j]`` is feature ``names[j]`` of case ``ids[i]``; ``labels`` are the datalist's class labels when every
    successful case has one, else None. ``failures`` lists ``(id, "ErrorType: message")``. ``cached`` and ``computed``
    count the cases read from the cache and extracted in this run.
    """

    ids: list[str]
    names: list[str]
    values: np.ndarray
    labels: np.ndarray | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    cached: int = 0
    computed: int = 0

    def feature_classes(self) -> list[str]:
        """The ``<imageType>_<class>`` groups present, in column order (e.g. ``original_glcm``)."""
        return list(dict.fromkeys(name.rsplit("_", 1)[0] for name in self.names))


class _GlcmSumAverageNotice(logging.Filter):
    """Drop the notice PyRadiomics' GLCM logs for every case with the default symmetric GLCM ("Sum Average = 2 * Joint
    Average"): it says nothing about the case and would be repeated once per case."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "only 1 needs to be calculated" not in record.getMessage()


def _quiet_glcm_notice() -> None:
    """PyRadiomics logs each feature class of each case at INFO ("Computing glcm"): thousands of lines per dataset
    under a bundle's INFO logging. Keep its warnings and errors; our progress bar and summary report the run."""
    radiomics_logger = logging.getLogger("radiomics")
    if radiomics_logger.level in (logging.NOTSET, logging.DEBUG, logging.INFO):
        radiomics_logger.setLevel(logging.WARNING)
    glcm_logger = logging.getLogger("radiomics.glcm")
    if not any(isinstance(f, _GlcmSumAverageNotice) for f in glcm_logger.filters):
        glcm_logger.addFilter(_GlcmSumAverageNotice())


def extract_case(image, mask, params: Mapping | str, binarize_mask: bool = False) -> dict[str, float]:
    """Features of one case as ``{name: value}``, in PyRadiomics' order; ``diagnostics_*`` and any other non-numeric
    entries are dropped.

    ``image``/``mask``: paths, DICOM folders or arrays (see :func:`~medssl_monai.radiomics.images.prepare_case` for the
    ROI rules and the checks; ``mask=None``: the image's non-zero voxels); ``params``: a parameter dict or its
    :func:`~medssl_monai.radiomics.params.params_json`. Raises on any problem with the case.
    """
    _quiet_glcm_notice()
    extractor = make_extractor(params)
    image, mask = prepare_case(image, mask, extractor.settings, binarize_mask)
    try:
        output = extractor.execute(image, mask)
    except ValueError as err:
        if "geometry mismatch" not in str(err):
            raise
        raise ValueError(f"{err} (image: {_geometry(image)}; mask: {_geometry(mask)})") from err
    features: dict[str, float] = {}
    for name, value in output.items():
        if name.startswith("diagnostics_"):
            continue
        try:
            features[name] = float(value)
        except (TypeError, ValueError):
            continue
    if not features:
        raise ValueError("PyRadiomics returned no numeric feature (is any feature class enabled?).")
    return features


def _geometry(image) -> str:
    spacing = ", ".join(f"{v:g}" for v in image.GetSpacing())
    origin = ", ".join(f"{v:g}" for v in image.GetOrigin())
    return f"spacing ({spacing}), origin ({origin}), direction {tuple(round(v, 6) for v in image.GetDirection())}"


def _run_case(case_id: str, image, mask, params: str, binarize_mask: bool) -> tuple[str, dict | None, str | None]:
    """Worker task: ``(id, features, None)`` or ``(id, None, "ErrorType: message")``; never raises for a bad case."""
    try:
        return case_id, extract_case(image, mask, params, binarize_mask), None
    except Exception as err:  # noqa: BLE001 - every failure of one case is reported with its id, the others go on
        return case_id, None, describe_error(err)


def _init_worker() -> None:
    """Process-pool initializer: one ITK thread per worker process (the pool is the parallelism), quiet GLCM notice."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    _quiet_glcm_notice()


def _check_datalist(datalist: Sequence[Mapping]) -> list[Mapping]:
    items = list(datalist)
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or "image" not in item or "id" not in item:
            raise ValueError(f"datalist item {i} must be a dict with 'id' and 'image' keys, got {item!r:.200}.")
        case = str(item["id"])
        if case in seen:
            raise ValueError(f"datalist ids must be unique: '{case}' is items {seen[case]} and {i}.")
        seen[case] = i
    return items


def extract_features(
    datalist: Sequence[Mapping],
    params: str | os.PathLike | Mapping,
    cache_dir: str | os.PathLike | None = None,
    executor: Executor | None = None,
    max_workers: int | None = None,
    scheduler_address: str | None = None,
    progress: bool = True,
    binarize_mask: bool = False,
) -> RadiomicsResult:
    """PyRadiomics features of every case of ``datalist``.

    Args:
        datalist: dicts with ``id``, ``image``, optional ``mask`` and ``label`` (the readers of
            :mod:`medssl_monai.data`). ``image``/``mask`` are file paths (NIfTI, NRRD ...), DICOM series folders or
            numpy arrays; arrays are ``(D, H, W)`` volumes with 1 mm spacing. **An item without a mask uses the
            image's non-zero voxels as the ROI** (MedMNIST volumes have none; for AdrenalMNIST3D, whose volumes are
            0/255 shapes, that ROI is the gland and its intensity is flat: texture features take their flat-region
            values, they do not fail). Otherwise the ROI is the mask's ``label`` setting (default 1), or every non-zero
            mask voxel with ``binarize_mask`` (multi-class segmentations such as BraTS' 1-4).
        params: PyRadiomics parameter file (YAML/JSON, e.g. ``bundles/3dsiam/configs/radiomics.yaml``) or dict,
            validated before any case runs (:func:`~medssl_monai.radiomics.params.load_params`).
        cache_dir: folder of per-case entries keyed by image content, mask content, parameters and PyRadiomics
            version (:mod:`~medssl_monai.radiomics.cache`); cases found there are not recomputed, and each computed
            case is stored as soon as it finishes, so an interrupted run resumes where it stopped. None: no cache.
            Failed cases are never cached. With a remote cluster, the cache is read and written by this process only.
        executor: any ``concurrent.futures.Executor`` to map the cases over, left open, e.g. a Dask cluster's
            ``distributed.Client(address).get_executor()``.
        max_workers: size of the local ``ProcessPoolExecutor`` used when neither ``executor`` nor
            ``scheduler_address`` is given (default: CPU count, at most one per case); 0 runs the cases in this
            process, one after the other.
        scheduler_address: address of a Dask scheduler (``tcp://host:8786``); a ``distributed.Client`` is opened on
            it for this call and closed after.
        progress: show a tqdm progress bar.
        binarize_mask: take every non-zero mask voxel as ROI.

    Returns:
        :class:`RadiomicsResult`. Feature names are in PyRadiomics' output order (shape, then image type by image
        type, class by class), in order of first appearance over the cases in datalist order, so the same datalist
        and parameters give the same columns; a feature missing for a case (none with one parameter set) is NaN.

    A case that fails (missing or unreadable file, not a 2D or 3D image, NaN/inf voxels, image/mask geometry mismatch,
    empty ROI, an error inside PyRadiomics) is reported in ``failures`` with its id and error and logged; the other
    cases go on.
    """
    from tqdm.auto import tqdm

    params = load_params(params)
    canonical = params_json(params)
    items = _check_datalist(datalist)
    cache = FeatureCache(cache_dir) if cache_dir is not None else None

    features: dict[str, dict[str, float]] = {}
    errors: dict[str, str] = {}
    todo: list[tuple[Mapping, str | None]] = []
    for item in items:
        case = str(item["id"])
        key = None
        if cache is not None:
            try:
                key = case_key(item["image"], item.get("mask"), params, binarize_mask)
            except OSError as err:  # a missing or unreadable file fails this case only
                errors[case] = describe_error(err)
                continue
            hit = cache.get(key)
            if hit is not None:
                features[case] = hit
                continue
        todo.append((item, key))
    cached = len(features)

    bar = tqdm(total=len(items), initial=cached + len(errors), desc="radiomics", unit="case", disable=not progress)
    keys = {str(item["id"]): key for item, key in todo}

    def finish(case: str, result: dict | None, error: str | None) -> None:
        if result is not None:
            features[case] = result
            if cache is not None:
                cache.put(keys[case], case, result)
        else:
            errors[case] = error or "unknown error"
        bar.update(1)
        if errors:
            bar.set_postfix(failed=len(errors))

    try:
        if todo:
            with open_executor(executor, max_workers, scheduler_address, len(todo), _init_worker) as pool:
                args = [(str(it["id"]), it["image"], it.get("mask"), canonical, binarize_mask) for it, _ in todo]
                for index, outcome, error in map_unordered(_run_case, args, pool):
                    if error is None:
                        finish(*outcome)
                    else:  # a crashed worker, a pickling error ... (_run_case itself never raises)
                        finish(args[index][0], None, describe_error(error))
    finally:
        bar.close()

    computed = len(features) - cached
    return _assemble(items, features, errors, cached, computed)


def _assemble(items, features, errors, cached, computed) -> RadiomicsResult:
    ids = [str(it["id"]) for it in items if str(it["id"]) in features]
    names = list(dict.fromkeys(name for case in ids for name in features[case]))
    values = np.full((len(ids), len(names)), np.nan, dtype=np.float64)
    column = {name: j for j, name in enumerate(names)}
    for i, case in enumerate(ids):
        for name, value in features[case].items():
            values[i, column[name]] = value
    labelled = [it for it in items if str(it["id"]) in features]
    labels = None
    if labelled and all(it.get("label") is not None for it in labelled):
        try:
            labels = np.asarray([int(it["label"]) for it in labelled], dtype=np.int64)
        except (TypeError, ValueError) as err:
            logger.warning("Radiomics: datalist labels are not class indices (%s): no labels in the result.", err)
    failures = [(str(it["id"]), errors[str(it["id"])]) for it in items if str(it["id"]) in errors]
    logger.info(
        "Radiomics: %d case(s), %d from the cache, %d computed, %d failed; %d features.",
        len(items),
        cached,
        computed,
        len(failures),
        len(names),
    )
    for case, message in failures:
        logger.error("  radiomics failed for case %s: %s", case, message)
    return RadiomicsResult(ids, names, values, labels, failures, cached, computed)


def extract_to_csv(
    datalist: Sequence[Mapping],
    params: str | os.PathLike | Mapping,
    output_csv: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    **kwargs,
) -> Path:
    """:func:`extract_features`, written as a feature CSV (:func:`~medssl_monai.radiomics.table.write_feature_csv`:
    ``id, [label,] features``) plus ``<stem>_errors.csv`` (``id, error``) when cases failed, as
    :class:`~medssl_monai.engines.handlers.EmbeddingWriter` does; a stale errors file from an earlier run is removed.

    ``cache_dir`` defaults to ``<output_csv folder>/radiomics_cache``, so rerunning the same command resumes. Other
    keyword arguments go to :func:`extract_features`. Returns the CSV's path. Raises ``RuntimeError`` (after writing the
    errors file) when no case succeeded.
    """
    output_csv = Path(output_csv)
    cache_dir = output_csv.parent / "radiomics_cache" if cache_dir is None else cache_dir
    result = extract_features(datalist, params, cache_dir=cache_dir, **kwargs)
    errors_csv = output_csv.with_name(output_csv.stem + "_errors.csv")
    if result.failures:
        from medssl_monai.utils import atomic_write_csv

        atomic_write_csv(errors_csv, ["id", "error"], result.failures)
        logger.error("%d case(s) failed (listed in %s).", len(result.failures), errors_csv)
    else:
        errors_csv.unlink(missing_ok=True)
    if not result.ids:
        shown = "; ".join(f"{case}: {message}" for case, message in result.failures[:5])
        raise RuntimeError(f"radiomics extraction failed for every case ({len(result.failures)}): {shown}")
    write_feature_csv(output_csv, result.ids, result.names, result.values, result.labels)
    logger.info(
        "Wrote radiomics features of %d case(s) (%d features) to %s.", len(result.ids), len(result.names), output_csv
    )
    return output_csv
