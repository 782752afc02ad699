"""Input checks shared by the reduction modules: one clear ``ValueError`` per problem."""

from __future__ import annotations

import numpy as np

__all__ = ["check_square", "check_stack"]


def check_stack(images: np.ndarray, name: str = "images", dtype: type | None = None) -> np.ndarray:
    """Return ``images`` as an (N, H, W) array, or raise ``ValueError`` naming what is wrong.

    ``dtype``, when given, is the exact dtype required (``np.uint8`` for the 8-bit similarity measures).
    An empty stack (N = 0) or empty slices (H or W = 0) are rejected; NaN is rejected for float input.
    """
    x = np.asarray(images)
    if x.ndim != 3:
        raise ValueError(f"{name} must be a stack of slices with shape (N, H, W), got shape {x.shape}.")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty volume (N = 0 slices).")
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(f"{name} has empty slices of shape {x.shape[1:]}.")
    if dtype is not None and x.dtype != dtype:
        raise ValueError(
            f"{name} must have dtype {np.dtype(dtype).name}, got {x.dtype.name} (convert with to_uint8 first)."
        )
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype.name}.")
    if x.dtype.kind == "f" and np.isnan(x).any():
        raise ValueError(f"{name} contains NaN.")
    return x


def check_square(matrix: np.ndarray, name: str = "similarity") -> np.ndarray:
    """Return ``matrix`` as a float64 (N, N) array with N >= 1 and no NaN, or raise ``ValueError``."""
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"{name} must be a square (N, N) matrix, got shape {m.shape}.")
    if m.shape[0] == 0:
        raise ValueError(f"{name} is empty (N = 0 slices).")
    m = m.astype(np.float64, copy=False)
    if np.isnan(m).any():
        raise ValueError(f"{name} contains NaN.")
    return m
