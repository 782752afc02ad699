"""Per-case cache of radiomics features: one JSON file per case, named by a key of everything the features depend on.

The key is the SHA-256 of the image content, the mask content (or the rule that made the mask), the PyRadiomics
parameters (:func:`~medssl_monai.radiomics.params.params_json`) and the PyRadiomics version
(:func:`case_key`). A changed file, parameter or PyRadiomics version therefore misses the cache and is recomputed;
renaming a case or moving its files does not. Entries are written to a temporary file and renamed into place
(``os.replace``), so an interrupted run leaves whole entries only, and the next run resumes from them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from ..utils import atomic_write_text
from .images import source_digest
from .params import params_json

__all__ = ["CACHE_FORMAT", "FeatureCache", "case_key"]

logger = logging.getLogger(__name__)

#: Version of the entry layout and of the preprocessing in :func:`~medssl_monai.radiomics.images.prepare_case`; bump it
#: when either changes, so old entries stop matching.
CACHE_FORMAT = 1


def _pyradiomics_version() -> str:
    import radiomics

    return str(radiomics.__version__)


def case_key(image, mask, params: Mapping, binarize_mask: bool = False) -> str:
    """Cache key of one case: hex SHA-256 over the content digests of ``image`` and ``mask`` (paths, DICOM folders or
    arrays; ``mask=None`` is the image's non-zero region), ``binarize_mask``, the parameters and the PyRadiomics
    version. Raises ``FileNotFoundError`` for a missing file."""
    fields = {
        "format": CACHE_FORMAT,
        "image": source_digest(image, "image"),
        "mask": "image!=0" if mask is None else source_digest(mask, "mask"),
        "binarize_mask": bool(binarize_mask) and mask is not None,
        "params": params_json(params),
        "pyradiomics": _pyradiomics_version(),
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


class FeatureCache:
    """A folder of ``<key>.json`` entries: ``{"format", "id", "pyradiomics", "features": {name: value}}``.

    Any process may read it; :meth:`put` writes atomically. An unreadable entry (edited by hand, another format) is a
    miss, logged, and is overwritten by the next :meth:`put`.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder).expanduser()

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> dict[str, float] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text())
            if entry.get("format") != CACHE_FORMAT:
                raise ValueError(f"format {entry.get('format')!r}, expected {CACHE_FORMAT}")
            return {str(k): float(v) for k, v in entry["features"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            logger.warning("Ignoring unreadable radiomics cache entry %s (%s): the case is recomputed.", path, err)
            return None

    def put(self, key: str, case_id: str, features: Mapping[str, float]) -> Path:
        entry = {
            "format": CACHE_FORMAT,
            "id": str(case_id),
            "pyradiomics": _pyradiomics_version(),
            "features": {str(k): float(v) for k, v in features.items()},
        }
        path = self.path(key)
        # atomic (readers see the old entry or the new one), without fsync: it doubled the time per 28^3 case, and
        # an entry emptied by a power cut is a miss in get(), so the case is recomputed
        atomic_write_text(path, json.dumps(entry, indent=1), fsync=False)  # NaN is written as NaN, json reads it back
        return path

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*.json")) if self.folder.is_dir() else 0
