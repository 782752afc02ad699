"""CT slice reduction of Wolf et al. 2024 (Sec. 2.1, 3.2-3.3): dHash bit-identical to imagehash, SSIM / NMI equal to
scikit-image, exact 8-bit conversion, and the greedy reduction's invariants, tie-breaking and released variant."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from medssl_monai.reduction import (
    DEFAULT_THRESHOLDS,
    METHODS,
    dhash,
    embed,
    every_n,
    hamming,
    pairwise_cosine,
    pairwise_hamming,
    pairwise_nmi,
    pairwise_ssim,
    reduce_pairs,
    reduce_volume,
    target_count,
    to_uint8,
)

imagehash = pytest.importorskip("imagehash")
Image = pytest.importorskip("PIL.Image")
metrics = pytest.importorskip("skimage.metrics")


def _imagehash_int(s: np.ndarray) -> int:
    return int(str(imagehash.dhash(Image.fromarray(s))), 16)


def _synthetic_slices(rng, shape, n=4):
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    out = [rng.integers(0, 256, shape), (xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1))[:, ::-1]]
    out.append(np.full(shape, 77))
    disk = ((yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (min(h, w) / 3) ** 2) * 200 + rng.integers(0, 30, shape)
    out.append(disk)
    return np.stack(out[: max(n, 5)]).astype(np.uint8)


@pytest.mark.parametrize(
    "shape", [(512, 512), (64, 64), (100, 37), (37, 100), (300, 17), (9, 8), (8, 9), (8, 8), (3, 5), (1, 1), (513, 256)]
)
def test_dhash_equals_imagehash(shape):
    """Random, gradient, constant and disk slices; square, tall, wide, tiny and the identity size 9x8 (width 9)."""
    x = _synthetic_slices(np.random.default_rng(sum(shape)), shape)
    ours = dhash(x)
    assert ours.dtype == np.uint64 and ours.shape == (len(x),)
    assert ours.tolist() == [_imagehash_int(s) for s in x]


def test_dhash_random_sizes_equal_imagehash():
    """Pillow's pass order depends on the aspect ratio: random sizes on both sides of it."""
    rng = np.random.default_rng(0)
    for _ in range(25):
        h, w = (int(v) for v in rng.integers(1, 260, 2))
        x = rng.integers(0, 256, (2, h, w), dtype=np.uint8)
        assert dhash(x).tolist() == [_imagehash_int(s) for s in x], (h, w)


def test_dhash_bits_hand_checked():
    """A 9x8 slice is not resampled: bit (r, c) = right neighbour larger, row by row, first bit most significant."""
    s = np.zeros((8, 9), np.uint8)
    s[0] = np.arange(9)  # row 0 increasing: 8 ones -> top byte 0xFF
    s[7, 8] = 5  # last row: only the last comparison is "larger" -> lowest bit
    assert int(dhash(s[None])[0]) == (0xFF << 56) | 1 == _imagehash_int(s)


def test_hamming_hand_checked():
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(np.uint64(2**64 - 1), np.uint64(0)) == 64
    h = np.array([0, 1, 3, 2**63], dtype=np.uint64)
    d = pairwise_hamming(h)
    np.testing.assert_array_equal(d, [[0, 1, 2, 1], [1, 0, 1, 2], [2, 1, 0, 3], [1, 2, 3, 0]])
    # equals imagehash's ImageHash subtraction
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (3, 40, 40), dtype=np.uint8)
    ih = [imagehash.dhash(Image.fromarray(s)) for s in x]
    d = pairwise_hamming(dhash(x))
    assert all(d[i, j] == ih[i] - ih[j] for i, j in itertools.product(range(3), repeat=2))


