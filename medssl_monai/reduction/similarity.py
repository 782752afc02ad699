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
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d

from ._checks import check_stack

__all__ = ["gaussian_window", "nmi", "pairwise_nmi", "pairwise_ssim", "ssim"]

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


def pairwise_ssim(images: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """(N, N) mean SSIM between all pairs of uint8 (N, H, W) slices (symmetric, diagonal 1), float64.

    Slices must be at least 11x11 (the window). Per pair: one product, one separable filter and a few in-place
    element-wise passes into buffers allocated once (fresh allocations cost page faults per pair).
    """
    x = check_stack(images, dtype=np.uint8)
    n, h, w = x.shape
    r = RADIUS
    if h < 2 * r + 1 or w < 2 * r + 1:
        raise ValueError(f"SSIM needs slices of at least 11x11 pixels, got {h}x{w}.")
    xf = x.astype(np.float64)
    mu, mu2, var = _ssim_stats(xf)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    win = gaussian_window()
    hv, wv = h - 2 * r, w - 2 * r
    prod, rows = np.empty((h, w)), np.empty((h, w))
    full = np.empty((hv, w))
    a, b, c, d = (np.empty((hv, wv)) for _ in range(4))
    out = np.eye(n)
    for i in range(n - 1):
        for j in range(i + 1, n):
            np.multiply(xf[i], xf[j], out=prod)
            correlate1d(prod, win, axis=0, output=rows, mode="reflect")
            correlate1d(rows[r:-r], win, axis=1, output=full, mode="reflect")
            uxy = full[:, r:-r]
            np.multiply(mu[i], mu[j], out=a)  # mu_x mu_y
            np.subtract(uxy, a, out=b)  # sigma_xy
            b *= 2.0
            b += c2
            a *= 2.0
            a += c1
            a *= b  # numerator
            np.add(mu2[i], mu2[j], out=c)
            c += c1
            np.add(var[i], var[j], out=d)
            d += c2
            c *= d  # denominator
            a /= c
            out[i, j] = out[j, i] = a.mean(dtype=np.float64)
    return out


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM of two uint8 (H, W) slices (see :func:`pairwise_ssim`)."""
    return float(pairwise_ssim(np.stack([a, b]), data_range)[0, 1])


def _bin_codes(x: np.ndarray, bins: int) -> np.ndarray:
    """Per-slice bin index 0..bins-1 exactly as ``np.histogramdd(..., bins=bins)`` assigns it."""
    codes = np.empty(x.shape, dtype=np.int64)
    values = np.arange(256, dtype=np.float64)
    for i, s in enumerate(x):
        lo, hi = float(s.min()), float(s.max())
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        lut = np.searchsorted(edges, values, side="right") - 1
        lut[values == edges[-1]] = bins - 1  # histogramdd puts the right edge into the last bin
        codes[i] = lut[s]
    return codes


def _entropy(counts: np.ndarray, total: int, clogc: np.ndarray) -> float:
    """Shannon entropy (nats) of a histogram with ``total`` samples via a table of ``c log c``."""
    return float(np.log(total) - clogc[counts].sum() / total)


def pairwise_nmi(images: np.ndarray, bins: int = 256) -> np.ndarray:
    """(N, N) normalised mutual information ``(H(A) + H(B)) / H(A, B)`` of uint8 (N, H, W) slices, float64.

    Symmetric with diagonal 2 (identical slices) except for constant slices, whose NMI with themselves is
    undefined (0/0) and set to 2 as well.
    """
    x = check_stack(images, dtype=np.uint8)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}.")
    n = len(x)
    total = x[0].size
    codes = _bin_codes(x, bins).reshape(n, -1)
    c = np.arange(total + 1, dtype=np.float64)
    clogc = c * np.log(np.maximum(c, 1.0))
    marg = np.array([_entropy(np.bincount(codes[i], minlength=bins), total, clogc) for i in range(n)])
    out = np.full((n, n), 2.0)
    row_codes = np.empty(total, dtype=np.int64)
    for i in range(n - 1):
        np.multiply(codes[i], bins, out=row_codes)
        for j in range(i + 1, n):
            joint = np.bincount(row_codes + codes[j], minlength=bins * bins)
            h_ab = _entropy(joint, total, clogc)
            val = (marg[i] + marg[j]) / h_ab if h_ab > 0 else 2.0
            out[i, j] = out[j, i] = val
    return out


def nmi(a: np.ndarray, b: np.ndarray, bins: int = 256) -> float:
    """NMI of two uint8 (H, W) slices (see :func:`pairwise_nmi`)."""
    return float(pairwise_nmi(np.stack([a, b]), bins)[0, 1])
