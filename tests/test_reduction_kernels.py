"""The optional numba kernels of the reduction (medssl_monai.reduction.kernels.pairwise) against the pure numpy/torch paths,
imagehash and scikit-image: same bits for the 8-bit conversion and dHash (fused or not, 1 or 2 threads), SSIM and
NMI equal to the fallback to float64 rounding, identical slices exactly SSIM 1 / NMI 2, same keep-sets."""

from __future__ import annotations

import numpy as np
import pytest

from medssl_monai.reduction import (
    dhash,
    dhash_slices,
    pairwise_nmi,
    pairwise_ssim,
    reduce_pairs,
    reduce_volume,
    to_uint8,
)

pytest.importorskip("numba")
imagehash = pytest.importorskip("imagehash")
Image = pytest.importorskip("PIL.Image")
metrics = pytest.importorskip("skimage.metrics")


def _fallback(monkeypatch, fn, *args, **kwargs):
    """``fn`` on the pure numpy/torch path (MEDSSL_NO_NUMBA=1), then back to the kernels."""
    monkeypatch.setenv("MEDSSL_NO_NUMBA", "1")
    try:
        return fn(*args, **kwargs)
    finally:
        monkeypatch.delenv("MEDSSL_NO_NUMBA")


def _ct_int16(rng, n=6, h=512, w=512):
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for k in range(n):
        body = ((yy - h / 2) ** 2 + ((xx - w / 2) * 1.3) ** 2 < (0.35 * min(h, w)) ** 2) * (1000 + 20 * k)
        out.append(body + rng.normal(0, 30, (h, w)) - 1024)
    out.append(np.full((h, w), -1024.0))  # constant slice
    return np.clip(np.stack(out), -1024, 3071).astype(np.int16)


@pytest.mark.parametrize("window", [None, (-1000, 1000), (-160.5, 240.0), (-1024, 6000)])
def test_to_uint8_and_fused_dhash_equal_fallback_and_imagehash(monkeypatch, window):
    rng = np.random.default_rng(1)
    x = _ct_int16(rng)
    x[2, :, :40] = 3071  # range > 2**12 on this slice: float64 conversion path
    x[2, 0, 0] = -3000
    u = to_uint8(x, window)
    np.testing.assert_array_equal(u, _fallback(monkeypatch, to_uint8, x, window))
    ref = [int(str(imagehash.dhash(Image.fromarray(s))), 16) for s in u]
    assert dhash(u).tolist() == ref
    assert dhash_slices(x, window).tolist() == ref
    assert dhash_slices(x, window, threads=2).tolist() == ref
    assert _fallback(monkeypatch, dhash_slices, x, window).tolist() == ref


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int32])
def test_fused_dhash_other_dtypes(monkeypatch, dtype):
    x = np.random.default_rng(2).uniform(0, 3000, (3, 64, 80)).astype(dtype)
    np.testing.assert_array_equal(to_uint8(x), _fallback(monkeypatch, to_uint8, x))
    assert (
        dhash_slices(x).tolist() == dhash(to_uint8(x)).tolist() == _fallback(monkeypatch, dhash, to_uint8(x)).tolist()
    )


@pytest.mark.parametrize("vnni", ["0", "1"])
@pytest.mark.parametrize("shape", [(512, 512), (100, 37), (37, 100), (64, 1500), (20, 21)])
def test_dhash_kernel_random_slices_equal_imagehash(monkeypatch, shape, vnni):
    """Random 8-bit slices put many first-pass sums near a rounding boundary (the float32 kernel's exact float64
    re-check); both kernels (VNNI where the CPU has it, and the float32 one forced by MEDSSL_NO_VNNI=1)."""
    monkeypatch.setenv("MEDSSL_NO_VNNI", vnni)
    x = np.random.default_rng(sum(shape)).integers(0, 256, (12, *shape), dtype=np.uint8)
    assert dhash(x).tolist() == [int(str(imagehash.dhash(Image.fromarray(s))), 16) for s in x]


