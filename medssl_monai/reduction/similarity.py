"""Pairwise SSIM and normalised mutual information over all slices of a volume (Wolf et al. 2024, Sec. 2.1).

SSIM (Wang et al. 2004, paper Eq. 1): Gaussian window 11x11, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255 for uint8;
the mean of the SSIM map over the pixels at least 5 from the border. Equal (to float64 rounding) to
``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255)``: scikit-image filters with ``scipy.ndimage.gaussian_filter`` (truncate 3.5 -> radius 5, i.e. the
11-tap window) and then crops the 5-pixel border, so only fully inside windows count and the border mode plays no
role; here those windows are computed directly ("valid" filtering). The mean and mean of squares of each slice
are filtered once (n filters); per pair only the cross product ``a * b`` is filtered.

NMI (Studholme et al. 1998): ``(H(A) + H(B)) / H(A, B)``, 1 for independent images, 2 for identical ones. Equal to
``skimage.metrics.normalized_mutual_information(a, b, bins=bins)``; scikit-image bins each image with
``np.histogramdd`` over ``bins`` equal bins between that image's min and max (a constant image: min - 0.5 to
max + 0.5). Default ``bins=256`` (scikit-image's default is 100): on uint8 slices every grey value then gets its
own bin, i.e. the measure is that of the exact grey values. Bin codes are computed once per slice, so per pair
only a ``bincount`` of the joint codes remains; entropies use a ``c log c`` table.

With numba installed (a core dependency since 0.3.0), both run as compiled kernels (:mod:`~medssl_monai.reduction.kernels.pairwise`):
SSIM fused per pair (product, valid 11-tap filter and the SSIM formula row by row, float64; identical slices give
exactly 1), NMI as an integer joint histogram per pair (identical slices give exactly 2); agreement with the numpy
path and scikit-image to float64 rounding (~1e-14 at most, tests). ``threads > 1`` spreads the pairs over numba
threads (same values); the default 1 keeps volumes as the parallel unit.

The SSIM reduction does not need every value to float64 precision, only the order of the pairs it acts on:
:func:`screen_ssim` runs the same fused kernel in float32 (about 2x faster) with an a-priori error bound per pair
(:func:`ssim_screen_bound`), and :func:`~medssl_monai.reduction.reduce_pairs` recomputes in float64 only the pairs
whose place in the order the bound leaves open (about one per dropped slice). The keep-set is the exact matrix's.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import torch
from scipy.ndimage import correlate1d

from ._checks import check_stack
from .kernels import pairwise as pairwise_kernels

__all__ = ["gaussian_window", "nmi", "pairwise_nmi", "pairwise_ssim", "screen_ssim", "ssim", "ssim_screen_bound"]

SIGMA, RADIUS, K1, K2 = 1.5, 5, 0.01, 0.03


def gaussian_window(sigma: float = SIGMA, radius: int = RADIUS) -> np.ndarray:
    """scipy.ndimage's normalised 1D Gaussian (``exp(-x^2 / (2 sigma^2))`` over ``-radius..radius``)."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 / (sigma * sigma) * x**2)
    return w / w.sum()


def _valid_filter(x: np.ndarray) -> np.ndarray:
    """Separable Gaussian over the last two axes, keeping only fully inside windows."""
    w = gaussian_window()
    r = RADIUS
    y = correlate1d(x, w, axis=-2, mode="reflect")[..., r:-r, :]
    return correlate1d(y, w, axis=-1, mode="reflect")[..., r:-r]


def _ssim_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu = _valid_filter(x)
    var = _valid_filter(x * x) - mu * mu
    return mu, mu * mu, var


@contextmanager
def _torch_threads(k: int):
    """Run torch CPU kernels on ``k`` threads (volumes are the parallel unit), restoring the setting after."""
    old = torch.get_num_threads()
    torch.set_num_threads(k)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _shifted_filter(src: torch.Tensor, weights: list[float], out: torch.Tensor, tmp: torch.Tensor, dim: int) -> None:
    """Valid 11-tap symmetric correlation along ``dim`` of a 2D float64 tensor by shifted slices (contiguous
    memory access along either axis), summed in the order of scipy's symmetric ``correlate1d``: centre tap
    first, then ``(left + right) * w`` from the centre outwards (a multiply-add may round differently, ~1e-16)."""
    r = RADIUS
    m = src.shape[dim] - 2 * r
    torch.mul(src.narrow(dim, r, m), weights[r], out=out)
    for k in range(r - 1, -1, -1):
        torch.add(src.narrow(dim, k, m), src.narrow(dim, 2 * r - k, m), out=tmp)
        out.add_(tmp, alpha=weights[k])


