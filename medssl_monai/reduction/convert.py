"""8-bit conversion of CT slices before hashing / SSIM / MI (Wolf et al. 2024, Sec. 2.1 and the released
preprocessing, which stores every slice as an 8-bit PNG after a per-slice min-max mapping to 0..255).

Definition (exact, for integer input): ``y = floor(255 * (x - lo) / (hi - lo) + 1/2)``, i.e. the exact rational value
rounded half up, with ``lo, hi`` the slice's min and max (default) or a HU window ``(low, high)`` after clipping
``x`` to it. A constant slice (``hi == lo``) maps to 0. The released script computes
``255 * (x - min) / (max - min + 1e-5)`` and lets OpenCV round it half to even when writing the PNG; the two
differ only on exact halves and values within 1e-5 of one, which we accept for a definition that is exact.

Speed: integer slices whose range ``hi - lo`` is at most 2**14 (CT: about 4,000 HU) are converted in float32,
larger ranges and float input in float64; both give the exact rounding above for integer input (``255 * t`` is
exact, the division is correctly rounded, and a quotient that is not a half integer lies at least
``1 / (2 (hi - lo))`` from one, more than the float32 rounding error for ``hi - lo <= 2**14``).
Float input is converted with the same formula in float64 arithmetic. Pillow is never given int16 data
(``Image.fromarray`` on int16 would clip or reinterpret it).
"""

from __future__ import annotations

import numpy as np

from ._checks import check_stack

__all__ = ["to_uint8"]

_F32_MAX_RANGE = 1 << 14


def _convert_one(s: np.ndarray, lo: float, hi: float, clip: bool, out: np.ndarray, buf32: np.ndarray) -> None:
    d = hi - lo
    if d <= 0:
        out[...] = 0
        return
    exact_int = s.dtype.kind in "biu" and float(lo).is_integer() and float(hi).is_integer()
    if exact_int and d <= _F32_MAX_RANGE:
        t = buf32
        np.copyto(t, s, casting="unsafe")
        ftype = np.float32
    else:
        t = s.astype(np.float64)
        ftype = np.float64
    if clip:
        np.clip(t, ftype(lo), ftype(hi), out=t)
    t -= ftype(lo)
    t *= ftype(255)
    t /= ftype(d)
    t += ftype(0.5)
    np.floor(t, out=t)
    np.copyto(out, t, casting="unsafe")


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
        low, high = (float(v) for v in window)
        if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
            raise ValueError(f"window must be (low, high) with finite low < high, got {window}.")
    out = np.empty(x.shape, dtype=np.uint8)
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
