"""PyRadiomics parameters: load a parameter file (YAML/JSON) or a dict, validate it, and give it a stable digest.

The parameter layout is PyRadiomics' own (``imageType``, ``featureClass``, ``setting``, ``voxelSetting``; see
https://pyradiomics.readthedocs.io/en/latest/customization.html), validated by
:class:`radiomics.featureextractor.RadiomicsFeatureExtractor` against ``radiomics/schemas/paramSchema.yaml``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import yaml

__all__ = ["load_params", "make_extractor", "params_digest", "params_json"]


def load_params(params: str | os.PathLike | Mapping, overrides: Mapping | None = None) -> dict:
    """The PyRadiomics parameters as a validated dict.

    ``params`` is a parameter file (YAML or JSON, e.g. ``bundles/3dsiam/configs/radiomics.yaml``) or a dict with the
    same layout. ``overrides`` update the ``setting`` section (e.g. ``{"binWidth": 0.1}`` for z-scored MR) without
    editing the file. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the source for a file
    that is not a mapping or that PyRadiomics' schema rejects (unknown class, feature, image type or setting).
    """
    if isinstance(params, Mapping):
        source, loaded = "parameter dict", copy.deepcopy(dict(params))
    else:
        path = Path(params).expanduser()
        source = f"parameter file '{path}'"
        if not path.is_file():
            raise FileNotFoundError(f"PyRadiomics {source} does not exist.")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"cannot read PyRadiomics {source}: {err}") from err
        if not isinstance(loaded, dict):  # an invalid file, like a schema error below: ValueError
            raise ValueError(  # noqa: TRY004
                f"PyRadiomics {source} must hold a mapping (imageType, featureClass, setting), "
                f"got {type(loaded).__name__}."
            )
    if overrides:
        loaded["setting"] = {**(loaded.get("setting") or {}), **dict(overrides)}
    try:
        make_extractor(loaded)
    except Exception as err:  # pykwalify SchemaError, ValueError, TypeError from PyRadiomics' schema functions
        raise ValueError(f"invalid PyRadiomics {source}: {err}") from err
    return loaded


def params_json(params: Mapping) -> str:
    """Canonical JSON of the parameters (sorted keys): equal parameters give equal text, whatever their source."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def params_digest(params: Mapping) -> str:
    """SHA-256 of :func:`params_json`."""
    return hashlib.sha256(params_json(params).encode()).hexdigest()


def make_extractor(params: Mapping | str):
    """A :class:`~radiomics.featureextractor.RadiomicsFeatureExtractor` for ``params`` (a dict or its
    :func:`params_json`), built once per process and parameter set (validation by pykwalify is not free).
    ``additionalInfo`` is switched off: the ``diagnostics_*`` entries it adds are not features."""
    return _extractor(params if isinstance(params, str) else params_json(params))


@functools.lru_cache(maxsize=8)
def _extractor(canonical: str):
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    extractor = RadiomicsFeatureExtractor(json.loads(canonical))
    # provenance (diagnostics_* entries: versions, image hashes, ROI statistics) is dropped from our tables; computing
    # it costs more than the features on large images (SimpleITK hashes of the whole image and mask)
    extractor.settings["additionalInfo"] = False
    return extractor
