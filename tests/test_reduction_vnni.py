"""The VNNI dHash kernel (medssl_monai.reduction.kernels.hashing): Pillow's integer sums exactly. The weight limbs reconstruct
Pillow's weights (hand-checked digits), the byte dot product equals int64 numpy, and the hashes equal the float32
kernel's and imagehash's in every mode (uint8 input, per-slice min-max, HU window; 1 and 2 threads), including the
next slice's min/max taken along the way (extremes at a slice's first and last pixel)."""

from __future__ import annotations

import numpy as np
import pytest

from medssl_monai.reduction import dhash, dhash_slices, hashing, to_uint8
from medssl_monai.reduction.kernels import hashing as hash_kernels

pytest.importorskip("numba")
imagehash = pytest.importorskip("imagehash")
Image = pytest.importorskip("PIL.Image")

needs_vnni = pytest.mark.skipif(
    not hash_kernels.vnni_available(), reason="no VNNI on this CPU: the float32 kernel runs instead"
)


def _imagehash(u: np.ndarray) -> list[int]:
    return [int(str(imagehash.dhash(Image.fromarray(s))), 16) for s in u]


def _recombine(wl: np.ndarray) -> np.ndarray:
    w = wl.astype(np.int64)
    return w[..., 0, :] + (w[..., 1, :] << 8) + (w[..., 2, :] << 16)


def test_limbs_hand_checked_digits():
    """79361 (Pillow's largest 512 -> 9 weight) = 1 + 54 * 2**8 + 1 * 2**16; -11687 = 89 - 46 * 2**8 (two limbs)."""
    k = np.zeros((1, 64))
    k[0, 40], k[0, 3] = 79361, -11687
    nch, wl, c_lo, c_hi = hash_kernels.vnni_limbs(k, np.array([64]))
    assert nch.tolist() == [2] and (c_lo.tolist(), c_hi.tolist()) == ([1], [2])  # tap 40 lies in chunk 1
    assert wl[0, :, 40].tolist() == [1, 54, 1]
    assert wl[0, :, 3].tolist() == [89, -46, 0]
    assert hash_kernels.vnni_limbs(np.array([[float(1 << 23)]]), np.array([1])) is None  # would need a fourth limb


@pytest.mark.parametrize("size,out", [(512, 9), (512, 8), (100, 9), (37, 8), (1500, 9), (21, 9), (40, 8)])
def test_limbs_reconstruct_pillow_weights(size, out):
    _, hl, _, hk64, _ = hashing._band(size, out)
    nch, wl, c_lo, c_hi = hash_kernels.vnni_limbs(hk64, hl)
    k = _recombine(wl)
    n = hk64.shape[1]
    np.testing.assert_array_equal(k[:, :n], hk64.astype(np.int64))
    assert not k[:, n:].any() and (nch * 32 >= hl).all() and wl.dtype == np.int8
    for o in range(out):  # the third limb only where the kernel reads it
        outside = np.ones(wl.shape[2], bool)
        outside[c_lo[o] * 32 : c_hi[o] * 32] = False
        assert not wl[o, 2, outside].any()
        assert (np.abs(hk64[o][outside[:n]]) <= 32767 + 128).all()


@needs_vnni
def test_dot4_equals_int64_dot():
    from numba import njit

    @njit
    def dot4(rows, st, wl, nch, c_lo, c_hi):
        return hash_kernels._dot4(rows, st, wl, nch, c_lo, c_hi)

    rng = np.random.default_rng(0)
    for _ in range(40):
        n = int(rng.integers(1, 400))
        k = rng.integers(-(1 << 13), 1 << 13, n)
        k[rng.integers(0, n, 3)] = rng.integers(-(1 << 19), 1 << 19, 3)  # a few wide taps: the third limb
        nch, wl, c_lo, c_hi = hash_kernels.vnni_limbs(k[None].astype(np.float64), np.array([n]))
        st = int(rng.integers(0, 40))
        rows = rng.integers(0, 256, (4, st + wl.shape[2] + 32), dtype=np.uint8)
        expected = rows[:, st : st + n].astype(np.int64) @ k
        assert np.abs(expected).max() < 2**31
        assert dot4(rows, st, wl[0], nch[0], c_lo[0], c_hi[0]) == tuple(expected.tolist())
    # the largest sums Pillow can make for 512 -> 9: all-255 rows (2**22 * 255 plus the negative lobes' part)
    _, hl, _, hk64, _ = hashing._band(512, 9)
    nch, wl, c_lo, c_hi = hash_kernels.vnni_limbs(hk64, hl)
    rows = np.full((4, 512 + wl.shape[2] + 32), 255, np.uint8)
    for o in range(9):
        expected = int(255 * hk64[o].astype(np.int64).sum())
        assert dot4(rows, 0, wl[o], nch[o], c_lo[o], c_hi[o]) == (expected,) * 4


