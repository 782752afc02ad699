"""dHash of CT slices, batched, bit-identical to ``imagehash.dhash`` (Wolf et al. 2024, Sec. 2.1 "HASH").

The paper: each slice is "compressed to the size of 9x8 pixel" with Pillow's antialiasing (LANCZOS) filter, then
each row of nine pixels gives eight bits, one where the right neighbour is larger; the 64-bit hashes of two slices
are compared with the Hamming distance (0 = most similar, 64 = most dissimilar). The authors' released code calls
``imagehash.dhash(PIL.Image)``; :func:`dhash` returns the same 64 bits as ``int(str(imagehash.dhash(img)), 16)``.

Exactness. Pillow's ``ImagingResample`` (``src/libImaging/Resample.c``) resizes in two separable passes, each on
8-bit data:

* per axis, ``precompute_coeffs``: ``scale = in / out``, ``filterscale = max(scale, 1)``,
  ``support = 3 * filterscale``; output ``o`` has centre ``c = (o + 0.5) * scale``, taps
  ``xmin = max(0, int(c - support + 0.5))`` .. ``xmax = min(in, int(c + support + 0.5))`` (exclusive) with weights
  ``lanczos((x - c + 0.5) / filterscale)``, ``lanczos(t) = sinc(t) sinc(t / 3)`` for ``-3 <= t < 3``, normalised to
  sum 1;
* ``normalize_coeffs_8bpc``: fixed point with ``PRECISION_BITS = 32 - 8 - 2 = 22`` bits,
  ``k = int(w * 2**22 +- 0.5)`` (rounded half away from zero);
* each output pixel is ``clip8((2**21 + sum_x pixel[x] * k[x]) >> 22)``: floor after adding one half, clipped to
  0..255, so the intermediate 9-column image is rounded and clipped to uint8 before the vertical pass;
* a pass is skipped when that axis keeps its size (``need_horizontal`` / ``need_vertical``); ``Image.resize``
  with the default ``reducing_gap=None`` does no ``reduce()`` pre-step, so nothing else happens;
* pass order: the published ``Resample.c`` runs the horizontal pass first; the installed Pillow 13.0.0 runs the
  vertical pass first when ``in_h > out_h`` and ``in_h - out_h > 2 * (in_w - out_w)`` (found by probing Pillow 13.0.0 over many sizes
  and output sizes, bit-exact on either side of that line; 512x512 -> 9x8 is horizontal first). Tests compare
  with Pillow on square, tall and wide slices, so a Pillow release that changes the rule fails them.

Here the integer weights are built once per input size and applied as float32 matrix products over the whole batch;
an entry whose float32 sum lies within a rigorous error bound of a rounding boundary (about 1 % of them) is
recomputed exactly in float64 (every partial sum is an integer below 2**53), so the floor/clip reproduce Pillow's
integer arithmetic bit for bit (checked against ``imagehash`` in the tests).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

from ._checks import check_stack

__all__ = ["dhash", "hamming", "pairwise_hamming", "pillow_lanczos_weights", "resize_lanczos_uint8"]

PRECISION_BITS = 32 - 8 - 2
_HALF = float(1 << (PRECISION_BITS - 1))
_ONE = float(1 << PRECISION_BITS)
HASH_WIDTH, HASH_HEIGHT = 9, 8  # imagehash.dhash(hash_size=8) resizes to (width 9, height 8)


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    return _sinc(x) * _sinc(x / 3.0) if -3.0 <= x < 3.0 else 0.0


@lru_cache(maxsize=64)
def pillow_lanczos_weights(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's fixed-point LANCZOS weights for one axis as an (out_size, in_size) int64 matrix.

    Follows ``precompute_coeffs`` and ``normalize_coeffs_8bpc`` of Pillow's ``Resample.c`` (full-image box
    ``(0, in_size)``), in double precision like the C code. The returned array is read-only (cached).
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 3.0 * filterscale
    ss = 1.0 / filterscale
    out = np.zeros((out_size, in_size), dtype=np.int64)
    for o in range(out_size):
        centre = (o + 0.5) * scale
        xmin = max(0, int(centre - support + 0.5))
        xmax = min(in_size, int(centre + support + 0.5))
        w = [_lanczos((x - centre + 0.5) * ss) for x in range(xmin, xmax)]
        total = sum(w)  # left-to-right like the C loop
        if total != 0.0:
            w = [v / total for v in w]
        out[o, xmin:xmax] = [int(-0.5 + v * _ONE) if v < 0 else int(0.5 + v * _ONE) for v in w]
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def _float_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(in, out) float32 weights ``k / 2**22`` (exact: ``|k| < 2**24``), the int64 ``k`` and an error bound.

    The bound covers a float32 dot product of ``in_size`` exact terms with pixels in 0..255 (any summation order,
    Higham's ``gamma_K * sum |p w|``) plus the rounding of adding one half, doubled for margin.
    """
    k = pillow_lanczos_weights(in_size, out_size)
    w = (k.astype(np.float64) / _ONE).astype(np.float32).T.copy()
    u = 2.0**-24
    gamma = in_size * u / (1 - in_size * u)
    bound = 2.0 * (gamma * 255.0 * float(np.abs(k).sum(axis=1).max()) / _ONE + 512.0 * u)
    w.setflags(write=False)
    return w, k, bound


