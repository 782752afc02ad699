"""numba kernels for the reduction's hot loops (numba is a core dependency); exact, like the numpy paths.

Everything here is an accelerator: each public function of :mod:`~medssl_monai.reduction` keeps a pure numpy/torch
path that gives the same bits, and uses these kernels only when numba imports (``HAVE_NUMBA``) and the environment
variable ``MEDSSL_NO_NUMBA`` is unset. Kernels compile on first use (about 1-3 s per input dtype; ``cache=True``
keeps the machine code next to this file for later processes) and run single-threaded by default: volumes are
the parallel unit (:mod:`~medssl_monai.reduction.run`); ``threads=k`` calls the ``*_parallel`` variant, a separate
function because numba's cache key ignores ``parallel=True``. numba's disk cache notices edits only to the file a
function is defined in, so a cached kernel calls compiled functions of its own file only: this file holds the NMI and
SSIM kernels, :mod:`~medssl_monai.reduction.kernels.hashing` those of the 8-bit conversion and dHash.

Exactness arguments (the tests compare every kernel with its numpy path and with imagehash / scikit-image):

* 8-bit conversion and dHash: :mod:`~medssl_monai.reduction.kernels.hashing`.
* NMI: integer joint histograms (exact), ``c log c`` summed per row of the table in four interleaved partial sums,
  then over rows (a fixed order, not the compiler's); a marginal entropy is the joint entropy of the slice with
  itself, so identical slices give exactly 2.
* SSIM, :func:`ssim_matrix` with float64 maps (``pairwise_ssim``): float64 throughout like the numpy path
  (agreement with scikit-image ~1e-15, the float64 rounding of a different operation order); the per-pixel
  formula is written so that identical slices give exactly 1. Pairs go in tiles, strip by strip of map rows (cache
  blocking); every row is computed alike and summed in row order, so the tiling does not change a bit. The same
  kernel instantiated for float32 maps and weights is the screening pass of the reduction (products are exact in
  float32; the error bound is ``similarity.ssim_screen_bound``).
"""

from __future__ import annotations

import os

import numpy as np

try:  # optional dependency
    import numba
    from numba import njit
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None
    njit = None

__all__ = ["HAVE_NUMBA", "KERNEL_DTYPES", "use_numba"]

HAVE_NUMBA = numba is not None


def use_numba() -> bool:
    """True when the numba kernels are used: numba imports and ``MEDSSL_NO_NUMBA`` is unset or ``0``."""
    return HAVE_NUMBA and os.environ.get("MEDSSL_NO_NUMBA", "0") in ("", "0")