def _ssim_constants(data_range: float) -> tuple[float, float]:
    """``C1 = (K1 L)^2``, ``C2 = (K2 L)^2`` (Wang et al. 2004) for ``L = data_range > 0``."""
    if not (np.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}.")
    return (K1 * data_range) ** 2, (K2 * data_range) ** 2


def pairwise_ssim(images: np.ndarray, data_range: float = 255.0, threads: int = 1) -> np.ndarray:
    """(N, N) mean SSIM between all pairs of uint8 (N, H, W) slices (symmetric, diagonal 1), float64.

    Slices must be at least 11x11 (the window). All arithmetic is float64, as in scikit-image (results agree with
    it to about 1e-15). Per pair: one product, a valid separable filter by shifted slices (the vertical pass
    reads whole rows, unlike ``correlate1d`` along axis 0), the factor 2 of ``2 sigma_xy`` folded into the
    horizontal weights (exact: a power of two), and element-wise passes with per-slice terms precomputed
    (``2 mu``, ``mu^2 + C1 / 2``, ``sigma^2 + C2 / 2``), into torch buffers allocated once. Torch runs on one
    intra-op thread during the call (``torch.set_num_threads(1)``, restored after; process-wide): volumes are the
    parallel unit, and two threads next to another busy process were 40x slower. The mean is numpy's (a fixed
    summation order), so results do not depend on thread settings. That is the path without numba; with it, the
    fused kernel of the module docstring runs (``threads`` numba threads; ignored without numba).
    """
    x = check_stack(images, dtype=np.uint8)
    n, h, w = x.shape
    r = RADIUS
    if h < 2 * r + 1 or w < 2 * r + 1:
        raise ValueError(f"SSIM needs slices of at least 11x11 pixels, got {h}x{w}.")
    c1, c2 = _ssim_constants(data_range)
    if pairwise_kernels.use_numba():
        out = np.empty((n, n))
        mu = np.empty((n, h - 2 * r, w - 2 * r))
        d = np.empty_like(mu)
        x = np.ascontiguousarray(x)
        wts = gaussian_window()
        pairwise_kernels.run_threaded(
            pairwise_kernels.ssim_matrix,
            pairwise_kernels.ssim_matrix_parallel,
            threads,
            x,
            wts,
            wts,
            c1,
            c2,
            mu,
            d,
            out,
        )
        return out
    xf = x.astype(np.float64)
    mu, mu2, var = _ssim_stats(xf)
    win = gaussian_window().tolist()
    win2 = [2.0 * v for v in win]
    hv, wv = h - 2 * r, w - 2 * r
    out = np.eye(n)
    with _torch_threads(1):
        tx = torch.from_numpy(xf)
        tmu = torch.from_numpy(mu)
        mu_twice = tmu * 2.0
        m2h = torch.from_numpy(mu2 + c1 / 2.0)
        vh = torch.from_numpy(var + c2 / 2.0)
        prod = torch.empty((h, w), dtype=torch.float64)
        rows, rtmp = torch.empty((hv, w), dtype=torch.float64), torch.empty((hv, w), dtype=torch.float64)
        g2, gtmp = torch.empty((hv, wv), dtype=torch.float64), torch.empty((hv, wv), dtype=torch.float64)
        a, b, c = (torch.empty((hv, wv), dtype=torch.float64) for _ in range(3))
        for i in range(n - 1):
            for j in range(i + 1, n):
                torch.mul(tx[i], tx[j], out=prod)
                _shifted_filter(prod, win, rows, rtmp, 0)
                _shifted_filter(rows, win2, g2, gtmp, 1)  # 2 mu_xy
                torch.mul(mu_twice[i], tmu[j], out=a)  # 2 mu_x mu_y
                g2.sub_(a).add_(c2)  # 2 sigma_xy + C2
                a.add_(c1).mul_(g2)  # numerator
                torch.add(m2h[i], m2h[j], out=b)  # mu_x^2 + mu_y^2 + C1
                torch.add(vh[i], vh[j], out=c)  # sigma_x^2 + sigma_y^2 + C2
                b.mul_(c)
                a.div_(b)
                out[i, j] = out[j, i] = float(a.numpy().mean(dtype=np.float64))  # numpy: deterministic order
    return out