@lru_cache(maxsize=64)
def _exact_weights(in_size: int, out_size: int) -> np.ndarray:
    k = pillow_lanczos_weights(in_size, out_size).astype(np.float64)
    k.setflags(write=False)
    return k


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()  # scanning the loaded libraries is slow: once per process


def _resample_axis(x: np.ndarray, in_size: int, out_size: int) -> np.ndarray:
    """One Pillow pass over the last axis of float32 integer-valued ``x`` (..., in) -> (..., out), rounded and
    clipped like ``clip8``. A float32 product gives ``floor(acc + 1/2)`` except within the error bound of a
    rounding boundary; those few entries are recomputed exactly in float64 (integers below 2**53)."""
    w, _, bound = _float_weights(in_size, out_size)
    k64 = _exact_weights(in_size, out_size)
    flat = x.reshape(-1, in_size)
    with _blas_controller().limit(limits=1, user_api="blas"):  # skinny product: one BLAS thread (fan out over volumes)
        acc = flat @ w
    acc += np.float32(0.5)
    out = np.floor(acc)
    unsure = np.abs(acc - np.rint(acc)) <= bound
    for c in range(out_size):
        rows = np.flatnonzero(unsure[:, c])
        if len(rows):
            exact = flat[rows].astype(np.float64) @ k64[c]
            out[rows, c] = np.floor((exact + _HALF) / _ONE)
    np.clip(out, 0.0, 255.0, out=out)
    return out.reshape(*x.shape[:-1], out_size)


def resize_lanczos_uint8(images: np.ndarray, width: int, height: int) -> np.ndarray:
    """Batched ``Image.fromarray(s).resize((width, height), Image.LANCZOS)`` for uint8 (N, H, W) slices.

    Returns float32 (N, height, width) holding the integers 0..255 that Pillow returns.
    """
    x = check_stack(images, dtype=np.uint8)
    return _resize_f32(x.astype(np.float32), width, height)


def _resize_f32(out: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = out.shape[1:]
    vertical_first = h > height and (h - height) > 2 * (w - width)  # Pillow 13.0.0's pass order (module docstring)
    if vertical_first and height != h:
        out = _resample_axis(out.swapaxes(1, 2), h, height).swapaxes(1, 2)
    if width != w:
        out = _resample_axis(out, w, width)
    if not vertical_first and height != h:
        out = _resample_axis(np.ascontiguousarray(out.swapaxes(1, 2)), h, height).swapaxes(1, 2)
    return out


def _bits_to_uint64(bits: np.ndarray) -> np.ndarray:
    """(N, 64) bools, row-major as imagehash flattens them, first bit most significant -> (N,) uint64."""
    packed = np.packbits(bits.astype(np.uint8), axis=1)  # (N, 8) bytes, big-endian bit order
    return packed.view(">u8").astype(np.uint64).reshape(-1)


def dhash(images: np.ndarray) -> np.ndarray:
    """64-bit difference hashes of uint8 (N, H, W) slices as (N,) uint64, equal to ``imagehash.dhash``.

    ``dhash(s[None])[0] == int(str(imagehash.dhash(PIL.Image.fromarray(s))), 16)``: LANCZOS resize to 9x8
    (width 9, height 8), bit ``(r, c)`` set where ``pixel[r, c + 1] > pixel[r, c]``, bits taken row by row with the
    first as the most significant (imagehash's hex string). Input must be uint8; convert CT values with
    :func:`medssl_monai.reduction.to_uint8` first.
    """
    x = check_stack(images, dtype=np.uint8)
    if x.shape[1:] == (HASH_HEIGHT, HASH_WIDTH):
        small = x.astype(np.int16)  # Pillow returns a copy, no resampling
    else:
        # chunks of ~8 MB float32 stay in cache-friendly sizes whatever N is
        chunk = max(1, (8 << 20) // (4 * x.shape[1] * x.shape[2]))
        buf = np.empty((min(chunk, len(x)), *x.shape[1:]), dtype=np.float32)  # reused: page faults are costly
        small = np.empty((len(x), HASH_HEIGHT, HASH_WIDTH), dtype=np.float32)
        for i in range(0, len(x), chunk):
            m = min(chunk, len(x) - i)
            np.copyto(buf[:m], x[i : i + m])
            small[i : i + m] = _resize_f32(buf[:m], HASH_WIDTH, HASH_HEIGHT)
    bits = small[:, :, 1:] > small[:, :, :-1]
    return _bits_to_uint64(bits.reshape(len(x), -1))


def _popcount64(v: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(v).astype(np.int64)
    table = np.array([(i).bit_count() for i in range(256)], dtype=np.int64)
    return table[v[..., None].view(np.uint8)].sum(-1)


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray | int:
    """Hamming distance (number of differing bits, 0..64) between uint64 hashes, broadcasting like numpy.

    The paper's Eq. (4) divides by n = 64; the threshold 6 of Sec. 3.3 counts bits, as here.
    """
    d = _popcount64(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))
    return int(d) if np.ndim(d) == 0 else d


def pairwise_hamming(hashes: np.ndarray) -> np.ndarray:
    """(N, N) int64 Hamming distances between all pairs of the (N,) uint64 hashes (zero diagonal)."""
    h = np.asarray(hashes)
    if h.ndim != 1:
        raise ValueError(f"hashes must have shape (N,), got {h.shape}.")
    if h.dtype != np.uint64:
        raise ValueError(f"hashes must be uint64 (from dhash), got {h.dtype.name}.")
    return _popcount64(h[:, None] ^ h[None, :])