def _ct_like(rng, n: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    body = ((yy - h / 2) ** 2 + ((xx - w / 2) * 1.2) ** 2 < (0.4 * min(h, w)) ** 2) * 1040.0
    x = body[None] + rng.normal(0, 40, (n, h, w)) - 1000 + 15 * np.arange(n)[:, None, None]
    x = np.clip(x, -1024, 3071).astype(np.int16)
    x[1] = -1024  # constant slice
    x[2, -1, -1] = 3071  # extremes at a slice's last and first pixel (min/max of the next slice, taken on the way)
    x[3, 0, 0] = -3000
    x[4, :, : w // 4] = 3071  # range > 2**12: the float64 conversion
    return x


@needs_vnni
@pytest.mark.parametrize("shape", [(512, 512), (130, 517), (37, 100), (64, 1500), (21, 40)])
def test_vnni_kernel_equals_float32_kernel_and_imagehash(monkeypatch, shape):
    assert hashing._vnni_limbs(shape[1], 9) is not None and hashing._vnni_limbs(shape[0], 8) is not None
    x = _ct_like(np.random.default_rng(sum(shape)), 6, *shape)
    window = (-300.0, 500.5)
    u, uw = to_uint8(x), to_uint8(x, window)
    ref, ref_w = _imagehash(u), _imagehash(uw)
    got = [dhash(u), dhash_slices(x), dhash_slices(x, threads=2), dhash_slices(x, window), dhash(uw, threads=2)]
    assert hash_kernels.vnni_dhash_small.signatures and hash_kernels.vnni_dhash_small_parallel.signatures  # VNNI ran
    monkeypatch.setenv("MEDSSL_NO_VNNI", "1")
    float32 = [dhash(u), dhash_slices(x), dhash_slices(x, threads=2), dhash_slices(x, window), dhash(uw, threads=2)]
    for a, b, r in zip(got, float32, [ref, ref, ref, ref_w, ref_w]):
        assert a.tolist() == b.tolist() == r


@needs_vnni
def test_vnni_runs_of_slices_on_threads():
    """Enough slices that each thread's run holds several (prefetch and min/max of the next slice within a run)."""
    x = _ct_like(np.random.default_rng(7), 70, 40, 64)
    x[10:, -1, -1] = np.arange(60) * 40 - 1000  # per-slice maxima at the last pixel
    ref = _imagehash(to_uint8(x))
    assert dhash_slices(x).tolist() == dhash_slices(x, threads=2).tolist() == ref


@pytest.mark.parametrize(
    "setting,value,expected",
    [
        ("CPU_NAME", "generic", False),  # numba pinned to a portable target
        ("ENABLE_AVX", False, False),  # NUMBA_ENABLE_AVX=0: numba drops every avx* feature (LLVM would abort)
        ("DISABLE_JIT", True, False),  # no compilation: the intrinsic cannot run as Python
        ("CPU_FEATURES", "+avx2,+avx512f,+avx512vl,+avx512vnni", True),  # numba's own feature string decides
        ("CPU_FEATURES", "+avx2,+avxvnni", True),
        ("CPU_FEATURES", "+avx2,+avx512f,-avx512vl,+avx512vnni,-avxvnni", False),
    ],
)
def test_vnni_follows_numbas_target(monkeypatch, setting, value, expected):
    from numba.core import config

    monkeypatch.setattr(config, setting, value)
    hash_kernels._host_has_vnni.cache_clear()
    try:
        assert hash_kernels._host_has_vnni() is expected
    finally:
        monkeypatch.undo()
        hash_kernels._host_has_vnni.cache_clear()


def test_vnni_switched_off_by_env(monkeypatch):
    monkeypatch.setenv("MEDSSL_NO_VNNI", "1")
    assert not hash_kernels.vnni_available()
