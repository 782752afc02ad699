"""Optional numba kernels for the reduction's hot loops (extra ``medssl_monai[fast]``); exact, like the numpy paths.

Everything here is an accelerator: each public function of :mod:`~medssl_monai.reduction` keeps a pure numpy/torch
path that gives the same bits, and uses these kernels only when numba imports (``HAVE_NUMBA``) and the environment
variable ``MEDSSL_NO_NUMBA`` is unset. Kernels compile on first use (about 1-3 s per input dtype; ``cache=True``
keeps the machine code next to this file for later processes) and run single-threaded by default: volumes are
the parallel unit (:mod:`~medssl_monai.reduction.run`); ``threads=k`` calls the ``*_parallel`` variant, a separate
function because numba's cache key ignores ``parallel=True``.

Exactness arguments (the tests compare every kernel with its numpy path and with imagehash / scikit-image):

* 8-bit conversion: the same float32 / float64 operations in the same order as
  :func:`~medssl_monai.reduction.to_uint8` (no fast-math flags on them), hence the same bits.
* dHash, first (horizontal) Pillow pass: float32 dot products of the 8-bit row with ``w = k / 2**22`` (Pillow's
  fixed-point weights ``k``, so ``w`` is exact in float32), summed in any order (SIMD). The error of a float32 sum of
  ``n`` products, in any order and with or without fused multiply-add, is at most ``gamma_n * sum |u w|`` with
  ``gamma_n = n 2**-24 / (1 - n 2**-24)`` (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
  Sec. 3.1), and ``sum |u w| <= 255 sum |w|``. Pillow's value is ``floor(S + 1/2)`` of the exact ``S = sum u w``;
  where ``[acc - B, acc + B] + 1/2`` contains no integer the float32 ``acc`` gives it; otherwise (about 1 % of the
  values of a 512-wide row) that one value is recomputed exactly in float64 (integers below 2**53). The second pass
  and the bits are exact float64 integer sums. On CPUs with VNNI, :mod:`~medssl_monai.reduction._vnni` replaces this
  kernel (exact integer sums, same values).
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
F32_MAX_RANGE = 1 << 12  # to_uint8's float32 path (convert._F32_MAX_RANGE)


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


_HALF = 2097152.0  # 2**21
_INV_ONE = 1.0 / 4194304.0  # 2**-22


if HAVE_NUMBA:

    @njit(cache=True, nogil=True)
    def _minmax(s):
        lo = s[0, 0]
        hi = s[0, 0]
        for r in range(s.shape[0]):
            for c in range(s.shape[1]):
                v = s[r, c]
                lo = min(lo, v)
                hi = max(hi, v)
        return np.float64(lo), np.float64(hi)

    @njit(cache=True, nogil=True, error_model="numpy")  # d > 0 where divided: no ZeroDivisionError branch
    def _convert_row(row, lo, hi, f32_path, clip, out):
        """One row to its 8-bit values (into float32 or uint8 ``out``), the operations of ``convert._convert_one`` in
        order."""
        d = hi - lo
        w = row.shape[0]
        if d <= 0:
            for c in range(w):
                out[c] = np.float32(0.0)
        elif f32_path:
            lo32 = np.float32(lo)
            d32 = np.float32(d)
            s32 = np.float32(255.0 / d)
            h32 = np.float32(0.5 + 0.25 / d)
            for c in range(w):
                t = np.float32(row[c]) - lo32
                if clip:
                    t = min(max(t, np.float32(0.0)), d32)
                t = t * s32
                t = t + h32
                out[c] = np.int32(t)  # truncation == floor: t > 0; exact in float32 / uint8
        else:
            for c in range(w):
                t = np.float64(row[c])
                if clip:
                    t = min(max(t, lo), hi)
                t = t - lo
                t = t * 255.0
                t = t / d
                t = t + 0.5
                out[c] = np.floor(t)  # 0..255: exact in float32 / uint8

    # fast-math on the dot products only: their terms are finite (0..255 times finite weights), so the flags that
    # assume no NaN / inf change nothing, and reassociation is what lets LLVM vectorise the sum (the error bound
    # holds for any summation order; the float64 sums are of integers below 2**53, exact in any order).
    @njit(cache=True, nogil=True, fastmath=True)
    def _dot32(a, w):
        acc = np.float32(0.0)
        for t in range(a.shape[0]):
            acc += a[t] * w[t]
        return acc

    @njit(cache=True, nogil=True, fastmath=True)
    def _dot32x4(a, b, c, d, w):
        """Four rows against one weight vector: four independent sums share the weight loads."""
        s0 = np.float32(0.0)
        s1 = np.float32(0.0)
        s2 = np.float32(0.0)
        s3 = np.float32(0.0)
        for t in range(w.shape[0]):
            s0 += a[t] * w[t]
            s1 += b[t] * w[t]
            s2 += c[t] * w[t]
            s3 += d[t] * w[t]
        return s0, s1, s2, s3

    @njit(cache=True, nogil=True, fastmath=True)
    def _dot64(a, w):
        acc = 0.0
        for t in range(a.shape[0]):
            acc += np.float64(a[t]) * w[t]
        return acc

    @njit(cache=True, nogil=True)
    def _first_pass(rowf, nrows, hs, hl, hw32, tmp, r):
        """Float32 sums of Pillow's horizontal pass for ``nrows`` (1 or 4) 8-bit rows ``rowf[q]`` (float32 values,
        zero-padded) into ``tmp[:, r + q]``; rounded afterwards by :func:`_round_rows`."""
        for o in range(hs.shape[0]):
            st = hs[o]
            n = hl[o]
            w = hw32[o, :n]
            if nrows == 4:
                a0, a1, a2, a3 = _dot32x4(
                    rowf[0, st : st + n], rowf[1, st : st + n], rowf[2, st : st + n], rowf[3, st : st + n], w
                )
                tmp[o, r] = a0
                tmp[o, r + 1] = a1
                tmp[o, r + 2] = a2
                tmp[o, r + 3] = a3
            else:
                tmp[o, r] = _dot32(rowf[0, st : st + n], w)

    @njit(cache=True, nogil=True)
    def _round_rows(tmp, rowf, r, nrows, hs, hl, hk64, hbound):
        """Pillow's ``clip8((2**21 + sum) >> 22)`` = ``clip(floor(S + 1/2))`` for the float32 sums of rows
        ``r .. r + nrows - 1`` in ``tmp`` (in place). ``y = acc + 1/2`` and its fractional part are exact in float64;
        the rounding is decided when no integer lies within the error bound ``b`` of ``y`` (``b < frac < 1 - b``);
        otherwise (about 1 %) the sum is recomputed exactly in float64 from the 8-bit row still in ``rowf``."""
        for o in range(tmp.shape[0]):
            b = hbound[o]
            for q in range(nrows):
                y = tmp[o, r + q] + 0.5
                f = np.floor(y)
                frac = y - f
                if not (frac > b and frac < 1.0 - b):
                    st = hs[o]
                    f = np.floor((_dot64(rowf[q, st : st + hl[o]], hk64[o, : hl[o]]) + _HALF) * _INV_ONE)
                tmp[o, r + q] = min(max(f, 0.0), 255.0)

    @njit(cache=True, nogil=True)
    def _second_pass(tmp, vs, vk64, small):
        """Pillow's vertical pass over the transposed first-pass result ``tmp`` (out_w, H + padding): exact."""
        n = vk64.shape[1]
        for o in range(vs.shape[0]):
            for c in range(tmp.shape[0]):
                acc = _dot64(tmp[c, vs[o] : vs[o] + n], vk64[o])
                small[o, c] = min(max(np.floor((acc + _HALF) * _INV_ONE), 0.0), 255.0)

    @njit(cache=True, nogil=True)
    def _dhash_range(x, a, b, convert, window, wlo, whi, int_dtype, hs, hl, hw32, hk64, hbound, vs, vk64, out):
        """Slices ``a .. b - 1`` of (N, H, W) ``x`` -> ``out[i]`` (out_h, out_w) float64 Pillow LANCZOS values,
        horizontal pass first; with ``convert`` the rows go through ``to_uint8``'s arithmetic first (per-slice
        min-max or the window). Rows are converted and filtered four at a time, and their sums rounded at once."""
        _, h, w = x.shape
        pad = hw32.shape[1]
        rowf = np.zeros((4, w + pad), np.float32)  # zero tail: padded taps read zeros
        tmp = np.zeros((hs.shape[0], h + vk64.shape[1]), np.float64)  # transposed, zero tail
        for i in range(a, b):
            lo, hi = wlo, whi
            if convert and not window:
                lo, hi = _minmax(x[i])
            f32_path = int_dtype and np.floor(lo) == lo and np.floor(hi) == hi and hi - lo <= F32_MAX_RANGE
            r = 0
            while r < h:
                nrows = 4 if r + 4 <= h else 1
                for q in range(nrows):
                    if convert:
                        _convert_row(x[i, r + q], lo, hi, f32_path, window, rowf[q])
                    else:
                        for c in range(w):
                            rowf[q, c] = np.float32(x[i, r + q, c])
                _first_pass(rowf, nrows, hs, hl, hw32, tmp, r)
                _round_rows(tmp, rowf, r, nrows, hs, hl, hk64, hbound)
                r += nrows
            _second_pass(tmp, vs, vk64, out[i])

    # Serial and parallel drivers are separate functions: numba's cache key is the function's bytecode and
    # signature, not its flags, so ``njit(parallel=True)`` and ``njit()`` of one function would load each
    # other's machine code from the cache (the first compiled wins).
    @njit(cache=True, nogil=True)
    def dhash_small(x, convert, window, wlo, whi, int_dtype, hs, hl, hw32, hk64, hbound, vs, vk64, out):
        """All slices of ``x`` in one thread (:func:`_dhash_range`)."""
        _dhash_range(x, 0, x.shape[0], convert, window, wlo, whi, int_dtype, hs, hl, hw32, hk64, hbound, vs, vk64, out)

    @njit(cache=True, nogil=True, parallel=True)
    def dhash_small_parallel(x, convert, window, wlo, whi, int_dtype, hs, hl, hw32, hk64, hbound, vs, vk64, out):
        """The slices handed out to the numba threads (:func:`_dhash_range` per slice)."""
        for i in numba.prange(x.shape[0]):
            _dhash_range(x, i, i + 1, convert, window, wlo, whi, int_dtype, hs, hl, hw32, hk64, hbound, vs, vk64, out)

    @njit(cache=True, nogil=True)
    def to_uint8_kernel(x, window, wlo, whi, int_dtype, out):
        """``to_uint8`` slice by slice (same operations); ``out`` uint8 (N, H, W)."""
        n, h, w = x.shape
        rowf = np.empty(w, np.float32)
        for i in range(n):
            if window:
                lo, hi = wlo, whi
            else:
                lo, hi = _minmax(x[i])
            f32_path = int_dtype and np.floor(lo) == lo and np.floor(hi) == hi and hi - lo <= F32_MAX_RANGE
            for r in range(h):
                _convert_row(x[i, r], lo, hi, f32_path, window, rowf)
                for c in range(w):
                    out[i, r, c] = np.uint8(rowf[c])

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

    # NMI and SSIM matrices: (N, N) outputs. Serial and parallel drivers are separate functions (see dhash_small).
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
