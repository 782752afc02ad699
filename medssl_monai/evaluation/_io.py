"""JSON conversion for the evaluation outputs, and the project's atomic writers (:mod:`medssl_monai.utils`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..utils import atomic_write_bytes, atomic_write_text

__all__ = ["atomic_write_bytes", "atomic_write_text", "jsonable"]


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into Python ones and NaN/inf into ``None`` (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