def test_ssim_nmi_kernels_equal_fallback_and_skimage(monkeypatch):
    rng = np.random.default_rng(3)
    x = to_uint8(_ct_int16(rng, n=5, h=64, w=72))
    x = np.concatenate([x, x[1:2]])  # slice 6 duplicates slice 1 (slice 5 is constant)
    ps, pn = pairwise_ssim(x), pairwise_nmi(x)
    np.testing.assert_allclose(ps, _fallback(monkeypatch, pairwise_ssim, x), rtol=0, atol=1e-13)
    np.testing.assert_allclose(pn, _fallback(monkeypatch, pairwise_nmi, x), rtol=0, atol=1e-12)
    assert ps[1, 6] == 1.0 and pn[1, 6] == 2.0  # identical slices: exact, so ties are real ties
    assert np.array_equal(ps, ps.T) and np.array_equal(pn, pn.T)
    np.testing.assert_array_equal(pairwise_ssim(x, threads=2), ps)
    np.testing.assert_array_equal(pairwise_nmi(x, threads=2), pn)
    for i, j in [(0, 1), (2, 4), (3, 6)]:
        ref = metrics.structural_similarity(
            x[i], x[j], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
        assert abs(ps[i, j] - ref) < 1e-12
        assert abs(pn[i, j] - metrics.normalized_mutual_information(x[i], x[j], bins=256)) < 1e-12
    for method in ("ssim", "mi"):
        keep = reduce_volume(x, method, target_fraction=0.5)
        assert keep.tolist() == _fallback(monkeypatch, reduce_volume, x, method, target_fraction=0.5).tolist()
    assert reduce_pairs(ps, threshold=1.0).tolist() == [True] * 6 + [False]  # the duplicate goes, exactly


_PAIRS = {
    "pairwise": [("nmi_matrix", "nmi_matrix_parallel"), ("ssim_matrix", "ssim_matrix_parallel")],
    "hashing": [("dhash_small", "dhash_small_parallel"), ("vnni_dhash_small", "vnni_dhash_small_parallel")],
}


def _dispatchers(module: str):
    import importlib

    from numba.core.registry import CPUDispatcher

    mod = importlib.import_module(f"medssl_monai.reduction.kernels.{module}")
    return mod, [v for v in vars(mod).values() if isinstance(v, CPUDispatcher)]


@pytest.mark.parametrize("module", sorted(_PAIRS))
def test_serial_and_parallel_kernels_are_distinct_functions(module):
    """numba's on-disk cache is keyed by a function's bytecode and signature, not by ``parallel=True``: a serial and
    a parallel dispatcher of one Python function load each other's machine code (the first compiled wins, and
    ``threads=`` silently does nothing or runs the 1-thread path on every core). Every cached dispatcher in
    ``kernels.pairwise`` and ``kernels.hashing`` must therefore wrap its own function."""
    mod, dispatchers = _dispatchers(module)
    assert {name for pair in _PAIRS[module] for name in pair} <= {d.py_func.__name__ for d in dispatchers}
    codes = [d.py_func.__code__ for d in dispatchers]
    assert len(set(map(id, codes))) == len(codes)
    for serial, parallel in _PAIRS[module]:
        assert not getattr(mod, serial).targetoptions.get("parallel")
        assert getattr(mod, parallel).targetoptions.get("parallel")


@pytest.mark.parametrize("module", sorted(_PAIRS))
def test_kernels_call_compiled_functions_of_their_own_file_only(module):
    """numba's disk cache notices edits only to the file a function is defined in: a cached kernel that called a
    compiled function of another file would keep a stale copy of it after an edit there."""
    from numba.core.extending import _Intrinsic
    from numba.core.registry import CPUDispatcher

    mod, dispatchers = _dispatchers(module)
    for d in dispatchers:
        for name in d.py_func.__code__.co_names:
            obj = vars(mod).get(name)
            if isinstance(obj, CPUDispatcher):
                assert obj.py_func.__module__ == mod.__name__, (d.py_func.__name__, name)
            elif isinstance(obj, _Intrinsic):
                assert obj._defn.__module__ == mod.__name__, (d.py_func.__name__, name)
        assert d.py_func.__closure__ is None  # closure cells would enter the cache key


def _adversarial_stack(rng) -> np.ndarray:
    """Slices where float32 SSIM loses the most: bright, nearly flat regions (large ``E = filter(x y)`` next to a
    small covariance), saturated and black areas, white noise, a duplicate and a shifted copy."""
    base = np.clip(rng.normal(235, 3, (64, 72)), 0, 255)
    out = [base, base + rng.normal(0, 1, base.shape), np.full(base.shape, 255.0), np.zeros(base.shape)]
    out.append(rng.integers(0, 256, base.shape))
    out.append(np.roll(base, 1, axis=1))
    half = base.copy()
    half[:, :36] = 0
    out += [half, base]  # the last one duplicates slice 0
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["ct", "adversarial"])
def test_screened_ssim_within_its_bound_and_exact_refinement_bit_identical(kind):
    from medssl_monai.reduction.similarity import screen_ssim

    rng = np.random.default_rng(4)
    x = to_uint8(_ct_int16(rng, n=5, h=64, w=72)) if kind == "ct" else _adversarial_stack(rng)
    exact = pairwise_ssim(x)
    approx, bound, refine = screen_ssim(x)
    iu = np.triu_indices(len(x), 1)
    err = np.abs(approx - exact)[iu]
    assert (err <= bound[iu]).all()
    assert err.max() > 0  # float32 really differs: the bound is doing work
    assert bound[iu].max() < (5e-3 if kind == "ct" else 2e-2)  # all-255 slices: ~4 gamma_32 255**2 / C2 = 8.5e-3
    assert all(refine(int(i), int(j)) == exact[i, j] for i, j in zip(*iu))  # same bits as the exact matrix
    np.testing.assert_array_equal(screen_ssim(x, threads=2)[0], approx)