KERNEL_DTYPES = tuple(np.dtype(t) for t in ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"))


def run_threaded(serial, parallel, threads: int, *args) -> None:
    """Call ``serial(*args)``, or for ``threads > 1`` the ``parallel`` (prange) kernel on that many numba threads
    (restored after)."""
    if threads <= 1:
        serial(*args)
        return
    old = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        parallel(*args)
    finally:
        numba.set_num_threads(old)


if HAVE_NUMBA:

    @njit(cache=True, nogil=True)
    def _joint_entropy(a, b, joint, hist, clogc, logp):
        """Joint entropy (nats) of two uint8 code vectors: ``log P - sum c log c / P`` over the 256 * 256 int32
        histogram ``hist`` (zeros, left zeroed), the sum per row of the table in four interleaved partial sums
        ``(s0 + s1) + (s2 + s3)``, then over rows in order (error ~ 320 u, not ~ 65,536 u). Empty bins add
        ``clogc[0] = 0.0`` exactly, so no branch is needed. ``joint`` (P uint16) holds the joint codes
        ``a << 8 | b``, computed in one vectorised loop before the (scalar) counting loop."""
        p = a.shape[0]
        for t in range(p):
            joint[t] = (np.uint16(a[t]) << 8) | np.uint16(b[t])
        for t in range(p):
            hist[joint[t]] += 1
        s = 0.0
        for row in range(256):
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            for q in range(row << 8, (row + 1) << 8, 4):
                s0 += clogc[hist[q]]
                s1 += clogc[hist[q + 1]]
                s2 += clogc[hist[q + 2]]
                s3 += clogc[hist[q + 3]]
            s += (s0 + s1) + (s2 + s3)
        hist[:] = 0
        return logp - s / p

    @njit(cache=True, nogil=True)
    def _nmi_row(codes, i, marg, clogc, logp, joint, hist, out):
        for j in range(i + 1, codes.shape[0]):
            h_ab = _joint_entropy(codes[i], codes[j], joint, hist, clogc, logp)
            v = (marg[i] + marg[j]) / h_ab if h_ab > 0 else 2.0
            out[i, j] = v
            out[j, i] = v

    @njit(cache=True, nogil=True)
    def _nmi_marginal(codes, i, clogc, logp, marg, out):
        hist = np.zeros(65536, np.int32)
        joint = np.empty(codes.shape[1], np.uint16)
        marg[i] = _joint_entropy(codes[i], codes[i], joint, hist, clogc, logp)
        out[i, i] = 2.0

    @njit(cache=True, nogil=True)
    def _nmi_row_pair(codes, k, marg, clogc, logp, out):
        """Rows ``k`` and ``n - 2 - k`` of the upper triangle: equal work for every ``k``."""
        hist = np.zeros(65536, np.int32)
        joint = np.empty(codes.shape[1], np.uint16)
        _nmi_row(codes, k, marg, clogc, logp, joint, hist, out)
        if codes.shape[0] - 2 - k > k:
            _nmi_row(codes, codes.shape[0] - 2 - k, marg, clogc, logp, joint, hist, out)

    # NMI and SSIM matrices: (N, N) outputs. Serial and parallel drivers are separate functions: numba's cache
    # key is the function's bytecode and signature, not its flags, so ``njit(parallel=True)`` and ``njit()`` of one
    # function would load each other's machine code from the cache (the first compiled wins).
    @njit(cache=True, nogil=True)
    def nmi_matrix(codes, clogc, out):
        """(N, N) NMI ``(H(A) + H(B)) / H(A, B)`` of per-slice bin codes (N, P) uint8, entropies in nats from
        ``clogc[c] = c log c``. A marginal entropy is the joint entropy of a slice with itself (same routine,
        same summation order), so two identical slices have NMI exactly 2."""
        n, p = codes.shape
        logp = np.log(np.float64(p))
        marg = np.empty(n, np.float64)
        for i in range(n):
            _nmi_marginal(codes, i, clogc, logp, marg, out)
        for k in range(n // 2):
            _nmi_row_pair(codes, k, marg, clogc, logp, out)

    @njit(cache=True, nogil=True, parallel=True)
    def nmi_matrix_parallel(codes, clogc, out):
        """:func:`nmi_matrix` with slices and row pairs handed out to the numba threads."""
        n, p = codes.shape
        logp = np.log(np.float64(p))
        marg = np.empty(n, np.float64)
        for i in numba.prange(n):
            _nmi_marginal(codes, i, clogc, logp, marg, out)
        for k in numba.prange(n // 2):
            _nmi_row_pair(codes, k, marg, clogc, logp, out)

    # ---- SSIM (Wang et al. 2004) over all pairs: fused valid Gaussian filtering of the products, float64 ----
    _R = 5  # window radius: 11 taps
    _BLOCK = 4  # slices i per block
    _JBLOCK = 4  # slices j per tile of a block
    _STRIP = 32  # map rows per strip: a tile's strip of maps is 8 x 32 rows x 502 x 2 maps (1 MB float32)

    @njit(cache=True, nogil=True, fastmath={"contract"})
    def _vrow(ring, r, wts, v):
        """``v[c] = sum_k wts[k] * rows[r + k][c]``, k = 0..10 in order, rows kept in an 11-slot ring (one 2D
        array, so the vectoriser needs a single runtime alias check against ``v``)."""
        k0, k1, k2, k3 = r % 11, (r + 1) % 11, (r + 2) % 11, (r + 3) % 11
        k4, k5, k6, k7 = (r + 4) % 11, (r + 5) % 11, (r + 6) % 11, (r + 7) % 11
        k8, k9, k10 = (r + 8) % 11, (r + 9) % 11, (r + 10) % 11
        w0, w1, w2, w3, w4, w5 = wts[0], wts[1], wts[2], wts[3], wts[4], wts[5]
        w6, w7, w8, w9, w10 = wts[6], wts[7], wts[8], wts[9], wts[10]
        for c in range(v.shape[0]):
            t = w0 * ring[k0, c]
            t += w1 * ring[k1, c]
            t += w2 * ring[k2, c]
            t += w3 * ring[k3, c]
            t += w4 * ring[k4, c]
            t += w5 * ring[k5, c]
            t += w6 * ring[k6, c]
            t += w7 * ring[k7, c]
            t += w8 * ring[k8, c]
            t += w9 * ring[k9, c]
            t += w10 * ring[k10, c]
            v[c] = t

    @njit(cache=True, nogil=True, fastmath={"contract"})
    def _hrow(v, wts, e):
        """``e[c] = sum_k wts[k] * v[c + k]`` (valid), k = 0..10 in order."""
        w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10 = (
            wts[0],
            wts[1],
            wts[2],
            wts[3],
            wts[4],
            wts[5],
            wts[6],
            wts[7],
            wts[8],
            wts[9],
            wts[10],
        )
        for c in range(e.shape[0]):
            t = w0 * v[c]
            t += w1 * v[c + 1]
            t += w2 * v[c + 2]
            t += w3 * v[c + 3]
            t += w4 * v[c + 4]
            t += w5 * v[c + 5]
            t += w6 * v[c + 6]
            t += w7 * v[c + 7]
            t += w8 * v[c + 8]
            t += w9 * v[c + 9]
            t += w10 * v[c + 10]
            e[c] = t

    @njit(cache=True, nogil=True)
    def _product_row(x, y, row, out):
        """``out = x[row] * y[row]``: an int32 product stored in ``out``'s dtype (exact in float32 too: uint8
        products are below 2**24)."""
        for c in range(out.shape[0]):
            out[c] = np.int32(x[row, c]) * np.int32(y[row, c])

    @njit(cache=True, nogil=True)
    def _slice_stats(x, wts, mu, d, ring, ring2, v, e, e2):
        """Valid-filtered mean ``mu`` and ``d = filter(x * x) - mu * mu`` of one slice (same routines as pairs),
        one pass over the rows, float64; stored in ``mu``'s and ``d``'s dtype (float64, or float32 to screen)."""
        for t in range(2 * _R):
            for c in range(x.shape[1]):
                xv = np.float64(x[t, c])
                ring[t, c] = xv
                ring2[t, c] = xv * xv
        for r in range(mu.shape[0]):
            row = r + 2 * _R
            slot = row % 11
            for c in range(x.shape[1]):
                xv = np.float64(x[row, c])
                ring[slot, c] = xv
                ring2[slot, c] = xv * xv
            _vrow(ring, r, wts, v)
            _hrow(v, wts, e)
            _vrow(ring2, r, wts, v)
            _hrow(v, wts, e2)
            for c in range(e.shape[0]):
                mu[r, c] = e[c]
                d[r, c] = e2[c] - e[c] * e[c]

    @njit(cache=True, nogil=True, error_model="numpy")  # no ZeroDivisionError branch (den >= C1 C2 > 0): SIMD
    def _ssim_row(e, mux, muy, dx, dy, c1, c2, acc):
        for c in range(acc.shape[0]):
            ma = mux[c]
            mb = muy[c]
            m = ma * mb
            t = e[c] - m
            num = ((m + m) + c1) * ((t + t) + c2)  # t + t, not 2.0 * t: stays float32 in the screening kernel
            den = ((ma * ma + mb * mb) + c1) * ((dx[c] + dy[c]) + c2)
            acc[c] += num / den  # acc is float64 in both kernels

    @njit(cache=True, nogil=True)
    def _ssim_rows(x, y, mux, muy, dx, dy, wts, c1, c2, r0, r1, ring, v, e, acc):
        """Add rows ``r0 .. r1 - 1`` of one pair's SSIM map to ``acc`` (per column). Per pixel, with
        ``m = mu_x mu_y`` and ``E = filter(x * y)``: ``(2 m + C1) (2 (E - m) + C2) / ((mu_x^2 + mu_y^2 + C1)
        (d_x + d_y + C2))``, written so that for ``x == y`` numerator and denominator are the same numbers
        (doubling is exact): SSIM exactly 1. Each row's values do not depend on ``r0`` (the ring is refilled)."""
        for q in range(r0, r0 + 2 * _R):
            _product_row(x, y, q, ring[q % 11])
        for r in range(r0, r1):
            row = r + 2 * _R
            _product_row(x, y, row, ring[row % 11])
            _vrow(ring, r, wts, v)
            _hrow(v, wts, e)
            _ssim_row(e, mux[r], muy[r], dx[r], dy[r], c1, c2, acc)

    @njit(cache=True, nogil=True)
    def _mean(acc, rows):
        s = 0.0
        for c in range(acc.shape[0]):
            s += acc[c]
        return s / (rows * acc.shape[0])

    @njit(cache=True, nogil=True)
    def ssim_stats(x, wts, mu, d):
        """Float64 mean / variance maps of one uint8 slice ``x`` into ``mu``, ``d`` (float64 or float32)."""
        w = x.shape[1]
        wv = w - 2 * _R
        _slice_stats(x, wts, mu, d, np.empty((11, w)), np.empty((11, w)), np.empty(w), np.empty(wv), np.empty(wv))

    @njit(cache=True, nogil=True)
    def _ssim_stats_one(x, i, wts, mu, d, out):
        ssim_stats(x[i], wts, mu[i], d[i])
        out[i, i] = 1.0

    @njit(cache=True, nogil=True)
    def _ssim_block_pair(x, k, nb, wts, c1, c2, mu, d, out):
        """Blocks ``k`` and ``nb - 1 - k`` of ``_BLOCK`` rows ``i`` each (about equal work per ``k``). Within a
        block, pairs go in tiles of ``_BLOCK x _JBLOCK`` slices, strip by strip of ``_STRIP`` map rows, so that a
        strip's mean / variance maps of the tile's slices stay in the core's L2 cache while its pairs use them
        (the maps otherwise stream from memory once per pair). Same values as pair by pair: every row of a pair is
        computed alike and added to its column sums in row order."""
        n, _, w = x.shape
        hv, wv = mu.shape[1], mu.shape[2]
        ring = np.empty((11, w), mu.dtype)  # float64 (exact matrix) or float32 (screening)
        v = np.empty(w, mu.dtype)
        e = np.empty(wv, mu.dtype)
        acc = np.empty((_BLOCK, _JBLOCK, wv), np.float64)
        kk = np.int64(k)  # a prange index is unsigned: nb - 1 - k would be float64
        for q in range(2):
            b = kk if q == 0 else np.int64(nb) - 1 - kk
            if q == 1 and b <= kk:
                continue
            i0 = b * _BLOCK
            i1 = min(i0 + _BLOCK, n - 1)
            for j0 in range(i0 + 1, n, _JBLOCK):
                j1 = min(j0 + _JBLOCK, n)
                acc[:, :, :] = 0.0
                for r0 in range(0, hv, _STRIP):
                    r1 = min(r0 + _STRIP, hv)
                    for j in range(j0, j1):
                        for i in range(i0, min(i1, j)):
                            a = acc[i - i0, j - j0]
                            _ssim_rows(x[i], x[j], mu[i], mu[j], d[i], d[j], wts, c1, c2, r0, r1, ring, v, e, a)
                for j in range(j0, j1):
                    for i in range(i0, min(i1, j)):
                        val = _mean(acc[i - i0, j - j0], hv)
                        out[i, j] = val
                        out[j, i] = val

    @njit(cache=True, nogil=True)
    def ssim_matrix(x, wts, wts_pair, c1, c2, mu, d, out):
        """(N, N) mean SSIM of uint8 slices ``x``; ``mu``, ``d``: per-slice valid-filtered mean and variance.

        Exact: float64 ``mu``, ``d``, ``wts_pair = wts``, ``c1``, ``c2``. Screening: the same kernel on float32
        maps (computed in float64, then rounded), float32 ``wts_pair``, ``c1``, ``c2``; only the per-pixel SSIM
        sums stay float64."""
        n = x.shape[0]
        for i in range(n):
            _ssim_stats_one(x, i, wts, mu, d, out)
        nb = (n - 1 + _BLOCK - 1) // _BLOCK
        for k in range((nb + 1) // 2):
            _ssim_block_pair(x, k, nb, wts_pair, c1, c2, mu, d, out)

    @njit(cache=True, nogil=True, parallel=True)
    def ssim_matrix_parallel(x, wts, wts_pair, c1, c2, mu, d, out):
        """:func:`ssim_matrix` with slices and block pairs handed out to the numba threads."""
        n = x.shape[0]
        for i in numba.prange(n):
            _ssim_stats_one(x, i, wts, mu, d, out)
        nb = (n - 1 + _BLOCK - 1) // _BLOCK
        for k in numba.prange((nb + 1) // 2):
            _ssim_block_pair(x, k, nb, wts_pair, c1, c2, mu, d, out)

    @njit(cache=True, nogil=True)
    def _ring_row(x, y, row, ring, kind):
        """Ring slot of image row ``row``: ``x`` (kind 0), ``x * x`` (1) or ``x * y`` (2), float64."""
        slot = ring[row % 11]
        for c in range(x.shape[1]):
            a = np.float64(x[row, c])
            slot[c] = a if kind == 0 else a * (a if kind == 1 else np.float64(y[row, c]))

    @njit(cache=True, nogil=True)
    def ssim_pair(x, y, wts, c1, c2):
        """Exact mean SSIM of one pair without per-slice maps: the bits :func:`ssim_matrix` gives it (the maps'
        rows are computed by the same routines from the same ring rows, row by row; nothing of slice size)."""
        h, w = x.shape
        hv, wv = h - 2 * _R, w - 2 * _R
        rings = np.empty((5, 11, w))  # x, x * x, y, y * y, x * y
        stats = np.empty((4, wv))  # mu_x, d_x, mu_y, d_y of the current row
        v = np.empty(w)
        e = np.empty(wv)
        e2 = np.empty(wv)
        acc = np.zeros(wv)
        for row in range(h):
            _ring_row(x, y, row, rings[0], 0)
            _ring_row(x, y, row, rings[1], 1)
            _ring_row(y, y, row, rings[2], 0)
            _ring_row(y, y, row, rings[3], 1)
            _ring_row(x, y, row, rings[4], 2)
            r = row - 2 * _R
            if r < 0:
                continue
            for s in range(2):
                _vrow(rings[2 * s], r, wts, v)
                _hrow(v, wts, e)
                _vrow(rings[2 * s + 1], r, wts, v)
                _hrow(v, wts, e2)
                for c in range(wv):
                    stats[2 * s, c] = e[c]
                    stats[2 * s + 1, c] = e2[c] - e[c] * e[c]
            _vrow(rings[4], r, wts, v)
            _hrow(v, wts, e)
            _ssim_row(e, stats[0], stats[2], stats[1], stats[3], c1, c2, acc)
        return _mean(acc, hv)
