"""The radiomics view of Zhao & Yang (MICCAI 2021, Sec. 2.3) as datalist entries: the parameter file with the bundle's
LoG sigmas, and each case's feature vector joined to its datalist item by id, with a bank index (0 .. N-1) for the
memory banks of Sec. 2.2."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np

from .params import load_params
from .table import read_feature_csv

__all__ = ["attach_radiomics", "radiomics_params"]

logger = logging.getLogger(__name__)


def radiomics_params(
    params: str | os.PathLike | Mapping,
    log_sigma: Sequence[float] | None = None,
    setting: Mapping | None = None,
) -> dict:
    """:func:`~medssl_monai.radiomics.load_params` with ``setting`` overrides and, when ``log_sigma`` is given, the
    LoG image type's sigmas replaced (e.g. ``[1, 2, 3]`` for 28^3 MedMNIST volumes; the paper's file uses 1..5).
    An empty ``log_sigma`` removes the LoG image type."""
    loaded = load_params(params, overrides=setting)
    if log_sigma is not None:
        types = dict(loaded.get("imageType") or {})
        if len(log_sigma):
            types["LoG"] = {**dict(types.get("LoG") or {}), "sigma": [float(s) for s in log_sigma]}
        else:
            types.pop("LoG", None)
        loaded["imageType"] = types
        loaded = load_params(loaded)
    return loaded


def attach_radiomics(
    datalist: Sequence[Mapping], features_csv: str | os.PathLike, key: str = "radiomics", index_key: str = "index"
) -> list[dict]:
    """Copies of the ``datalist`` items that have a finite feature row in ``features_csv`` (written by
    :func:`~medssl_monai.radiomics.extract_to_csv`), each with ``key`` (float32 vector, raw, unscaled) and
    ``index_key`` (its position in the returned list: the memory-bank row). Cases whose extraction failed are left
    out and logged. Raises ``ValueError`` when no case remains."""
    ids, names, values, _ = read_feature_csv(features_csv)
    row = {case: i for i, case in enumerate(ids)}
    items, dropped = [], []
    for item in datalist:
        case = str(item["id"])
        r = row.get(case)
        if r is None or not np.isfinite(values[r]).all():
            dropped.append(case)
            continue
        items.append({**item, key: values[r].astype(np.float32), index_key: len(items)})
    if dropped:
        logger.warning("%d case(s) have no radiomics features and are left out: %s", len(dropped), dropped[:10])
    if not items:
        raise ValueError(f"no case of the datalist has finite radiomics features in '{features_csv}'.")
    logger.info("Radiomics view: %d case(s), %d features each.", len(items), len(names))
    return items