@pytest.mark.parametrize("seed", range(3))
def test_reduce_volume_ssim_screened_keeps_the_exact_matrix_keep_set(seed):
    """reduce_volume('ssim') screens in float32 and refines in float64; its keep-set must be that of the exact
    float64 matrix for target fractions, thresholds and the released variant (near-tied similarities included:
    slices repeat with small perturbations)."""
    rng = np.random.default_rng(seed)
    base = to_uint8(_ct_int16(rng, n=6, h=48, w=56))
    x = np.concatenate([base, np.clip(base.astype(int) + rng.integers(-1, 2, base.shape), 0, 255).astype(np.uint8)])
    exact = pairwise_ssim(x)
    iu = np.triu_indices(len(x), 1)
    for f in (0.1, 0.3, 0.5, 0.8):
        assert reduce_volume(x, "ssim", target_fraction=f).tolist() == reduce_pairs(exact, target_fraction=f).tolist()
    for t in np.quantile(exact[iu], [0.2, 0.5, 0.9]).tolist() + [float(exact[iu].max())]:
        for variant in ("exact", "released"):
            want = reduce_pairs(exact, threshold=t, variant=variant).tolist()
            assert reduce_volume(x, "ssim", threshold=t, variant=variant).tolist() == want
    assert reduce_volume(x, "ssim", threshold=0.5, target_fraction=0.3, threads=2).tolist() == (
        reduce_pairs(exact, threshold=0.5, target_fraction=0.3).tolist()
    )


def test_screened_ssim_with_many_identical_slices():
    """Identical slices tie at exactly 1, so every such pair is refined: the refinement answers 1.0 at once (the
    exact kernel's value, checked) and the keep-set is still the exact matrix's."""
    from medssl_monai.reduction.similarity import screen_ssim

    rng = np.random.default_rng(5)
    x = to_uint8(_ct_int16(rng, n=4, h=40, w=40))
    x = np.concatenate([np.repeat(x[:1], 12, axis=0), x[1:], x[:1]])
    exact = pairwise_ssim(x)
    _, _, refine = screen_ssim(x)
    assert refine(0, 5) == exact[0, 5] == 1.0 and refine(0, 13) == exact[0, 13] != 1.0
    for f in (0.1, 0.5):
        assert reduce_volume(x, "ssim", target_fraction=f).tolist() == reduce_pairs(exact, target_fraction=f).tolist()