def _exact_uint8(x: np.ndarray, lo, hi) -> np.ndarray:
    out = []
    for v in x.ravel().tolist():
        v = min(max(v, lo), hi)
        q = Fraction(255 * (v - lo), hi - lo) + Fraction(1, 2)
        out.append(q.numerator // q.denominator)
    return np.array(out, dtype=np.uint8).reshape(x.shape)


@pytest.mark.parametrize("span", [1, 2, 6, 510, 4095, 2**14, 2**14 + 1, 40000, 65535])
def test_to_uint8_exact_rounding_half_up(span):
    """int16 HU far outside 0..255: the exact rational value rounded half up, in both float paths."""
    lo = -1024 if span < 30000 else -32768
    x = np.array([lo, lo + span] + list(np.random.default_rng(span).integers(lo, lo + span + 1, 3000)))
    x = x.astype(np.int16 if lo + span < 32768 else np.int32).reshape(1, 1, -1)
    np.testing.assert_array_equal(to_uint8(x), _exact_uint8(x, lo, lo + span))


def test_to_uint8_float32_path_exhaustive():
    """Every range d <= 2**12 (the float32 path) and every value 0..d: equal to the integer half-up rounding
    ``(510 v + d) // (2 d)``, ties included. One slice per d holding lo..lo + d."""
    from medssl_monai.reduction.convert import _F32_MAX_RANGE

    for d in range(1, _F32_MAX_RANGE + 1):
        v = np.arange(d + 1, dtype=np.int64)
        x = (v - 1024).astype(np.int16).reshape(1, 1, -1)
        expected = ((510 * v + d) // (2 * d)).astype(np.uint8)
        np.testing.assert_array_equal(to_uint8(x)[0, 0], expected, err_msg=f"d={d}")
        np.testing.assert_array_equal(to_uint8(x, window=(-1024, d - 1024))[0, 0], expected, err_msg=f"d={d}")


def test_to_uint8_window_constant_and_float():
    x = np.array([[[-2000, -1000, -300, 400, 3000]]], np.int16)
    np.testing.assert_array_equal(to_uint8(x, window=(-1000, 400)), [[[0, 0, 128, 255, 255]]])
    assert to_uint8(np.full((2, 3, 3), -1024, np.int16)).max() == 0  # constant slice -> 0
    f = np.array([[[0.0, 0.5, 1.0]]])
    np.testing.assert_array_equal(to_uint8(f), [[[0, 128, 255]]])
    # per slice: each slice uses its own range
    two = np.stack([np.array([[0, 10]]), np.array([[0, 1000]])]).astype(np.int16)
    np.testing.assert_array_equal(to_uint8(two), [[[0, 255]], [[0, 255]]])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: to_uint8(np.zeros((4, 4))), r"\(N, H, W\)"),
        (lambda: to_uint8(np.zeros((0, 4, 4))), "empty"),
        (lambda: to_uint8(np.array([[[np.nan, 1.0]]])), "NaN"),
        (lambda: to_uint8(np.zeros((1, 2, 2)), window=(5, 5)), "window"),
        (lambda: dhash(np.zeros((1, 4, 4), np.int16)), "uint8"),
        (lambda: dhash(np.zeros((4, 4), np.uint8)), r"\(N, H, W\)"),
        (lambda: reduce_pairs(np.zeros((3, 3))), "threshold"),
        (lambda: reduce_pairs(np.zeros((3, 2)), threshold=0), "square"),
        (lambda: reduce_pairs(np.full((2, 2), np.nan), threshold=0), "NaN"),
        (lambda: reduce_pairs(np.zeros((2, 2)), threshold=0, variant="x"), "variant"),
        (lambda: reduce_pairs(np.zeros((2, 2)), target_fraction=0.5, variant="released"), "released"),
        (lambda: reduce_pairs(np.zeros((2, 2)), target_fraction=0.0), "target_fraction"),
        (lambda: reduce_volume(np.zeros((2, 4, 4), np.uint8), method="nope"), "method"),
        (lambda: reduce_volume(np.zeros((2, 4, 4), np.uint8), method="deep"), "encoder"),
        (lambda: pairwise_ssim(np.zeros((2, 8, 8), np.uint8)), "11x11"),
        (lambda: pairwise_ssim(np.zeros((2, 16, 16), np.uint8), data_range=0), "data_range must be a positive"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_one_slice_volume_keeps_it():
    one = np.zeros((1, 16, 16), np.uint8)
    for method in METHODS:
        if method != "deep":
            assert reduce_volume(one, method=method).tolist() == [True]


def _random_similarity(rng, n, integer=False):
    s = rng.integers(-10, 0, (n, n)).astype(float) if integer else rng.random((n, n))
    s = np.triu(s, 1)
    return s + s.T


@pytest.mark.parametrize("seed", range(20))
def test_threshold_invariant_no_kept_pair_is_similar(seed):
    """After a threshold run no two kept slices are similar, and every dropped slice was similar to a kept one
    at the time; integer similarities make ties frequent."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    sim = _random_similarity(rng, n, integer=bool(seed % 2))
    thr = float(np.quantile(sim[np.triu_indices(n, 1)], 0.7))
    for variant in ("exact", "released"):
        keep = reduce_pairs(sim, threshold=thr, variant=variant)
        k = np.flatnonzero(keep)
        assert keep[0] and keep.any()
        assert not (sim[np.ix_(k, k)][np.triu_indices(len(k), 1)] >= thr).any()
        assert np.array_equal(keep, reduce_pairs(sim, threshold=thr, variant=variant))  # deterministic


@pytest.mark.parametrize("seed", range(10))
def test_target_fraction_keeps_the_asked_count(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 60))
    sim = _random_similarity(rng, n, integer=True)
    for f in (0.01, 0.1, 0.25, 0.5, 1.0):
        keep = reduce_pairs(sim, target_fraction=f)
        assert keep.sum() == target_count(n, f) == max(1, int(np.floor(f * n + 0.5)))


def test_both_stop_at_whichever_comes_first():
    sim = np.array([[0, 9, 1, 1], [9, 0, 1, 1], [1, 1, 0, 8], [1, 1, 8, 0]], float)
    assert reduce_pairs(sim, threshold=5).tolist() == [True, False, True, False]
    assert reduce_pairs(sim, threshold=5, target_fraction=0.75).tolist() == [True, False, True, True]
    assert reduce_pairs(sim, threshold=9.5, target_fraction=0.25).tolist() == [True, True, True, True]


def test_tie_breaking_and_which_slice_goes():
    """Pairs (0,2) and (1,2) tie at 0.9: the lower pair (0,2) goes first and drops the later slice 2, so (1,2) is
    skipped; (0,1) at 0.8 then drops 1. The slice of a pair that goes is always the later one."""
    sim = np.zeros((4, 4))
    for (i, j), v in {(0, 2): 0.9, (1, 2): 0.9, (0, 1): 0.8, (1, 3): 0.7, (2, 3): 0.95}.items():
        sim[i, j] = sim[j, i] = v
    # (2,3) 0.95 drops 3; (0,2) 0.9 drops 2; (1,2) skipped; (0,1) 0.8 drops 1; (1,3) skipped
    assert reduce_pairs(sim, threshold=0.5).tolist() == [True, False, False, False]
    assert reduce_pairs(sim, threshold=0.85).tolist() == [True, True, False, False]
    assert reduce_pairs(sim, target_fraction=0.75).tolist() == [True, True, True, False]


def test_released_variant_walks_in_order():
    """Released greedy: keep slice 0, drop every later slice similar to it, continue with the next kept slice.
    It differs from the pair order: the pair order (d=1: drop 3, d=2: drop 2, d=5: drop 1) keeps {0}, the released walk {0, 2}."""
    d = np.array([[0, 5, 9, 9], [5, 0, 2, 9], [9, 2, 0, 1], [9, 9, 1, 0]])
    sim = -d.astype(float)  # Hamming distances, threshold 6 -> similar when distance <= 6
    assert reduce_pairs(sim, threshold=-6, variant="released").tolist() == [True, False, True, False]
    assert reduce_pairs(sim, threshold=-6).tolist() == [True, False, False, False]


def test_every_n_and_all():
    assert every_n(7, 3).tolist() == [True, False, False, True, False, False, True]
    x = np.zeros((5, 12, 12), np.uint8)
    assert reduce_volume(x, "all").all() and reduce_volume(x, "every_n", n=2).tolist() == [1, 0, 1, 0, 1]


def test_hash_reduction_uses_hamming_threshold():
    """Default HASH-6: slices whose hashes differ in <= 6 bits are near duplicates."""
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    other = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    x = np.stack([base, base, other, base])
    assert DEFAULT_THRESHOLDS["hash"] == 6
    keep = reduce_volume(x, "hash")
    assert keep.tolist() == [True, False, True, False]
    d = pairwise_hamming(dhash(x))
    assert (d[np.ix_(np.flatnonzero(keep), np.flatnonzero(keep))][np.triu_indices(keep.sum(), 1)] > 6).all()


def _ct_like(rng, n=6, size=48):
    yy, xx = np.mgrid[0:size, 0:size]
    vol = []
    for k in range(n):
        r = size / 3 + 3 * np.sin(k / 2)
        body = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < r**2) * (40 + 10 * k)
        vol.append(body + rng.normal(0, 8, (size, size)) + 20)
    return to_uint8(np.stack(vol))


def test_ssim_and_nmi_equal_scikit_image():
    x = _ct_like(np.random.default_rng(0))
    ps, pn, pn100 = pairwise_ssim(x), pairwise_nmi(x), pairwise_nmi(x, bins=100)
    assert np.allclose(np.diag(ps), 1) and np.allclose(np.diag(pn), 2)
    for i, j in itertools.combinations(range(len(x)), 2):
        ref = metrics.structural_similarity(
            x[i], x[j], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
        assert abs(ps[i, j] - ref) < 1e-9 and ps[j, i] == ps[i, j]
        assert abs(pn[i, j] - metrics.normalized_mutual_information(x[i], x[j], bins=256)) < 1e-9
        assert abs(pn100[i, j] - metrics.normalized_mutual_information(x[i], x[j])) < 1e-9


def test_deep_cosine_and_channel_repeat():
    class Enc(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = nn.Conv2d(c, 4, 3)

        def forward(self, x):
            return self.conv(x).mean(dim=(2, 3))

    x = np.random.default_rng(0).integers(0, 256, (5, 16, 16), dtype=np.uint8)
    for c in (1, 3):
        torch.manual_seed(0)
        f = embed(x, Enc(c), batch_size=2)
        assert f.shape == (5, 4)
    sim = pairwise_cosine(np.array([[1.0, 0], [2, 0], [0, 1]]))
    np.testing.assert_allclose(sim, [[1, 1, 0], [1, 1, 0], [0, 0, 1]], atol=1e-12)
    keep = reduce_volume(np.repeat(x[:1], 3, 0), "deep", threshold=0.999, encoder=Enc(1))
    assert keep.tolist() == [True, False, False]


@pytest.mark.parametrize("shape", [(16, 4096), (4096, 16), (64, 1500)])
def test_dhash_large_downscale_split_and_float64_fallback(shape):
    """Widths too large for the exact two-digit float32 split (4096 -> 9) use the float64 product; both equal
    imagehash."""
    from medssl_monai.reduction.hashing import _split_weights

    assert (_split_weights(4096, 9)[1] is None) and (_split_weights(1500, 9)[1] is not None)
    x = np.random.default_rng(7).integers(0, 256, (2, *shape), dtype=np.uint8)
    ref = [int(str(imagehash.dhash(Image.fromarray(s))), 16) for s in x]
    assert dhash(x).tolist() == ref


@pytest.mark.parametrize("seed", range(4))
def test_screened_reduction_equals_exact_on_tied_matrices(seed):
    """reduce_pairs(approx, bound=, refine=) gives the exact matrix's keep-set whenever |approx - exact| <= bound,
    with heavy ties (few similarity levels) and wide, uneven bounds; only pairs it refines are asked for."""
    rng = np.random.default_rng(seed)
    for _ in range(150):
        n = int(rng.integers(2, 20))
        levels = int(rng.integers(2, 7))
        exact = np.triu(rng.integers(0, levels, (n, n)) / levels, 1)
        exact = exact + exact.T
        bound = np.triu(rng.uniform(0, 0.4, (n, n)) * (rng.random((n, n)) < 0.8), 1)
        bound = bound + bound.T
        approx = exact + rng.uniform(-1, 1, (n, n)) * bound
        asked = []

        def refine(i, j, exact=exact, asked=asked):
            asked.append((i, j))
            return float(exact[i, j])

        t = float(rng.integers(0, levels)) / levels
        f = float(rng.uniform(0.05, 1.0))
        for kw in ({"threshold": t}, {"target_fraction": f}, {"threshold": t, "target_fraction": f}):
            got = reduce_pairs(approx, bound=bound, refine=refine, **kw)
            assert got.tolist() == reduce_pairs(exact, **kw).tolist(), (n, kw)
        got = reduce_pairs(approx, threshold=t, variant="released", bound=bound, refine=refine)
        assert got.tolist() == reduce_pairs(exact, threshold=t, variant="released").tolist()
        assert all(i < j for i, j in asked)


def test_screened_reduction_skips_refinement_when_bounds_separate_and_checks_them():
    exact = np.array([[1.0, 0.9, 0.1], [0.9, 1.0, 0.5], [0.1, 0.5, 1.0]])
    asked = []

    def refine(i, j):
        asked.append((i, j))
        return float(exact[i, j])

    keep = reduce_pairs(exact + 0.01, target_fraction=0.34, bound=np.full((3, 3), 0.02), refine=refine)
    assert keep.tolist() == reduce_pairs(exact, target_fraction=0.34).tolist() == [True, False, False]
    assert asked == []  # 0.9 +- 0.02 is clear of the rest: no value needed; then (0, 2) is the only pair left
    with pytest.raises(RuntimeError, match=r"pair \(0, 1\).*outside its screening interval"):
        reduce_pairs(exact - 0.5, threshold=0.39, bound=np.full((3, 3), 0.02), refine=refine)
    with pytest.raises(ValueError, match="both bound and refine"):
        reduce_pairs(exact, threshold=0.5, bound=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        reduce_pairs(exact, threshold=0.5, bound=-np.ones((3, 3)), refine=refine)
    with pytest.raises(ValueError, match="shape"):
        reduce_pairs(exact, threshold=0.5, bound=np.zeros((2, 2)), refine=refine)
    asked.clear()  # released variant: only pairs of kept slices whose interval straddles the threshold are refined
    keep = reduce_pairs(exact, threshold=0.45, variant="released", bound=np.full((3, 3), 0.1), refine=refine)
    assert keep.tolist() == [True, False, True] and asked == []  # (1, 2) straddles, but slice 1 is gone by then


def test_ssim_screen_bound_hand_checked():
    from medssl_monai.reduction.similarity import ssim_screen_bound

    u = 2.0**-24
    q = np.array([255.0**2 * 512 * 512, 0.0])  # an all-255 512x512 slice and an all-black one
    b = ssim_screen_bound(q, 502 * 502, (0.03 * 255) ** 2)
    g24, g32 = 24 * u / (1 - 24 * u), 32 * u / (1 - 32 * u)
    assert b[0, 0] == pytest.approx(g24 + 4 * g32 * 255**2 * 512**2 / (502**2 * 58.5225) + 1e-10, rel=1e-12)
    assert b[0, 0] == pytest.approx(8.8e-3, abs=1e-4)
    assert b[0, 1] == b[1, 1] == pytest.approx(g24 + 1e-10, rel=1e-12)  # a black slice: no cancellation at all
