"""numba kernels of the 8-bit conversion and of dHash (Pillow's LANCZOS resize to 9x8); exact, like the numpy paths
(see :mod:`~medssl_monai.reduction.kernels.pairwise` for when kernels are used, threads, and the serial / parallel split).

One file on purpose: numba's disk cache notices edits only to the file a function is defined in, so every compiled
function these kernels call lives here (a kernel in another file calling ``_convert_row`` would keep a stale copy
after an edit here).

8-bit conversion: the same float32 / float64 operations in the same order as :func:`~medssl_monai.reduction.to_uint8`
(no fast-math flags on them), hence the same bits.

Two dHash kernels give Pillow's values exactly, hence imagehash's bits (the tests compare them with each other, with
the numpy path and with imagehash):

* **VNNI** (``vnni_dhash_small``), where the CPU has VNNI byte dot products (AVX-VNNI, or AVX512-VNNI with
  AVX512-VL: Intel Cascade Lake / Ice Lake / Alder Lake / Sapphire Rapids and later, AMD Zen 4 and later). Each Pillow
  pass sums ``k * u`` over a band of taps in int32 (``k`` its fixed-point weights, below 2**23: at most 2**22 when
  downscaling, 5,220,702 when upscaling from 2 pixels; ``u`` the 8-bit pixels) and rounds ``clip8((2**21 + sum) >>
  22)``. ``vpdpbusd`` multiplies 32 unsigned bytes by 32 signed bytes and adds each group of four products to one of
  eight int32 lanes. The pixels are the unsigned bytes; the weights are split into signed bytes (limbs)
  ``k = l0 + 2**8 l1 + 2**16 l2`` (balanced digits in -128..127), and the limb sums are recombined
  ``s0 + (s1 << 8) + (s2 << 16)`` lane by lane. Every step is an integer identity modulo 2**32 and the true sum fits
  in int32 (Pillow's own accumulator), so the result is Pillow's sum exactly: no rounding check and no float64
  re-computation. Only the middle of a band, where ``|k| > 2**15``, needs the third limb (512 -> 9: 27 of 83 chunks of
  32 taps). Both passes use it; the horizontal one takes four image rows per weight load. The dot products are LLVM
  vector code (a numba ``intrinsic``) calling ``llvm.x86.avx512.vpdpbusd.256``, which LLVM emits as the VEX
  (AVX-VNNI) or EVEX (AVX512-VNNI + VL) instruction. Memory: the int16 slice (512 KiB at 512x512) is read twice, once
  for its min/max, then to convert it; while slice ``i`` is hashed, slice ``i + 1`` is prefetched a few cache lines
  per dot product and its min/max taken on lines prefetched a while before, so neither read waits for memory.
  Measured on a 2-core Sapphire-Rapids-class KVM guest (512x512 int16 lung CT): ~65 us per slice held in cache,
  ~82 us streamed (the float32 kernel: ~102 and ~132 us).
* **float32** (``dhash_small``), everywhere else: float32 dot products of the 8-bit row with ``w = k / 2**22``
  (exact in float32), summed in any order (SIMD). The error of a float32 sum of ``n`` products, in any order and with
  or without fused multiply-add, is at most ``gamma_n * sum |u w|`` with ``gamma_n = n 2**-24 / (1 - n 2**-24)``
  (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., Sec. 3.1), and ``sum |u w| <= 255 sum |w|``.
  Pillow's value is ``floor(S + 1/2)`` of the exact ``S = sum u w``; where ``[acc - B, acc + B] + 1/2`` contains no
  integer the float32 ``acc`` gives it; otherwise (about 1 % of the values of a 512-wide row) that one value is
  recomputed exactly in float64 (integers below 2**53). The second pass is an exact float64 integer sum.

:func:`vnni_available` decides from the features numba compiles for (``NUMBA_CPU_FEATURES`` if set, else the host's
with numba's ``NUMBA_ENABLE_AVX`` applied); it is False when numba is pinned to a CPU name (``NUMBA_CPU_NAME``, e.g.
for a portable cache), when JIT is disabled (``NUMBA_DISABLE_JIT``), or when ``MEDSSL_NO_VNNI`` is set to anything
but 0 (which forces the float32 kernel).
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from medssl_monai.reduction.kernels.pairwise import HAVE_NUMBA, use_numba

if HAVE_NUMBA:
    import numba
    from llvmlite import ir
    from numba import njit, types
    from numba.core import cgutils
    from numba.extending import intrinsic

__all__ = ["F32_MAX_RANGE", "vnni_available", "vnni_limbs"]

F32_MAX_RANGE = 1 << 12  # to_uint8's float32 path (convert._F32_MAX_RANGE)
_HALF = 2097152.0  # 2**21
_INV_ONE = 1.0 / 4194304.0  # 2**-22
_CHUNK = 32  # bytes per vpdpbusd (256-bit)
# Per dot-product call, the next slice's cache lines prefetched, and how far behind them its min/max is taken
# (swept on 512x512 int16: lines 6 / 8 / 10 / 12, lag 16 / 64 / 128 / 256 lines; 8 and 64 were fastest).
_PREFETCH_LINES = 8
_MM_LAG = 64


@lru_cache(maxsize=1)
def _host_has_vnni() -> bool:
    """VNNI among the features numba compiles for (its own view: ``NUMBA_CPU_FEATURES``, ``NUMBA_ENABLE_AVX``)."""
    from llvmlite import binding
    from numba.core import codegen, config

    if config.CPU_NAME or config.DISABLE_JIT:  # a pinned target (portable cache) / no compilation at all
        return False
    if binding.llvm_version_info[0] < 15:  # the IR below assumes opaque pointers (``llvm.prefetch.p0``)
        return False
    flags = config.CPU_FEATURES if config.CPU_FEATURES is not None else codegen.get_host_cpu_features()
    on = {f[1:] for f in str(flags).split(",") if f.startswith("+")}
    return "avxvnni" in on or {"avx512vnni", "avx512vl"} <= on


def vnni_available() -> bool:
    """True when the VNNI kernel is used: numba kernels in use, the host CPU has VNNI, ``MEDSSL_NO_VNNI`` unset/0."""
    return use_numba() and os.environ.get("MEDSSL_NO_VNNI", "0") in ("", "0") and _host_has_vnni()


def _balanced_byte(v: np.ndarray) -> np.ndarray:
    """The signed byte ``b`` in -128..127 with ``v - b`` a multiple of 256."""
    return ((v + 128) & 255) - 128


def vnni_limbs(k: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """Pillow weights ``k`` (out, n) (band ``o``'s taps in ``k[o, :lengths[o]]``, as in ``hashing._band``) as
    signed-byte limbs ``k = l0 + 2**8 l1 + 2**16 l2`` for :func:`_dot4`: ``(nch, wl, c_lo, c_hi)`` with ``nch`` the
    32-tap chunks per band, ``wl`` int8 (out, 3, 32 * max(nch)), and the third limb non-zero only in chunks
    ``c_lo[o] .. c_hi[o] - 1`` (where some ``|k| > 2**15``). ``None`` if a weight needs a fourth limb (|k| above
    8,355,711; never for Pillow's weights, which stay below 2**23)."""
    k = np.asarray(k, dtype=np.float64)
    out = k.shape[0]
    nch = -(-np.asarray(lengths, dtype=np.int64) // _CHUNK)
    wl = np.zeros((out, 3, int(nch.max()) * _CHUNK), dtype=np.int8)
    c_lo = np.zeros(out, dtype=np.int64)
    c_hi = np.zeros(out, dtype=np.int64)
    for o in range(out):
        n = int(lengths[o])
        ko = np.zeros(wl.shape[2], dtype=np.int64)
        ko[:n] = k[o, :n].astype(np.int64)
        l0 = _balanced_byte(ko)
        w1 = (ko - l0) >> 8  # exact: ko = l0 + 256 * w1
        wide = np.flatnonzero((w1 < -128) | (w1 > 127))
        l1, l2 = w1.copy(), np.zeros_like(w1)
        if len(wide):
            c_lo[o], c_hi[o] = wide[0] // _CHUNK, wide[-1] // _CHUNK + 1
            mid = slice(int(c_lo[o]) * _CHUNK, int(c_hi[o]) * _CHUNK)
            l1[mid] = _balanced_byte(w1[mid])
            l2[mid] = (w1[mid] - l1[mid]) >> 8
        if l2.min() < -128 or l2.max() > 127:
            return None
        if not np.array_equal(l0 + (l1 << 8) + (l2 << 16), ko):  # never: an identity
            raise AssertionError("limb split does not reconstruct the weights")
        wl[o] = np.stack([l0, l1, l2])
    for a in (wl, nch, c_lo, c_hi):
        a.setflags(write=False)
    return nch, wl, c_lo, c_hi


if HAVE_NUMBA:

    @njit(cache=True, nogil=True)
    def _minmax_span(v, lo, hi):
        """``(min(lo, v.min()), max(hi, v.max()))`` for a 1D ``v``."""
        for e in range(v.shape[0]):
            lo = min(lo, v[e])
            hi = max(hi, v[e])
        return lo, hi

    @njit(cache=True, nogil=True)
    def _minmax(s):
        """Min and max of a C-contiguous slice, as float64."""
        lo, hi = _minmax_span(s.reshape(-1), s[0, 0], s[0, 0])
        return np.float64(lo), np.float64(hi)

    @njit(cache=True, nogil=True)
    def _ahead(flat, pf, mm, end, lines, minmax, lo, hi):
        """Work on the next slice (elements ``.. end - 1`` of the flat input) done between steps on the current one:
        prefetch ``lines`` cache lines from element ``pf`` (up to ``lines - 1`` past ``end``: prefetches never
        fault) and, with ``minmax``, fold ``lines`` lines from element ``mm`` on into the running ``(lo, hi)`` once
        they were prefetched at least ``_MM_LAG`` lines before (in cache by now). Returns the advanced
        ``pf, mm, lo, hi``; the caller folds what is left after its last step."""
        step = max(1, 64 // flat.itemsize)  # elements per cache line
        if pf < end:
            for _ in range(lines):
                _prefetch(flat, pf)
                pf += step
        n = lines * step
        if minmax and mm + n <= min(pf - _MM_LAG * step, end):
            lo, hi = _minmax_span(flat[mm : mm + n], lo, hi)
            mm += n
        return pf, mm, lo, hi

    @njit(cache=True, nogil=True)
    def _f32_path(lo, hi, int_dtype):
        """``to_uint8``'s float32 path applies: integer input and bounds, range at most ``F32_MAX_RANGE``."""
        return int_dtype and np.floor(lo) == lo and np.floor(hi) == hi and hi - lo <= F32_MAX_RANGE

    @njit(cache=True, nogil=True)
    def _first_bounds(x, a, convert, window):
        """The 8-bit conversion bounds of slice ``a`` (the window's, or the slice's min/max) and whether later slices
        need their min/max (``convert`` / ``window`` as None-or-not: see :func:`_vnni_range`)."""
        minmax = convert is not None and window is None
        lo, hi = 0.0, 0.0
        if window is not None:
            lo, hi = window
        elif minmax:
            lo, hi = _minmax(x[a])
        return lo, hi, minmax

    @njit(cache=True, nogil=True)
    def _next_slice(flat, i, b, size):
        """Where the work on slice ``i + 1`` starts in the flat input: the prefetch / min-max cursor, the end (equal
        to the cursor when ``i + 1`` is past the run ``.. b - 1``: nothing to do), and the min/max seed."""
        pf = (i + 1) * size
        end = (i + 2) * size if i + 1 < b else pf
        seed = flat[min(pf, flat.shape[0] - 1)]
        return pf, end, seed

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
    def _row(row, convert, window, lo, hi, f32_path, out):
        """One row into ``out`` (float32 for the float32 kernel, uint8 for the VNNI one): copied (``convert`` None) or
        converted (clipped if ``window`` is set). ``arg is None`` branches are pruned at compile time, so the clip
        flag reaches ``_convert_row`` as a constant (a loop without that branch)."""
        if convert is None:
            for c in range(row.shape[0]):
                out[c] = row[c]
        elif window is None:
            _convert_row(row, lo, hi, f32_path, False, out)
        else:
            _convert_row(row, lo, hi, f32_path, True, out)

    @njit(cache=True, nogil=True)
    def _dhash_range(x, a, b, convert, window, int_dtype, hs, hl, hw32, hk64, hbound, vs, vk64, out):
        """Slices ``a .. b - 1`` of (N, H, W) ``x`` -> ``out[i]`` (out_h, out_w) float64 Pillow LANCZOS values,
        horizontal pass first. ``convert``: None (8-bit input) or True (``to_uint8``'s arithmetic first);
        ``window``: None (per-slice min-max) or ``(low, high)``; as None-or-not they are compile-time facts (see
        :func:`_vnni_range`). Rows are converted and filtered four at a time, and their sums rounded at once; per
        group of four rows, the next slice is prefetched and its min/max taken (:func:`_ahead`)."""
        _, h, w = x.shape
        pad = hw32.shape[1]
        rowf = np.zeros((4, w + pad), np.float32)  # zero tail: padded taps read zeros
        tmp = np.zeros((hs.shape[0], h + vk64.shape[1]), np.float64)  # transposed, zero tail
        flat = x.reshape(-1)
        lines = _PREFETCH_LINES * hs.shape[0]  # as many lines per group as the VNNI kernel spreads over its group
        lo, hi, minmax = _first_bounds(x, a, convert, window)
        for i in range(a, b):
            f32_path = _f32_path(lo, hi, int_dtype)
            pf, pf_end, nlo = _next_slice(flat, i, b, h * w)
            mm, nhi = pf, nlo
            r = 0
            while r < h:
                if r + 4 <= h:  # a constant trip count
                    for q in range(4):
                        _row(x[i, r + q], convert, window, lo, hi, f32_path, rowf[q])
                    nrows = 4
                else:
                    _row(x[i, r], convert, window, lo, hi, f32_path, rowf[0])
                    nrows = 1
                pf, mm, nlo, nhi = _ahead(flat, pf, mm, pf_end, lines, minmax, nlo, nhi)
                _first_pass(rowf, nrows, hs, hl, hw32, tmp, r)
                _round_rows(tmp, rowf, r, nrows, hs, hl, hk64, hbound)
                r += nrows
            if minmax and i + 1 < b:
                nlo, nhi = _minmax_span(flat[mm:pf_end], nlo, nhi)
                lo, hi = np.float64(nlo), np.float64(nhi)
            _second_pass(tmp, vs, vk64, out[i])

    # Serial and parallel drivers are separate functions: numba's cache key is the function's bytecode and
    # signature, not its flags, so ``njit(parallel=True)`` and ``njit()`` of one function would load each
    # other's machine code from the cache (the first compiled wins).
    @njit(cache=True, nogil=True)
    def dhash_small(x, convert, window, int_dtype, hs, hl, hw32, hk64, hbound, vs, vk64, out):
        """All slices of ``x`` in one thread (:func:`_dhash_range`)."""
        _dhash_range(x, 0, x.shape[0], convert, window, int_dtype, hs, hl, hw32, hk64, hbound, vs, vk64, out)

    @njit(cache=True, nogil=True, parallel=True)
    def dhash_small_parallel(x, convert, window, int_dtype, hs, hl, hw32, hk64, hbound, vs, vk64, out):
        """Runs of consecutive slices handed out to the numba threads, as in :func:`vnni_dhash_small_parallel`."""
        n = x.shape[0]
        size = min(16, max(1, n // 32))
        for k in numba.prange(-(-n // size)):
            a = k * size
            _dhash_range(x, a, min(a + size, n), convert, window, int_dtype, hs, hl, hw32, hk64, hbound, vs, vk64, out)

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
            f32_path = _f32_path(lo, hi, int_dtype)
            for r in range(h):
                _convert_row(x[i, r], lo, hi, f32_path, window, rowf)
                for c in range(w):
                    out[i, r, c] = np.uint8(rowf[c])

    # ---- the VNNI dHash kernel ----

    _I8, _I32, _I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
    _V8I32 = ir.VectorType(_I32, 8)

    def _as_i64(builder, v):
        return builder.sext(v, _I64) if v.type.width < 64 else v

    @intrinsic
    def _dot4(typingctx, rows, st, wl, nch, c_lo, c_hi):
        """Exact int32 sums ``rows[q, st : st + 32 nch] . k`` for q = 0..3 (uint8 rows, C order), ``k`` given by
        the (3, >= 32 nch) int8 limbs ``wl`` (:func:`vnni_limbs`), limb 2 over chunks ``c_lo .. c_hi - 1`` only."""
        ok = (
            isinstance(rows, types.Array)
            and rows.ndim == 2
            and rows.dtype == types.uint8
            and rows.layout == "C"
            and isinstance(wl, types.Array)
            and wl.ndim == 2
            and wl.dtype == types.int8
            and wl.layout == "C"
            and all(isinstance(t, types.Integer) for t in (st, nch, c_lo, c_hi))
        )
        if not ok:
            return None
        sig = types.UniTuple(types.int32, 4)(rows, st, wl, nch, c_lo, c_hi)

        def codegen(context, builder, signature, args):
            rows_v, st_v, wl_v, nch_v, lo_v, hi_v = args
            ra = context.make_array(signature.args[0])(context, builder, rows_v)
            wa = context.make_array(signature.args[2])(context, builder, wl_v)
            rstride = cgutils.unpack_tuple(builder, ra.strides, 2)[0]
            wstride = cgutils.unpack_tuple(builder, wa.strides, 2)[0]
            rdata = builder.bitcast(ra.data, _I8.as_pointer())
            wdata = builder.bitcast(wa.data, _I8.as_pointer())
            st64 = _as_i64(builder, st_v)
            fnty = ir.FunctionType(_V8I32, [_V8I32, _V8I32, _V8I32])
            dp = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpdpbusd.256")
            acc = [[cgutils.alloca_once_value(builder, ir.Constant(_V8I32, None)) for _ in range(3)] for _ in range(4)]

            def load(base, offset):
                return builder.load(builder.bitcast(builder.gep(base, [offset]), _V8I32.as_pointer()), align=1)

            def chunk(c, limb_ids):
                off = builder.mul(c, ir.Constant(_I64, 32))
                w = {m: load(wdata, builder.add(builder.mul(ir.Constant(_I64, m), wstride), off)) for m in limb_ids}
                for q in range(4):
                    d = load(rdata, builder.add(builder.add(builder.mul(ir.Constant(_I64, q), rstride), st64), off))
                    for m in limb_ids:
                        builder.store(builder.call(dp, [builder.load(acc[q][m]), d, w[m]]), acc[q][m])

            with cgutils.for_range(builder, _as_i64(builder, nch_v)) as loop:
                chunk(loop.index, (0, 1))
            one = ir.Constant(_I64, 1)
            with cgutils.for_range_slice(builder, _as_i64(builder, lo_v), _as_i64(builder, hi_v), one) as (c, _):
                chunk(c, (2,))
            red = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(_I32, [_V8I32]), "llvm.vector.reduce.add.v8i32"
            )
            sums = []
            for q in range(4):  # the limbs recombined lane by lane (int32, modulo 2**32), then the lanes summed
                s = builder.add(builder.load(acc[q][0]), builder.shl(builder.load(acc[q][1]), ir.Constant(_V8I32, 8)))
                s = builder.add(s, builder.shl(builder.load(acc[q][2]), ir.Constant(_V8I32, 16)))
                sums.append(builder.call(red, [s]))
            return context.make_tuple(builder, signature.return_type, sums)

        return sig, codegen

    @intrinsic
    def _prefetch(typingctx, flat, index):
        """Prefetch (read, into all cache levels) the cache line holding ``flat[index]``; no bounds check."""
        if not (isinstance(flat, types.Array) and flat.ndim == 1 and isinstance(index, types.Integer)):
            return None
        sig = types.void(flat, index)

        def codegen(context, builder, signature, args):
            a = context.make_array(signature.args[0])(context, builder, args[0])
            p = builder.bitcast(builder.gep(a.data, [_as_i64(builder, args[1])]), _I8.as_pointer())
            fnty = ir.FunctionType(ir.VoidType(), [_I8.as_pointer(), _I32, _I32, _I32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            builder.call(fn, [p, ir.Constant(_I32, 0), ir.Constant(_I32, 3), ir.Constant(_I32, 1)])
            return context.get_dummy_value()

        return sig, codegen

    @njit(cache=True, nogil=True)
    def _round8(s):
        """Pillow's ``clip8((2**21 + s) >> 22)`` of an exact int32 sum."""
        return np.uint8(min(max((np.int64(s) + 2097152) >> 22, 0), 255))

    @njit(cache=True, nogil=True)
    def _vnni_vertical(tmp, groups, vs, vband, small):
        """Pillow's vertical pass over the transposed 8-bit first-pass result ``tmp`` -> ``small`` (out_h, out_w)."""
        nch, wl, c_lo, c_hi = vband
        out_w = small.shape[1]
        for y in range(vs.shape[0]):
            for g in range(groups):
                s = _dot4(tmp[4 * g : 4 * g + 4], vs[y], wl[y], nch[y], c_lo[y], c_hi[y])
                for q in range(min(4, out_w - 4 * g)):
                    small[y, 4 * g + q] = _round8(s[q])

    @njit(cache=True, nogil=True)
    def _vnni_range(x, a, b, convert, window, int_dtype, hs, hband, vs, vband, out):
        """Slices ``a .. b - 1`` of (N, H, W) ``x`` -> ``out[i]`` (out_h, out_w) Pillow LANCZOS values, like
        :func:`_dhash_range` (same 8-bit conversion) with exact VNNI sums in both passes, the first four rows
        at a time; slice ``i + 1 < b`` is prefetched while slice ``i`` is hashed.

        ``convert``: None (uint8 input, copied) or True (``to_uint8``'s arithmetic); ``window``: None (per-slice
        min-max) or ``(low, high)``. Passed as None or not, they are compile-time facts (one compiled copy per
        combination, pruned branches), so the conversion loop has no branch on them, and full groups of four rows
        have a constant trip count: together ~17 us of ~104 per 512x512 int16 slice against runtime flags."""
        _, h, w = x.shape
        nch, wl, c_lo, c_hi = hband
        rows = np.zeros((4, w + wl.shape[2] + 32), np.uint8)  # zero tail: padded taps read zeros
        groups = -(-hs.shape[0] // 4)  # the vertical pass takes tmp's rows (one per output column) four at a time
        tmp = np.zeros((4 * groups, h + vband[1].shape[2] + 32), np.uint8)  # transposed; tail read at zero weights
        flat = x.reshape(-1)
        step = max(1, 64 // x.itemsize)  # elements per cache line
        span = _PREFETCH_LINES * step
        full = h - h % 4
        lo, hi, minmax = _first_bounds(x, a, convert, window)
        for i in range(a, b):
            f32_path = _f32_path(lo, hi, int_dtype)
            # the next slice (elements pf .. pf_end - 1 of flat): prefetched, and its min/max taken, along the way
            pf, pf_end, nlo = _next_slice(flat, i, b, h * w)
            mm, nhi = pf, nlo
            for r in range(0, h, 4):
                if r < full:  # a constant trip count
                    for q in range(4):
                        _row(x[i, r + q], convert, window, lo, hi, f32_path, rows[q])
                else:  # the last group: stale rows after h, whose sums land in tmp's tail
                    for q in range(h - r):
                        _row(x[i, r + q], convert, window, lo, hi, f32_path, rows[q])
                for o in range(hs.shape[0]):
                    # _ahead, written out: as a call per dot product it costs ~12 us per 512x512 slice
                    if pf < pf_end:  # up to 7 lines past the next slice: prefetches never fault
                        for _ in range(_PREFETCH_LINES):
                            _prefetch(flat, pf)
                            pf += step
                    if minmax and mm + span <= min(pf - _MM_LAG * step, pf_end):  # lines prefetched a while ago
                        nlo, nhi = _minmax_span(flat[mm : mm + span], nlo, nhi)
                        mm += span
                    s = _dot4(rows, hs[o], wl[o], nch[o], c_lo[o], c_hi[o])
                    for q in range(4):
                        tmp[o, r + q] = _round8(s[q])
            if minmax and i + 1 < b:
                nlo, nhi = _minmax_span(flat[mm:pf_end], nlo, nhi)
                lo, hi = np.float64(nlo), np.float64(nhi)
            _vnni_vertical(tmp, groups, vs, vband, out[i])

    # Serial and parallel drivers are separate functions (numba's cache key ignores ``parallel=True``: see above).
    @njit(cache=True, nogil=True)
    def vnni_dhash_small(x, convert, window, int_dtype, hs, hband, vs, vband, out):
        """All slices of ``x`` in one thread (:func:`_vnni_range`)."""
        _vnni_range(x, 0, x.shape[0], convert, window, int_dtype, hs, hband, vs, vband, out)

    @njit(cache=True, nogil=True, parallel=True)
    def vnni_dhash_small_parallel(x, convert, window, int_dtype, hs, hband, vs, vband, out):
        """Runs of ``min(16, max(1, N // 32))`` consecutive slices handed out to the numba threads
        (:func:`_vnni_range` per run, so that the next slice's prefetch and min/max work within a run)."""
        n = x.shape[0]
        size = min(16, max(1, n // 32))  # (the thread count inside a kernel would make it uncacheable)
        for k in numba.prange(-(-n // size)):
            a = k * size
            _vnni_range(x, a, min(a + size, n), convert, window, int_dtype, hs, hband, vs, vband, out)
