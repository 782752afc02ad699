"""8-bit conversion of CT slices before hashing / SSIM / MI (Wolf et al. 2024, Sec. 2.1 and the released
preprocessing, which stores every slice as an 8-bit PNG after a per-slice min-max mapping to 0..255).

Definition (exact, for integer input): ``y = floor(255 * (x - lo) / (hi - lo) + 1/2)``, i.e. the exact rational value
rounded half up, with ``lo, hi`` the slice's min and max (default) or a HU window ``(low, high)`` after clipping
``x`` to it. A constant slice (``hi == lo``) maps to 0. The released script computes
``255 * (x - min) / (max - min + 1e-5)`` and lets OpenCV round it half to even when writing the PNG; the two
differ only on exact halves and values within 1e-5 of one, which we accept for a definition that is exact.

Speed: integer slices whose range ``d = hi - lo`` is at most 2**12 (CT: about 4,000 HU) are converted in float32
as ``trunc(v * fl(255/d) + fl(1/2 + 1/(4d)))`` with ``v = x - lo`` (exact in float32): four passes, no division.
Exactness: a quotient ``q = 255 v / d`` whose ``q + 1/2`` is not an integer lies at least ``1 / (2d)`` from one,
so adding ``1/(4d)`` leaves ``floor`` unchanged if the computed value is within ``1/(4d)`` of the true one; an exact
half (tie) is lifted by ``1/(4d)`` above the integer, i.e. rounded up. The float32 error is at most
``(3 q + 1.5) * 2**-24 <= 767 * 2**-24 < 1/(4d)`` for ``d <= 5468``; the limit 2**12 keeps a 25 % margin. Larger
ranges use ``floor(255 * (x - lo) / d + 1/2)`` in float64 (``255 v`` exact, the division correctly rounded, a
non-half quotient at least ``1/(2d)`` from a half).
Float input is converted with the same formula in float64 arithmetic. Pillow is never given int16 data
(``Image.fromarray`` on int16 would clip or reinterpret it).
"""

from __future__ import annotations

import numpy as np

from ._checks import check_stack
from .kernels import hashing as hash_kernels
from .kernels import pairwise as pairwise_kernels

__all__ = ["check_window", "to_uint8"]

_F32_MAX_RANGE = 1 << 12


def _convert_one(s: np.ndarray, lo: float, hi: float, clip: bool, out: np.ndarray, buf32: np.ndarray) -> None:
    d = hi - lo
    if d <= 0:
        out[...] = 0
        return
    exact_int = s.dtype.kind in "biu" and float(lo).is_integer() and float(hi).is_integer()
    if exact_int and d <= _F32_MAX_RANGE:
        # floor(v * fl(255/d) + fl(1/2 + 1/(4d))) in float32, v = x - lo exact (module docstring)
        t = buf32
        np.subtract(s, np.float32(lo), out=t, dtype=np.float32)
        if clip:
            np.clip(t, np.float32(0), np.float32(d), out=t)
        t *= np.float32(255.0 / d)
        t += np.float32(0.5 + 0.25 / d)
        np.copyto(out, t, casting="unsafe")  # truncation == floor: t > 0
        return
    t = s.astype(np.float64)
    if clip:
        np.clip(t, lo, hi, out=t)
    t -= lo
    t *= 255.0
    t /= d
    t += 0.5
    np.floor(t, out=t)
    np.copyto(out, t, casting="unsafe")


def check_window(window: tuple[float, float]) -> tuple[float, float]:
    """``(low, high)`` as floats, or ``ValueError`` unless both are finite with ``low < high``."""
    low, high = (float(v) for v in window)
    if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
        raise ValueError(f"window must be (low, high) with finite low < high, got {window}.")
    return low, high


def to_uint8(slices: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """Map (N, H, W) slices of any numeric dtype (int16 HU, float) to uint8 0..255, slice by slice.

    ``window=None``: per-slice min-max (the published preprocessing). ``window=(low, high)``: clip to the HU
    window, then map ``low -> 0`` and ``high -> 255``. Rounding: exact value rounded half up (module docstring).
    Raises ``ValueError`` for a shape other than (N, H, W), an empty volume, NaN or infinite values, or a window
    with ``high <= low``.
    """
    x = check_stack(slices, "slices")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError("slices contain infinite values.")
    if x.dtype == np.bool_:
        x = x.astype(np.uint8)
    if window is not None:
        low, high = check_window(window)
    out = np.empty(x.shape, dtype=np.uint8)
    if (
        pairwise_kernels.use_numba() and x.dtype in pairwise_kernels.KERNEL_DTYPES
    ):  # same operations, one pass per slice (kernels.hashing)
        lo_hi = (low, high) if window is not None else (0.0, 0.0)
        hash_kernels.to_uint8_kernel(np.ascontiguousarray(x), window is not None, *lo_hi, x.dtype.kind in "iu", out)
        return out
    buf32 = np.empty(x.shape[1:], dtype=np.float32)
    if window is None:
        flat = x.reshape(len(x), -1)
        los, his = flat.min(axis=1), flat.max(axis=1)
        for i in range(len(x)):
            _convert_one(x[i], float(los[i]), float(his[i]), False, out[i], buf32)
    else:
        for i in range(len(x)):
            _convert_one(x[i], low, high, True, out[i], buf32)
    return out
