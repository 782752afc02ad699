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

Here the integer weights are built once per input size, split into two digits ``k = hi * base + lo`` small enough
that a float32 matrix product with 0..255 pixels is exact (every partial sum is an integer below 2**24, whatever
the summation order), and applied as one float32 product over the whole batch; the two exact sums are combined in
float64, so the floor/clip reproduce Pillow's integer arithmetic bit for bit with no error bound or recompute
(checked against ``imagehash`` in the tests).

With numba installed (a core dependency since 0.3.0) the horizontal-first sizes (512x512 among them) go through one
compiled kernel per slice instead (:mod:`~medssl_monai.reduction.kernels.hashing`): band-limited float32 dot products of four
rows at a time with ``k / 2**22``, each decided by a rigorous error bound or recomputed exactly in float64 when the
bound cannot decide Pillow's rounding, then the exact vertical pass. :func:`dhash_slices` also fuses the 8-bit
conversion into that kernel (one read of the int16 slice for min/max, one for conversion and the first pass). On
CPUs with VNNI byte dot products the kernel of :mod:`~medssl_monai.reduction.kernels.hashing` (VNNI) runs instead: both passes in
exact integer arithmetic (Pillow's own sums), the next slice prefetched and its min/max taken during the current
one (~1.9x faster on 512x512 int16 slices). Same bits as the numpy path and imagehash (tests);
``MEDSSL_NO_VNNI=1`` forces the float32 kernel, ``MEDSSL_NO_NUMBA=1`` the numpy path.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

from ._checks import check_stack
from .convert import check_window, to_uint8
from .kernels import hashing as hash_kernels
from .kernels import pairwise as pairwise_kernels

__all__ = ["dhash", "dhash_slices", "hamming", "pairwise_hamming", "pillow_lanczos_weights", "resize_lanczos_uint8"]

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


_F32_EXACT = float(1 << 24)  # float32 holds every integer of magnitude <= 2**24


@lru_cache(maxsize=64)
def _split_weights(in_size: int, out_size: int) -> tuple[np.ndarray, int] | tuple[np.ndarray, None]:
    """Pillow's integer weights ``k`` split as ``k = hi * base + lo`` into one (in, 2 * out) float32 matrix
    ``[hi | lo]`` whose products with 0..255 pixels are exact in float32, or the float64 ``k`` when no split fits.

    Exactness: with ``255 * sum_x |hi[o, x]| < 2**24`` (and the same for ``lo``), every product ``pixel * hi`` and
    every partial sum of them, in whatever order or blocking BLAS adds them, with or without FMA, is an integer of
    magnitude below 2**24, hence exactly representable: the float32 product is the exact integer sum. ``base`` is
    the smallest power of two for which both digits satisfy that; ``sum hi * base + sum lo`` is then combined in
    float64 (integers below 2**53). For 512 -> 9 columns: ``base = 2**8``, sums below 5.7e6.
    """
    k = pillow_lanczos_weights(in_size, out_size)
    for bits in range(24):
        base = 1 << bits
        hi = (k + base // 2) // base  # round half up; lo in [-base/2, base/2)
        lo = k - hi * base
        if 255 * np.abs(hi).sum(axis=1).max() < _F32_EXACT and 255 * np.abs(lo).sum(axis=1).max() < _F32_EXACT:
            w = np.concatenate([hi.T, lo.T], axis=1).astype(np.float32)
            w.setflags(write=False)
            return w, base
    k64 = k.T.astype(np.float64)  # very large downscales: exact float64 product (integers below 2**53)
    k64.setflags(write=False)
    return k64, None


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()  # scanning the loaded libraries is slow: once per process


def _resample_axis(x: np.ndarray, in_size: int, out_size: int) -> np.ndarray:
    """One Pillow pass over the last axis of float32 integer-valued ``x`` (..., in) -> (..., out), rounded and
    clipped like ``clip8``: ``floor((acc + 2**21) / 2**22)`` of the exact integer ``acc = sum pixel * k``, which
    one float32 product with the split weights gives exactly (:func:`_split_weights`); no error bound involved."""
    w, base = _split_weights(in_size, out_size)
    flat = x.reshape(-1, in_size)
    with _blas_controller().limit(limits=1, user_api="blas"):  # skinny product: one BLAS thread (fan out over volumes)
        if base is None:
            acc = flat.astype(np.float64) @ w
        else:
            r = flat @ w
            acc = r[:, :out_size].astype(np.float64)
            acc *= base
            acc += r[:, out_size:]
    acc += _HALF
    acc /= _ONE  # exact: division by a power of two
    out = np.floor(acc).astype(np.float32)
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


_TAP_MULTIPLE = 16  # band lengths padded to a multiple of this (SIMD without a scalar tail)


@lru_cache(maxsize=64)
def _band(in_size: int, out_size: int) -> tuple[np.ndarray, ...]:
    """Pillow's weights for one axis as bands for the numba kernels: the start of each output's taps, their count
    rounded up to a multiple of 16 (zero weights past the last tap), and over the longest of these ``k / 2**22`` in
    float32 (exact), ``k`` in float64, and the float32 error bound of each output's dot product with 0..255 pixels,
    ``gamma_(n+1) * 255 * sum |w|`` plus 1e-9 for the float64 comparison (see ``kernels.pairwise``)."""
    k = pillow_lanczos_weights(in_size, out_size)
    starts = np.zeros(out_size, dtype=np.int64)
    ends = np.zeros(out_size, dtype=np.int64)
    for o in range(out_size):
        nz = np.flatnonzero(k[o])
        if len(nz):
            starts[o], ends[o] = nz[0], nz[-1] + 1
    lengths = -(-np.maximum(ends - starts, 1) // _TAP_MULTIPLE) * _TAP_MULTIPLE
    n = int(lengths.max())
    k64 = np.zeros((out_size, n), dtype=np.float64)
    for o in range(out_size):
        k64[o, : ends[o] - starts[o]] = k[o, starts[o] : ends[o]]
    w32 = (k64 / _ONE).astype(np.float32)
    if not np.array_equal(w32.astype(np.float64) * _ONE, k64):  # k < 2**24: never
        raise AssertionError("Pillow weights not exact in float32")
    u = 2.0**-24
    gamma = (lengths + 1) * u / (1 - (lengths + 1) * u)
    bound = gamma * 255.0 * np.abs(k64 / _ONE).sum(axis=1) + 1e-9
    for a in (starts, lengths, w32, k64, bound):
        a.setflags(write=False)
    return starts, lengths, w32, k64, bound


def _jit_applies(h: int, w: int) -> bool:
    """The numba kernels cover both passes with the horizontal one first (512x512 -> 9x8 and most sizes)."""
    vertical_first = h > HASH_HEIGHT and (h - HASH_HEIGHT) > 2 * (w - HASH_WIDTH)
    return pairwise_kernels.use_numba() and h != HASH_HEIGHT and w != HASH_WIDTH and not vertical_first


@lru_cache(maxsize=64)
def _vnni_limbs(in_size: int, out_size: int) -> tuple[np.ndarray, ...] | None:
    _, hl, _, hk64, _ = _band(in_size, out_size)
    return hash_kernels.vnni_limbs(hk64, hl)


def _jit_call(x: np.ndarray, convert: bool, window) -> tuple:
    """The numba kernel pair for ``x`` (``kernels.hashing``: the exact integer VNNI kernel where the CPU has it, otherwise
    the float32 one with its exact re-check; the same values either way), its arguments, and the (N, 8, 9) output
    they fill."""
    hs, hl, hw32, hk64, hbound = _band(x.shape[2], HASH_WIDTH)
    vs, _, _, vk64, _ = _band(x.shape[1], HASH_HEIGHT)
    low, high = window if window is not None else (0.0, 0.0)
    small = np.empty((len(x), HASH_HEIGHT, HASH_WIDTH), dtype=np.float64)
    xc, int_dtype = np.ascontiguousarray(x), x.dtype.kind in "iu"
    use_vnni = hash_kernels.vnni_available()
    hband = _vnni_limbs(x.shape[2], HASH_WIDTH) if use_vnni else None
    vband = _vnni_limbs(x.shape[1], HASH_HEIGHT) if use_vnni else None
    flags = (True if convert else None, (low, high) if window is not None else None)  # see hash_kernels._vnni_range
    if hband is not None and vband is not None:
        kernels = (hash_kernels.vnni_dhash_small, hash_kernels.vnni_dhash_small_parallel)
        return kernels, (xc, *flags, int_dtype, hs, hband, vs, vband, small), small
    kernels = (hash_kernels.dhash_small, hash_kernels.dhash_small_parallel)
    return kernels, (xc, *flags, int_dtype, hs, hl, hw32, hk64, hbound, vs, vk64, small), small


def _jit_small(x: np.ndarray, convert: bool, window, threads: int) -> np.ndarray:
    """Both Pillow passes in a numba kernel (:func:`_jit_call`) -> (N, 8, 9) float64 values."""
    kernels, args, small = _jit_call(x, convert, window)
    pairwise_kernels.run_threaded(*kernels, threads, *args)
    return small


def _bits_to_uint64(bits: np.ndarray) -> np.ndarray:
    """(N, 64) bools, row-major as imagehash flattens them, first bit most significant -> (N,) uint64."""
    packed = np.packbits(bits.astype(np.uint8), axis=1)  # (N, 8) bytes, big-endian bit order
    return packed.view(">u8").astype(np.uint64).reshape(-1)


def dhash(images: np.ndarray, threads: int = 1) -> np.ndarray:
    """64-bit difference hashes of uint8 (N, H, W) slices as (N,) uint64, equal to ``imagehash.dhash``.

    ``dhash(s[None])[0] == int(str(imagehash.dhash(PIL.Image.fromarray(s))), 16)``: LANCZOS resize to 9x8
    (width 9, height 8), bit ``(r, c)`` set where ``pixel[r, c + 1] > pixel[r, c]``, bits taken row by row with the
    first as the most significant (imagehash's hex string). Input must be uint8; convert CT values with
    :func:`medssl_monai.reduction.to_uint8` first, or call :func:`dhash_slices` on the raw slices. ``threads``:
    numba threads over slices (numba kernel only; same hashes).
    """
    x = check_stack(images, dtype=np.uint8)
    if _jit_applies(*x.shape[1:]):
        small = _jit_small(x, False, None, threads)
    elif x.shape[1:] == (HASH_HEIGHT, HASH_WIDTH):
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


def dhash_slices(slices: np.ndarray, window: tuple[float, float] | None = None, threads: int = 1) -> np.ndarray:
    """``dhash(to_uint8(slices, window))`` for raw (N, H, W) slices of any numeric dtype (int16 HU, float), the
    8-bit conversion fused into the hash kernel when numba is available (no uint8 stack is written); the same
    bits either way (tests). Raises what :func:`~medssl_monai.reduction.to_uint8` raises."""
    x = check_stack(slices, "slices")
    if not _jit_applies(*x.shape[1:]) or x.dtype not in pairwise_kernels.KERNEL_DTYPES:
        return dhash(to_uint8(x, window))
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError("slices contain infinite values.")
    small = _jit_small(x, True, check_window(window) if window is not None else None, threads)
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