def _gamma(k: int, unit: float) -> float:
    """Higham's ``gamma_k = k u / (1 - k u)``: ``k`` roundings of unit roundoff ``u`` (Higham 2002, Lemma 3.1)."""
    return k * unit / (1.0 - k * unit)


def ssim_screen_bound(sq_sums: np.ndarray, n_valid: int, c2: float) -> np.ndarray:
    """(N, N) bound on ``|screened - exact|`` mean SSIM, from each slice's ``sum(x**2)`` (``sq_sums``, (N,)).

    Per pixel, with ``S = A C / (B D)``, ``A = 2 m + C1``, ``B = mu_x^2 + mu_y^2 + C1``, ``C = 2 (E - m) + C2``,
    ``D = sigma_x^2 + sigma_y^2 + C2``, ``m = mu_x mu_y``, ``E`` the filtered product: ``A``, ``B``, ``D`` are sums
    of non-negative terms, so float32 gives them relative errors of a few ``u = 2**-24``; ``E`` is a 22-tap
    filter of exact non-negative float32 products, relative error ``gamma_24``; only ``C`` cancels, with absolute
    error at most ``2 gamma_30 (E + m) + u C2``. With ``|S| <= 1``, ``A <= B`` and ``D >= C2`` the per-pixel
    error is at most ``gamma_24 + 2 gamma_32 (E + m) / C2`` (counts rounded up to cover the float32 rounding of the
    float64 maps, of the weights and of ``C1``, ``C2``). Over the valid pixels ``sum E <= sum x y`` (filter weights
    sum to 1) and ``sum m <= sqrt(sum mu_x^2 sum mu_y^2) <= sqrt(sum x^2 sum y^2)`` (Cauchy-Schwarz, Jensen), so the
    mean is off
    by at most ``gamma_24 + 4 gamma_32 sqrt(Q_x Q_y) / (n_valid C2)``, plus ``1e-10`` for the float64 rounding of
    the exact value itself (~1e-15 observed). Loose by design (errors ~400x smaller on CT slices, >= 10x smaller on
    the worst inputs found, bright flat pairs): it only decides which pairs are recomputed in float64.
    """
    u = 2.0**-24
    q = np.asarray(sq_sums, dtype=np.float64)
    return _gamma(24, u) + 4.0 * _gamma(32, u) * np.sqrt(np.outer(q, q)) / (n_valid * c2) + 1e-10


def screen_ssim(
    images: np.ndarray, data_range: float = 255.0, threads: int = 1
) -> tuple[np.ndarray, np.ndarray, Callable[[int, int], float]]:
    """Screened all-pairs SSIM for the reduction: ``(approx, bound, exact)`` with ``|approx - pairwise_ssim| <= bound``.

    ``approx`` is the fused pair kernel evaluated in float32 (about twice as fast as float64: twice the SIMD width,
    half the memory traffic of the per-slice maps), ``bound`` is :func:`ssim_screen_bound`, and ``exact(i, j)``
    returns the float64 value that :func:`pairwise_ssim` gives pair ``(i, j)``, bit for bit (same routines, the
    two slices' map rows recomputed alongside: a few pairs' work; identical slices: exactly 1 at once).
    :func:`~medssl_monai.reduction.reduce_pairs` with ``bound`` and ``refine=exact`` then returns the keep-set of the
    exact matrix while recomputing only the pairs whose order the bound leaves open. Needs numba
    (``pip install numba``).
    """
    if not pairwise_kernels.use_numba():
        raise RuntimeError("screen_ssim needs the numba kernels (pip install numba).")
    x = np.ascontiguousarray(check_stack(images, dtype=np.uint8))
    n, h, w = x.shape
    r = RADIUS
    if h < 2 * r + 1 or w < 2 * r + 1:
        raise ValueError(f"SSIM needs slices of at least 11x11 pixels, got {h}x{w}.")
    c1, c2 = _ssim_constants(data_range)
    hv, wv = h - 2 * r, w - 2 * r
    wts = gaussian_window()
    approx = np.empty((n, n))
    mu = np.empty((n, hv, wv), np.float32)
    d = np.empty_like(mu)
    args = (x, wts, wts.astype(np.float32), np.float32(c1), np.float32(c2), mu, d, approx)
    pairwise_kernels.run_threaded(pairwise_kernels.ssim_matrix, pairwise_kernels.ssim_matrix_parallel, threads, *args)
    del mu, d
    sq = np.einsum("nhw,nhw->n", x, x, dtype=np.int64)  # exact sum of squares per slice
    bound = ssim_screen_bound(sq, hv * wv, c2)

    def exact(i: int, j: int) -> float:
        if np.array_equal(x[i], x[j]):  # the kernel gives exactly 1 for identical slices: ties at 1 stay cheap
            return 1.0
        return float(pairwise_kernels.ssim_pair(x[i], x[j], wts, c1, c2))

    return approx, bound, exact


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM of two uint8 (H, W) slices (see :func:`pairwise_ssim`)."""
    return float(pairwise_ssim(np.stack([a, b]), data_range)[0, 1])


def _bin_codes(x: np.ndarray, bins: int) -> np.ndarray:
    """Per-slice bin index 0..bins-1 exactly as ``np.histogramdd(..., bins=bins)`` assigns it: uint8 for
    ``bins <= 256`` (a quarter of the memory traffic of int64 codes for the joint histograms), else int64."""
    dtype = np.uint8 if bins <= 256 else np.int64
    codes = np.empty(x.shape, dtype=dtype)
    values = np.arange(256, dtype=np.float64)
    for i, s in enumerate(x):
        lo, hi = float(s.min()), float(s.max())
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        lut = np.searchsorted(edges, values, side="right") - 1
        lut[values == edges[-1]] = bins - 1  # histogramdd puts the right edge into the last bin
        np.take(lut.astype(dtype), s, out=codes[i])
    return codes


def _entropy(counts: np.ndarray, total: int, clogc: np.ndarray) -> float:
    """Shannon entropy (nats) of a histogram with ``total`` samples via a table of ``c log c``."""
    return float(np.log(total) - clogc[counts].sum() / total)


def pairwise_nmi(images: np.ndarray, bins: int = 256, threads: int = 1) -> np.ndarray:
    """(N, N) normalised mutual information ``(H(A) + H(B)) / H(A, B)`` of uint8 (N, H, W) slices, float64.

    Symmetric with diagonal 2 (identical slices) except for constant slices, whose NMI with themselves is
    undefined (0/0) and set to 2 as well. With numba and ``bins <= 256`` the kernel of the module docstring runs
    (``threads`` numba threads; ignored otherwise).
    """
    x = check_stack(images, dtype=np.uint8)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}.")
    n = len(x)
    total = x[0].size
    codes = _bin_codes(x, bins).reshape(n, -1)
    c = np.arange(total + 1, dtype=np.float64)
    clogc = c * np.log(np.maximum(c, 1.0))
    if pairwise_kernels.use_numba() and bins <= 256:
        out = np.empty((n, n))
        pairwise_kernels.run_threaded(
            pairwise_kernels.nmi_matrix, pairwise_kernels.nmi_matrix_parallel, threads, codes, clogc, out
        )
        return out
    marg = np.array([_entropy(np.bincount(codes[i], minlength=bins), total, clogc) for i in range(n)])
    out = np.full((n, n), 2.0)
    row_codes = np.empty(total, dtype=np.int64)
    for i in range(n - 1):
        np.multiply(codes[i], bins, out=row_codes, dtype=np.int64)
        for j in range(i + 1, n):
            joint = np.bincount(row_codes + codes[j], minlength=bins * bins)
            h_ab = _entropy(joint, total, clogc)
            val = (marg[i] + marg[j]) / h_ab if h_ab > 0 else 2.0
            out[i, j] = out[j, i] = val
    return out


def nmi(a: np.ndarray, b: np.ndarray, bins: int = 256) -> float:
    """NMI of two uint8 (H, W) slices (see :func:`pairwise_nmi`)."""
    return float(pairwise_nmi(np.stack([a, b]), bins)[0, 1])
